import StepGuardTestSupport

/// A Vault stand-in at `vault.example.test:8200` and the policy naming it, shared by the binary
/// tests of issue #16's egress holes.
struct VaultStandIn {
    let server: ServiceStandIn

    /// Starts the stand-in (answering with ``BinaryServiceTests/echoJSON``); its CA goes to `directory`.
    init(directory: TemporaryDirectory) throws {
        server = try ServiceStandIn.start("vault.example.test", port: 8200, directory: directory, handler: BinaryServiceTests.echoJSON)
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
        \(server.network)
        """
    }

    var requests: [ReceivedRequest] { server.requests }
    func shutdown() { server.shutdown() }
}
