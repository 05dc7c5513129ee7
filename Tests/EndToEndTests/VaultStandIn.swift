import Foundation
import StepGuardServerTestSupport
import StepGuardTestSupport

/// A Vault stand-in at `vault.example.test:8200` on a stage of its own (its CA in the stage's
/// directory), and the policy naming it, shared by the binary tests of issue #16's egress holes.
struct VaultStandIn: ~Copyable {
    let stage: TestStage<ServiceStandIn>

    /// Starts the stand-in, answering with ``BinaryServiceTests/echoJSON``.
    init() throws {
        stage = try TestStage { try ServiceStandIn.start("vault.example.test", port: 8200, directory: $0, handler: BinaryServiceTests.echoJSON) }
    }

    /// A policy (`on_violation: fail`) naming the stand-in as `hashicorp-vault` with `allow` blocks
    /// (flow mappings), `identity` lines if any, and loopback allowed by an explicit address rule.
    func policy(allow: [String], identity: String = "") -> String {
        """
        version: 1
        on_violation: fail
        \(identity)
        egress: { default: deny, allow: ["127.0.0.1"] }
        services:
          - service: hashicorp-vault
            hosts: [vault.example.test]
            allow:
        \(allow.map { "      - \($0)" }.joined(separator: "\n"))
        \(stage.server.network)
        """
    }

    var requests: [ReceivedRequest] { stage.server.requests }
}

/// A job whose workload identity the binary verifies before the step starts: a test issuer, its
/// JWKS in `jwks.json`, the job's own token (audience `stepguard`) in `job.jwt`, and the policy's
/// `identity:` section pinning its repository.
struct WorkloadJob {
    let issuer = TestOIDCIssuer()
    let subject = "repo:octo-org/app:ref:refs/heads/main"
    let claims = ["repository": #""octo-org/app""#, "ref": #""refs/heads/main""#]
    /// The policy's `identity:` section.
    let identity: String

    init(in directory: TemporaryDirectory) throws {
        try directory.write("jwks.json", issuer.jwks)
        let tokenFile = try directory.write("job.jwt", try issuer.token(subject: subject, audience: "stepguard", extraClaims: claims))
        identity = issuer.identitySection(token: tokenFile, jwks: directory.path("jwks.json"), #"claims: { repository: "octo-org/app" }"#)
    }

    /// A token of this job's workload for `audience`.
    func token(audience: String, ttl: TimeInterval = 300) throws -> String {
        try issuer.token(subject: subject, audience: audience, ttl: ttl, extraClaims: claims)
    }
}
