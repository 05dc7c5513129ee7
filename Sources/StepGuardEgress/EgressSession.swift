import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import StepGuardAudit
import StepGuardPolicy
import Synchronization

/// The egress proxy of one guarded step: started before the step is spawned, stopped after it.
///
/// ```swift
/// let egress = try await EgressSession.start(policy: policy, identity: nil, trail: trail,
///                                            stopStep: { supervisor.stop() })
/// defer { egress.stop() }
/// let step = StepCommand(arguments: command, environment: environment.merging(egress.environment) { $1 })
/// ```
///
/// Every outbound request of the step goes through a SwiftNIO HTTP/1.1 forward proxy on
/// 127.0.0.1. Each CONNECT and absolute-form request is decided by the policy's `egress:` rules;
/// hosts of services named in `services:` are TLS-intercepted with a per-run CA and every request
/// to them is decided on its method, path, credential, identity claims and time window. Denials get
/// `403` with `X-StepGuard-Decision: deny`; with `on_violation: kill`, `stopStep` is called at once.
/// If the proxy stops working while the step runs, `stopStep` is called too (fail closed).
public final class EgressSession: Sendable {
    /// The proxy's address, `127.0.0.1`.
    public let host = "127.0.0.1"
    /// The proxy's ephemeral port.
    public let port: Int
    /// Variables to add to the step's environment: proxy settings and CA bundle paths.
    public let environment: [String: String]
    /// The PEM file with the system CAs and the per-run CA (inside a private 0700 directory).
    public let trustBundlePath: String
    /// The per-run CA certificate (PEM); its key never leaves memory.
    public let certificateAuthorityPEM: String

    private let group: MultiThreadedEventLoopGroup
    private let resolverPool: NIOThreadPool
    private let serverChannel: Channel
    private let bundleDirectory: String
    private let state: ProxyState
    private let stopping = Atomic<Bool>(false)
    private let extraChannels = Mutex<[Channel]>([])

    /// Event loop threads serving the proxy; each keeps its own pool of idle upstream connections.
    public var threads: Int { state.threads }

    /// Client connections open right now (tunnels count once).
    public var openConnections: Int { state.openConnections.load(ordering: .relaxed) }

    private init(port: Int, environment: [String: String], trustBundlePath: String, certificateAuthorityPEM: String,
                 group: MultiThreadedEventLoopGroup, resolverPool: NIOThreadPool, serverChannel: Channel,
                 bundleDirectory: String, state: ProxyState) {
        self.port = port
        self.environment = environment
        self.trustBundlePath = trustBundlePath
        self.certificateAuthorityPEM = certificateAuthorityPEM
        self.group = group
        self.resolverPool = resolverPool
        self.serverChannel = serverChannel
        self.bundleDirectory = bundleDirectory
        self.state = state
    }

    /// Starts the proxy for a step.
    ///
    /// - Parameters:
    ///   - policy: the effective policy (after step overrides); `egress`, `services`, `network`,
    ///     `mode` and `on_violation` are used.
    ///   - identity: the job's verified identity, or nil when the policy asks for none.
    ///   - trail: where every decision is recorded.
    ///   - catalog: the service catalog (default: the built-in copy of `rules/services`, parsed only when the policy names a service).
    ///   - verifier: verifies JWTs seen in flight against the job's identity (`credential: workload`);
    ///     without one, no credential is ever classified `workload`.
    ///   - inspector: classifies credentials; default ``BuiltInCredentialInspector``.
    ///   - limits: limits and timeouts.
    ///   - stepStarted: the reference time of `window:`.
    ///   - stopStep: stops the step; called on a violation with `on_violation: kill`, and when the proxy fails.
    /// - Throws: ``EgressError`` — unknown service names (with their policy location), an unusable
    ///   `network.upstream_ca`, or a proxy that cannot start. The step must not run then.
    public static func start(policy: Policy, identity: JobIdentity?, trail: AuditTrail,
                             catalog: ServiceCatalog? = nil, verifier: WorkloadTokenVerifier? = nil,
                             inspector: CredentialInspector? = nil, limits: ProxyLimits = ProxyLimits(),
                             stepStarted: Date = Date(),
                             stopStep: @escaping @Sendable () -> Void) async throws(EgressError) -> EgressSession {
        let services = policy.services.isEmpty ? [] : try (catalog ?? .builtIn).bind(policy.services)

        var upstreamConfiguration = TLSConfiguration.makeClientConfiguration()
        upstreamConfiguration.applicationProtocols = ["http/1.1"]
        upstreamConfiguration.certificateVerification = .fullVerification
        if let path = policy.network.upstreamCA {
            do {
                let certificates = try NIOSSLCertificate.fromPEMFile(path)
                guard !certificates.isEmpty else { throw EgressError.upstreamCA(path: path, reason: "no certificate in the file") }
                upstreamConfiguration.additionalTrustRoots = [.certificates(certificates)]
            } catch let error as EgressError {
                throw error
            } catch {
                throw .upstreamCA(path: path, reason: "\(error)")
            }
        }
        // Only intercepted services are forwarded over TLS by the proxy itself; without any, loading
        // the system trust store would cost every run milliseconds for nothing.
        let upstreamTLS: NIOSSLContext?
        do { upstreamTLS = services.isEmpty ? nil : try NIOSSLContext(configuration: upstreamConfiguration) } catch {
            throw .upstreamCA(path: policy.network.upstreamCA ?? "system trust store", reason: "\(error)")
        }

        let authority: CertificateAuthority
        let caPEM: String
        do {
            authority = try CertificateAuthority(commonName: "stepguard per-run CA \(UUID().uuidString.prefix(8))")
            caPEM = try authority.certificatePEM
        } catch {
            throw .certificateAuthority("\(error)")
        }

        let (directory, bundle) = try writeTrustBundle(caPEM: caPEM)

        let resolverPool = NIOThreadPool(numberOfThreads: 2)
        resolverPool.start()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, min(System.coreCount, 4)))
        let state = ProxyState(
            egress: policy.egress, resolveOverrides: policy.network.resolve, services: services, identity: identity,
            inspector: inspector ?? BuiltInCredentialInspector(verifier: verifier, identity: identity,
                                                               maxShortLivedTTL: policy.identity?.lifetime.maxTTL?.seconds ?? 3600),
            trail: trail, auditOnly: policy.mode == .audit, onViolation: policy.onViolation, stopStep: stopStep,
            authority: authority, upstreamTLS: upstreamTLS, stepStarted: stepStarted, limits: limits, resolverPool: resolverPool,
            eventLoops: Array(group.makeIterator()))
        state.startSweeps()

        let bootstrap = makeBootstrap(group: group, state: state)
        let channel: Channel
        do {
            channel = try await bootstrap.bind(host: "127.0.0.1", port: 0).get()
        } catch {
            try? await group.shutdownGracefully()
            try? await resolverPool.shutdownGracefully()
            try? FileManager.default.removeItem(atPath: directory)
            throw .cannotListen("\(error)")
        }
        let port = channel.localAddress?.port ?? 0
        let proxyURL = "http://127.0.0.1:\(port)"
        var environment: [String: String] = [:]
        for name in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
            environment[name] = proxyURL
            environment[name.lowercased()] = proxyURL
        }
        environment["NO_PROXY"] = ""
        environment["no_proxy"] = ""
        for name in ["SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "AWS_CA_BUNDLE", "GIT_SSL_CAINFO"] {
            environment[name] = bundle
        }
        let session = EgressSession(port: port, environment: environment, trustBundlePath: bundle, certificateAuthorityPEM: caPEM,
                                    group: group, resolverPool: resolverPool, serverChannel: channel, bundleDirectory: directory, state: state)
        channel.closeFuture.whenComplete { [session] _ in
            guard !session.stopping.load(ordering: .relaxed) else { return }
            trail.record(AuditEvent(type: .egress, decision: .deny, reason: "the egress proxy stopped unexpectedly; the step is stopped (fail closed)",
                                    rule: "built-in: fail closed"))
            stopStep()
        }
        return session
    }

    /// The proxy's server bootstrap: every accepted connection gets the HTTP pipeline and the front handler.
    private static func makeBootstrap(group: MultiThreadedEventLoopGroup, state: ProxyState) -> ServerBootstrap {
        ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(ConnectionCounter(state: state))
                    try sync.configureHTTPServerPipeline(position: .last, withPipeliningAssistance: true, withServerUpgrade: nil,
                                                         withErrorHandling: true, withOutboundHeaderValidation: true,
                                                         withEncoderConfiguration: .init(), withDecoderLimitConfiguration: state.decoderLimits)
                    try sync.addHandler(FrontHandler(state: state, mode: .proxy, loop: state.resources(on: channel.eventLoop)))
                }
            }
    }

    /// Also accepts connections on `listeningSocket`, a socket already listening elsewhere — the one
    /// an isolated step's network namespace holds at the proxy's address. The session owns it from
    /// now on. Blocks until it is registered; call it off the event loops.
    public func serve(listeningSocket: Int32) throws(EgressError) {
        do {
            let channel = try Self.makeBootstrap(group: group, state: state).withBoundSocket(listeningSocket).wait()
            extraChannels.withLock { $0.append(channel) }
        } catch {
            close(listeningSocket)
            throw .cannotListen("serving the isolated step's proxy socket: \(error)")
        }
    }

    /// Stops the proxy, closes every connection, and removes the trust bundle directory. Safe to call more than once.
    public func stop() {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        serverChannel.close(promise: nil)
        extraChannels.withLock { $0.forEach { $0.close(promise: nil) } }
        group.shutdownGracefully { _ in }
        resolverPool.shutdownGracefully { _ in }
        try? FileManager.default.removeItem(atPath: bundleDirectory)
    }

    /// Candidate locations of the system CA bundle (Debian/Ubuntu, RHEL/Fedora, Alpine/macOS).
    static let systemBundles = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"]

    /// Writes system CAs + the per-run CA into a fresh 0700 directory; returns (directory, bundle path).
    static func writeTrustBundle(caPEM: String) throws(EgressError) -> (String, String) {
        let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array("\(base)/stepguard-egress-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw .cannotWriteTrustBundle(path: base, reason: String(cString: strerror(errno)))
        }
        let directory = String(cString: made)
        chmod(directory, 0o700)
        var text = ""
        if let system = systemBundles.lazy.compactMap({ try? String(contentsOfFile: $0, encoding: .utf8) }).first {
            text = system.hasSuffix("\n") ? system : system + "\n"
        }
        text += "# stepguard per-run CA (intercepts the services named in the policy)\n" + caPEM + "\n"
        let path = directory + "/ca-bundle.pem"
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o644]) else {
            try? FileManager.default.removeItem(atPath: directory)
            throw .cannotWriteTrustBundle(path: path, reason: "the file cannot be created")
        }
        return (directory, path)
    }
}
