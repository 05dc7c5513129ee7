import StepGuardCore
import Foundation
import StepGuardTestSupport
import Testing
@testable import StepGuardIdentity

/// `stepguard identity verify`, run as the real binary.
@Suite("stepguard identity verify")
struct IdentityCommandTests {
    let issuer = JOSEFixture.shared

    /// A policy directory with a JWKS file and tokens minted at the real current time.
    func setUp(extraPolicy: String = "") -> ScratchDirectory {
        let dir = ScratchDirectory()
        dir.write("jwks.json", issuer.jwks())
        dir.write("policy.yaml", """
            version: 1
            identity:
              issuer: \(JOSEFixture.issuer)
              audience: stepguard
              jwks: jwks.json
              claims: { repository: "acme/*", ref: ["refs/heads/main", "refs/tags/v*"] }
              lifetime: { max_ttl: 15m, max_age: 10m, leeway: 30s, min_remaining: 1m }
            \(extraPolicy)
            """)
        return dir
    }

    var now: Double { Date().timeIntervalSince1970.rounded(.down) }

    @Test func verifiedTokenExitsZeroAndPrintsClaims() throws {
        let dir = setUp()
        defer { dir.remove() }
        dir.write("token.jwt", issuer.token(alg: .ES256, claims: JOSEFixture.claims(at: now)) + "\n")
        let result = try StepGuardBinary.run(["identity", "verify", "--policy", dir.path + "/policy.yaml", "--token-file", dir.path + "/token.jwt"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("identity verified"))
        #expect(result.stdout.contains("repository: \"acme/app\""))
        #expect(result.stdout.contains("subject:    repo:acme/app:ref:refs/heads/main"))

        let json = try StepGuardBinary.run(["identity", "verify", "--policy", dir.path + "/policy.yaml", "--token-file", dir.path + "/token.jwt", "--format", "json"])
        #expect(json.status == 0)
        let parsed = try StrictJSON.parse(json.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(parsed.objectValue?["decision"] == "allow")
        #expect(parsed.objectValue?["identity"]?.objectValue?["claims"]?.objectValue?["ref"] == "refs/heads/main")
    }

    @Test func rejectedTokenExits77WithTheReasonAndNoToken() throws {
        let dir = setUp()
        defer { dir.remove() }
        let token = issuer.token(claims: JOSEFixture.claims(["ref": "refs/heads/evil"], at: now))
        var environment = ProcessInfo.processInfo.environment
        environment["CANDIDATE_TOKEN"] = token
        let result = try StepGuardBinary.run(["identity", "verify", "--policy", dir.path + "/policy.yaml", "--token-env", "CANDIDATE_TOKEN"],
                                             environment: environment)
        #expect(result.status == 77)
        #expect(result.stderr.contains("identity check claims failed: claim ref is \"refs/heads/evil\""))
        #expect(!result.stderr.contains(token) && !result.stdout.contains(token))
        #expect(!result.stderr.contains(String(token.split(separator: ".")[2])))

        let expired = issuer.token(claims: JOSEFixture.claims(at: now - 3600))
        dir.write("expired.jwt", expired)
        let json = try StepGuardBinary.run(["identity", "verify", "--policy", dir.path + "/policy.yaml", "--token-file", dir.path + "/expired.jwt", "--format", "json"])
        #expect(json.status == 77)
        let parsed = try StrictJSON.parse(json.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(parsed.objectValue?["decision"] == "deny")
        #expect(parsed.objectValue?["check"] == "claim.exp")
    }

    @Test func missingTokenIsRejected() throws {
        let dir = setUp()
        defer { dir.remove() }
        let result = try StepGuardBinary.run(["identity", "verify", "--policy", dir.path + "/policy.yaml", "--token-file", dir.path + "/none.jwt"])
        #expect(result.status == 77)
        #expect(result.stderr.contains("token.unavailable"))
    }

    @Test func invalidPolicyExits78() throws {
        let dir = setUp(extraPolicy: "  bogus_key: 1")
        defer { dir.remove() }
        let result = try StepGuardBinary.run(["identity", "verify", "--policy", dir.path + "/policy.yaml", "--token-file", dir.path + "/x"])
        #expect(result.status == 78)
        #expect(result.stderr.contains("policy.yaml:"))
        let noIdentity = ScratchDirectory()
        defer { noIdentity.remove() }
        noIdentity.write("policy.yaml", "version: 1\n")
        let none = try StepGuardBinary.run(["identity", "verify", "--policy", noIdentity.path + "/policy.yaml"])
        #expect(none.status == 78)
        #expect(none.stderr.contains("no identity: section"))
    }
}
