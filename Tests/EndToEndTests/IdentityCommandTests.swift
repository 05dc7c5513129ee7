import Foundation
import StepGuardTestSupport
import Testing

/// `stepguard identity verify`, run as the real binary.
@Suite("stepguard identity verify")
struct IdentityCommandTests {
    let issuer = TestOIDCIssuer(issuer: "https://token.test.local")

    /// A policy directory with a JWKS file and tokens minted at the real current time.
    func setUp(extraPolicy: String = "") throws -> TemporaryDirectory {
        let dir = try TemporaryDirectory(prefix: "stepguard-identity")
        try dir.write("jwks.json", issuer.jwks)
        try dir.write("policy.yaml", """
            version: 1
            identity:
              issuer: \(issuer.issuer)
              audience: stepguard
              jwks: jwks.json
              claims: { repository: "acme/*", ref: ["refs/heads/main", "refs/tags/v*"] }
              lifetime: { max_ttl: 15m, max_age: 10m, leeway: 30s, min_remaining: 1m }
            \(extraPolicy)
            """)
        return dir
    }

    /// A token of `acme/app` on `ref` (audience `stepguard`), issued a minute before `issuedAt`, valid 10 minutes.
    func token(ref: String = "refs/heads/main", issuedAt: Date = Date()) -> String {
        issuer.token(subject: "repo:acme/app:ref:refs/heads/main", claims: ["repository": "acme/app", "ref": ref],
                     issuedAt: issuedAt.addingTimeInterval(-60), lifetime: 600)
    }

    /// The JSON object `text` holds.
    func object(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test func verifiedTokenExitsZeroAndPrintsClaims() throws {
        let dir = try setUp()
        defer { dir.remove() }
        try dir.write("token.jwt", token() + "\n")
        let result = try StepGuardBinary.run(["identity", "verify", "--policy", dir.path + "/policy.yaml", "--token-file", dir.path + "/token.jwt"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("identity verified"))
        #expect(result.stdout.contains("repository: \"acme/app\""))
        #expect(result.stdout.contains("subject:    repo:acme/app:ref:refs/heads/main"))

        let json = try StepGuardBinary.run(["identity", "verify", "--policy", dir.path + "/policy.yaml", "--token-file", dir.path + "/token.jwt", "--format", "json"])
        #expect(json.status == 0)
        let parsed = try object(json.stdout)
        #expect(parsed["decision"] as? String == "allow")
        #expect(((parsed["identity"] as? [String: Any])?["claims"] as? [String: Any])?["ref"] as? String == "refs/heads/main")
    }

    @Test func rejectedTokenExits77WithTheReasonAndNoToken() throws {
        let dir = try setUp()
        defer { dir.remove() }
        let token = self.token(ref: "refs/heads/evil")
        var environment = ProcessInfo.processInfo.environment
        environment["CANDIDATE_TOKEN"] = token
        let result = try StepGuardBinary.run(["identity", "verify", "--policy", dir.path + "/policy.yaml", "--token-env", "CANDIDATE_TOKEN"],
                                             environment: environment)
        #expect(result.status == 77)
        #expect(result.stderr.contains("identity check claims failed: claim ref is \"refs/heads/evil\""))
        #expect(!result.stderr.contains(token) && !result.stdout.contains(token))
        #expect(!result.stderr.contains(String(token.split(separator: ".")[2])))

        try dir.write("expired.jwt", self.token(issuedAt: Date().addingTimeInterval(-3600)))
        let json = try StepGuardBinary.run(["identity", "verify", "--policy", dir.path + "/policy.yaml", "--token-file", dir.path + "/expired.jwt", "--format", "json"])
        #expect(json.status == 77)
        let parsed = try object(json.stdout)
        #expect(parsed["decision"] as? String == "deny")
        #expect(parsed["check"] as? String == "claim.exp")
    }

    @Test func missingTokenIsRejected() throws {
        let dir = try setUp()
        defer { dir.remove() }
        let result = try StepGuardBinary.run(["identity", "verify", "--policy", dir.path + "/policy.yaml", "--token-file", dir.path + "/none.jwt"])
        #expect(result.status == 77)
        #expect(result.stderr.contains("token.unavailable"))
    }

    @Test func invalidPolicyExits78() throws {
        let dir = try setUp(extraPolicy: "  bogus_key: 1")
        defer { dir.remove() }
        let result = try StepGuardBinary.run(["identity", "verify", "--policy", dir.path + "/policy.yaml", "--token-file", dir.path + "/x"])
        #expect(result.status == 78)
        #expect(result.stderr.contains("policy.yaml:"))
        let noIdentity = try TemporaryDirectory(prefix: "stepguard-identity")
        defer { noIdentity.remove() }
        try noIdentity.write("policy.yaml", "version: 1\n")
        let none = try StepGuardBinary.run(["identity", "verify", "--policy", noIdentity.path + "/policy.yaml"])
        #expect(none.status == 78)
        #expect(none.stderr.contains("no identity: section"))
    }
}
