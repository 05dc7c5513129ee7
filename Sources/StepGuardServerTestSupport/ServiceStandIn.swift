import StepGuardTestSupport
/// A local HTTPS server standing in for a real service host (Fulcio, STS, Vault…): its certificate
/// names `host` and comes from a CA the test makes, and ``network`` is the policy block that routes
/// `host:port` to the server and trusts that CA for upstream TLS. Nothing leaves loopback.
public struct ServiceStandIn: Sendable {
    /// The server; its `requests` are what reached the "service".
    public let server: LocalHTTPServer
    /// The CA that certified the server.
    public let authority: TestCertificateAuthority
    /// `network:` with `resolve` and `upstream_ca`, at the top level of a policy.
    public let network: String

    /// Starts the stand-in for `host` as clients address it on `port`; the CA's file goes to `directory`.
    public static func start(_ host: String, port: Int = 443, directory: TemporaryDirectory,
                             handler: @escaping LocalHTTPServer.Handler) throws -> ServiceStandIn {
        let authority = try TestCertificateAuthority(directory: directory, name: "upstream CA")
        let server = try LocalHTTPServer.start(tls: authority, tlsNames: [host], handler: handler)
        let network = """
        network:
          resolve: { "\(host):\(port)": "127.0.0.1:\(server.port)" }
          upstream_ca: \(authority.certificateFile)
        """
        return ServiceStandIn(server: server, authority: authority, network: network)
    }

    /// Every request that reached the stand-in.
    public var requests: [ReceivedRequest] { server.requests }

    /// Stops the server.
    public func shutdown() { server.shutdown() }
}
