import Foundation
import StepGuardTestSupport
import Testing

/// `stepguard run` checks the job's identity and the step's environment before anything runs.
@Suite struct RunIdentityTests {
    let directory: TemporaryDirectory
    let issuer = TestOIDCIssuer()

    init() throws {
        directory = try TemporaryDirectory()
        try directory.write("jwks.json", issuer.jwks)
    }

    func policy(claims: String = #"{ repository: "octo-org/app", ref: "refs/tags/v*" }"#) throws -> String {
        try directory.write("policy.yaml", """
        version: 1
        isolation: off
        \(issuer.identitySection("claims: \(claims)", "lifetime: { max_ttl: 15m, max_age: 10m, min_remaining: 1m }"))
        """)
    }

    func run(token: String, marker: String) throws -> ProgramResult {
        try directory.write("token.jwt", token)
        return try StepGuardBinary.run(["run", "--policy", try policy(), "--audit-log", directory.path("audit.jsonl"), "--",
                                        "/bin/sh", "-c", "touch \(marker)"])
    }

    @Test func verifiedIdentityLetsTheStepRun() throws {
        defer { directory.remove() }
        let token = try issuer.token(subject: "repo:octo-org/app:ref:refs/tags/v1.2.0", audience: "stepguard",
                                     extraClaims: ["repository": #""octo-org/app""#, "ref": #""refs/tags/v1.2.0""#])
        let result = try run(token: token, marker: directory.path("ran"))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(FileManager.default.fileExists(atPath: directory.path("ran")))
        let log = try directory.read("audit.jsonl")
        #expect(log.contains(#""type":"identity","decision":"allow""#))
        #expect(log.contains(#""sub":"repo:octo-org/app:ref:refs/tags/v1.2.0""#))
        #expect(!log.contains(token) && !result.stderr.contains(token))
    }

    @Test func wrongClaimRefusesToStart() throws {
        defer { directory.remove() }
        let token = try issuer.token(subject: "repo:octo-org/app:ref:refs/heads/feature", audience: "stepguard",
                                     extraClaims: ["repository": #""octo-org/app""#, "ref": #""refs/heads/feature""#])
        let result = try run(token: token, marker: directory.path("ran"))
        #expect(result.status == 77)
        #expect(result.stderr.contains("ref"))
        #expect(result.stderr.contains("BLOCKED — identity"))
        #expect(result.stderr.contains("was not started"))
        #expect(!FileManager.default.fileExists(atPath: directory.path("ran")))
    }

    @Test func expiredAndForeignTokensRefuseToStart() throws {
        defer { directory.remove() }
        let claims = ["repository": #""octo-org/app""#, "ref": #""refs/tags/v1""#]
        let expired = try issuer.token(subject: "s", audience: "stepguard", age: 400, ttl: 300, extraClaims: claims)
        #expect(try run(token: expired, marker: directory.path("ran")).status == 77)
        let foreign = try TestOIDCIssuer(issuer: issuer.issuer, keyID: issuer.keyID).token(subject: "s", audience: "stepguard", extraClaims: claims)
        let result = try run(token: foreign, marker: directory.path("ran"))
        #expect(result.status == 77)
        #expect(result.stderr.lowercased().contains("signature"))
        #expect(!FileManager.default.fileExists(atPath: directory.path("ran")))
    }
}

@Suite struct RunCredentialTests {
    /// A GitHub classic token shape made at run time (never committed as a literal).
    static let longLivedToken = "gh" + "p_" + String(repeating: "aB3x", count: 9)

    func environment(_ extra: [String: String]) -> [String: String] {
        TestEnvironment.base.merging(extra) { $1 }
    }

    @Test func longLivedCredentialRefusesToStartAndNamesTheVariableOnly() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let marker = directory.path("ran")
        let result = try StepGuardBinary.run(["run", "--audit-log", directory.path("a.jsonl"), "--", "/bin/sh", "-c", "touch \(marker)"],
                                             environment: environment(["DEPLOY_TOKEN": Self.longLivedToken]))
        #expect(result.status == 77)
        #expect(result.stderr.contains("DEPLOY_TOKEN holds a long-lived credential"))
        #expect(!FileManager.default.fileExists(atPath: marker))
        #expect(!result.stderr.contains(Self.longLivedToken))
        #expect(try !directory.read("a.jsonl").contains(Self.longLivedToken))
    }

    @Test func stripRemovesTheVariableAndAllowVarsExempts() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let policy = try directory.write("p.yaml", "version: 1\ncredentials: { long_lived: strip, allow_vars: [\"KEEP_*\"] }\n")
        let result = try StepGuardBinary.run(["run", "--policy", policy, "--", "/bin/sh", "-c", "echo \"deploy=${DEPLOY_TOKEN:-unset} keep=${#KEEP_TOKEN}\""],
                                             environment: environment(["DEPLOY_TOKEN": Self.longLivedToken, "KEEP_TOKEN": Self.longLivedToken]))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "deploy=unset keep=\(Self.longLivedToken.count)\n")
        #expect(result.stderr.contains("verdict: allowed"))
    }

    @Test func auditModeRunsTheStepAndSaysWhatItWouldHaveBlocked() throws {
        let result = try StepGuardBinary.run(["run", "--mode", "audit", "--", "true"], environment: environment(["DEPLOY_TOKEN": Self.longLivedToken]))
        #expect(result.status == 0)
        #expect(result.stderr.contains("would deny credential"))
        #expect(result.stderr.contains("would block"))
    }
}
