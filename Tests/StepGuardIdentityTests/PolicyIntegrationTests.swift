import StepGuardServerTestSupport
import Foundation
import StepGuardPolicy
import StepGuardSecrets
import StepGuardTestSupport
import Testing
@testable import StepGuardIdentity

@Suite("Identity and credentials from a loaded policy")
struct PolicyIntegrationTests {
    let issuer = JOSEFixture.shared

    func load(_ yaml: String, in directory: TemporaryDirectory) throws -> Policy {
        try directory.write("policy.yaml", yaml)
        return try PolicyLoader.load(file: directory.path + "/policy.yaml")
    }

    /// A fresh policy directory holding the fixture issuer's JWKS at `jwks` (relative), for the caller to remove.
    func directory(jwks: String) throws -> TemporaryDirectory {
        let directory = try TemporaryDirectory(prefix: "stepguard-identity")
        try directory.write(jwks, issuer.jwks())
        return directory
    }

    /// The verifier `policy`'s identity section makes, at the fixture's time, without a JWKS cache.
    func identityVerifier(_ policy: Policy) throws -> IdentityVerifier {
        try IdentityVerifier(policy: try #require(policy.identity), keyStoreOptions: KeyStoreOptions(cacheDirectory: nil),
                             now: { Date(timeIntervalSince1970: JOSEFixture.now) })
    }

    @Test func verifierFromPolicyWithJWKSFileRelativeToThePolicy() throws {
        let dir = try directory(jwks: "keys/jwks.json")
        defer { dir.remove() }
        let policy = try load("""
            version: 1
            identity:
              token: env:MY_TOKEN
              issuer: \(JOSEFixture.issuer)
              audience: stepguard
              jwks: keys/jwks.json
              algorithms: [ES256]
              claims:
                repository: "acme/*"
                ref: ["refs/heads/main", "refs/tags/v*"]
                run_attempt: 1
                ref_protected: true
              lifetime: { max_ttl: 15m, max_age: 10m, leeway: 30s, min_remaining: 1m }
            """, in: dir)
        let verifier = try identityVerifier(policy)
        #expect(verifier.rules.algorithms == [.ES256])
        #expect(verifier.rules.lifetime == LifetimeRules(maxTTL: 900, maxAge: 600, leeway: 30, minRemaining: 60))
        #expect(verifier.tokenSource == .environment("MY_TOKEN"))
        #expect(verifier.pinnedClaims == ["ref", "ref_protected", "repository", "run_attempt"])
        #expect(try verifier.verify(token: issuer.token(alg: .ES256)).claims["ref"] == "refs/heads/main")
        // RS256 is not in this policy's algorithms.
        expectRejected(.algorithm) { _ = try verifier.verify(token: issuer.token(alg: .RS256)) }
        // A ref outside the pinned list.
        let feature = issuer.token(alg: .ES256, claims: JOSEFixture.claims(["ref": "refs/heads/feature"]))
        let error = expectRejected(.claim) { _ = try verifier.verify(token: feature) }
        #expect(error?.detail == "claim ref is \"refs/heads/feature\"; the policy requires any of [\"refs/heads/main\", \"refs/tags/v*\"]")
    }

    @Test func policyNumberMatchesOnlyJSONNumbers() throws {
        let dir = try directory(jwks: "jwks.json")
        defer { dir.remove() }
        let policy = try load("""
            version: 1
            identity:
              issuer: \(JOSEFixture.issuer)
              audience: stepguard
              jwks: jwks.json
              claims: { repository_id: "957014466", run_attempt: 1 }
            """, in: dir)
        let verifier = try identityVerifier(policy)
        _ = try verifier.verify(token: issuer.token())
        expectRejected(.claim) { _ = try verifier.verify(token: issuer.token(claims: JOSEFixture.claims(["repository_id": 957014466]))) }
        expectRejected(.claim) { _ = try verifier.verify(token: issuer.token(claims: JOSEFixture.claims(["run_attempt": "1"]))) }
    }

    @Test func classifierWithTheSecretScannersRules() throws {
        let dir = try TemporaryDirectory(prefix: "stepguard-identity")
        defer { dir.remove() }
        let policy = try load("""
            version: 1
            credentials: { long_lived: deny, allow_vars: ["LEGACY_*"] }
            """, in: dir)
        let classifier = CredentialClassifier(policy: policy, detector: try SecretDetector.builtIn(prefilter: .keywords))
        let pat = "ghp_" + "Xk29Qv7LmN3pR8sT1wY6zA4bC5dE0fG2hJ9k"
        let akia = "AKIA" + "Q7XW3ZK5RT2NBV6M"
        let ghs = "ghs_" + "Lm4Nq8Rt2Vx6Zb0Cd3Fg7Hj1Kp5Sw9Ty2Ua6"
        let environment = [
            "GH_PAT": pat, "AWS_ACCESS_KEY_ID": akia, "GITHUB_TOKEN": ghs, "LEGACY_TOKEN": pat,
            "ID_TOKEN": issuer.token(), "PATH": "/usr/bin", "GREETING": "hello world",
        ]
        let verdict = classifier.classify(environment: environment, action: policy.credentials.longLived)
        #expect(verdict.decision == .deny)
        #expect(verdict.longLived.map(\.variable) == ["AWS_ACCESS_KEY_ID", "GH_PAT"])
        #expect(verdict.findings.first { $0.variable == "GITHUB_TOKEN" }?.lifetime == .shortLived)
        #expect(verdict.findings.first { $0.variable == "ID_TOKEN" }?.lifetime == .shortLived)
        #expect(verdict.findings.first { $0.variable == "LEGACY_TOKEN" }?.exempted == true)
        #expect(!verdict.findings.contains { $0.variable == "PATH" || $0.variable == "GREETING" })
        let text = verdict.summary + verdict.findings.map(\.reason).joined()
        #expect(!text.contains(pat) && !text.contains(akia) && !text.contains(ghs))
    }
}

@Suite("Example identity policies")
struct ExamplePolicyTests {
    static var policies: String { LocalHTTPSServer.fixtures + "/policies" }

    @Test(arguments: ["github.yaml", "gitlab.yaml"])
    func examplesLoadAndBuildAVerifier(file: String) throws {
        let policy = try PolicyLoader.load(file: Self.policies + "/" + file)
        let identity = try #require(policy.identity)
        let verifier = try IdentityVerifier(policy: identity, keyStoreOptions: KeyStoreOptions(cacheDirectory: nil))
        #expect(verifier.rules.algorithms == [.RS256])
        #expect(!verifier.pinnedClaims.isEmpty)
        _ = CredentialClassifier(policy: policy, detector: try SecretDetector.builtIn(prefilter: .keywords))
    }
}
