import FoundationEssentials
import Glibc
import Dispatch
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import StepGuardAudit
import StepGuardCore
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
/// Every outbound request of the step goes through an HTTP/1.1 forward proxy on 127.0.0.1: a
/// ``SocketFront`` on epoll threads serves plain requests and tunnels, and hands every other
/// connection to a SwiftNIO pipeline. Each CONNECT and absolute-form request is decided by the policy's `egress:` rules;
/// hosts of services named in `services:` are TLS-intercepted with a per-run CA and every request
/// to them is decided on its method, path, credential, identity claims and time window. Denials get
/// `403` with `X-StepGuard-Decision: deny`; with `on_violation: kill`, `stopStep` is called at once.
/// If the proxy stops working while the step runs, `stopStep` is called too (fail closed).
public final class EgressSession: Sendable {
    /// The proxy's address, `127.0.0.1`.
    public let host = "127.0.0.1"
    /// The proxy's ephemeral port.
    public let port: Int
    /// Variables to add to the step's environment: proxy settings, and CA bundle paths when the
    /// policy names services (without one nothing is intercepted, and the step's own trust
    /// settings stand).
    public let environment: [String: String]
    /// The PEM file with the system CAs and the per-run CA (inside a private 0700 directory); nil
    /// when the policy names no service.
    public var trustBundlePath: String? { trustBundle?.path }
    /// The per-run CA certificate (PEM; its key never leaves memory); nil when the policy names no service.
    public let certificateAuthorityPEM: String?

    private let trustBundle: TrustBundle?
    /// Internal for the fail-closed test, which breaks a front thread.
    let front: SocketFront
    private let state: ProxyState
    private let stopping = Atomic<Bool>(false)
    /// Starts the front threads, once (see ``startServing()``); nil once called.
    private let startThreads: Mutex<(@Sendable () -> Void)?>
    /// `network.dns`: the upstream of the step's resolver under capture.
    private let dnsUpstream: HostPort?

    /// Tokens the step obtained through an allowed exchange (`mints:`), for revocation.
    public var minted: MintedCredentials { state.minted }

    /// The reference time of the services' `window:`.
    public var stepStarted: Date { state.stepStarted }

    /// Event loop threads serving the proxy; each keeps its own pool of idle upstream connections.
    public var threads: Int { ProxyState.threads }

    /// Client connections open right now (tunnels count once).
    public var openConnections: Int { state.openConnections.load(ordering: .relaxed) }

    private init(port: Int, environment: [String: String], trustBundle: TrustBundle?, caPEM: String?,
                 front: SocketFront, state: ProxyState, dnsUpstream: HostPort?) {
        self.dnsUpstream = dnsUpstream
        self.port = port
        self.environment = environment
        self.trustBundle = trustBundle
        self.certificateAuthorityPEM = caPEM
        self.front = front
        self.state = state
        startThreads = Mutex(nil)
    }

    /// Starts the proxy for a step. With services it waits for their addresses to be looked up:
    /// call it off the event loops.
    ///
    /// - Parameters:
    ///   - policy: the effective policy (after step overrides); `egress`, `services`, `network`,
    ///     `mode` and `on_violation` are used.
    ///   - identity: the job's verified identity, or nil when the policy asks for none.
    ///   - trail: where every decision is recorded.
    ///   - catalog: the service catalog (default: the built-in copy of `rules/services`, parsed only when the policy names a service).
    ///   - verifier: verifies JWTs seen in flight against the job's identity (`credential: workload`);
    ///     without one, no credential is ever classified `workload`.
    ///   - detector: the detection rules that classify tokens in flight (the secret scanner's, from
    ///     the composition root); nil: only JWTs, SigV4 and basic auth are recognised.
    ///   - inspector: classifies credentials; default ``BuiltInCredentialInspector`` with `detector`.
    ///   - limits: limits and timeouts.
    ///   - stepStarted: the reference time of `window:`.
    ///   - temporaryDirectory: where the trust bundle's private directory is made (the caller's
    ///     `$TMPDIR`, or `/tmp`); only with services.
    ///   - deferThreads: leave the front threads to ``startServing()`` (the listener is made and
    ///     watched either way: connections wait in its backlog).
    ///   - stopStep: stops the step; called on a violation with `on_violation: kill`, and when the proxy fails.
    /// - Throws: ``EgressError`` — unknown service names (with their policy location), an unusable
    ///   `network.upstream_ca`, or a proxy that cannot start. The step must not run then.
    public static func start(policy: Policy, identity: JobIdentity?, trail: AuditTrail,
                             catalog: ServiceCatalog? = nil, verifier: WorkloadTokenVerifier? = nil,
                             detector: (any CredentialDetector)?, inspector: CredentialInspector? = nil, limits: ProxyLimits = ProxyLimits(),
                             stepStarted: Date = Date(), temporaryDirectory: String = "/tmp", deferThreads: Bool = false,
                             stopStep: @escaping @Sendable () -> Void) throws(EgressError) -> EgressSession {
        StartupTrace.mark("proxy: starting")
        let services = policy.services.isEmpty ? [] : try (catalog ?? .builtIn).bind(policy.services)

        // network.upstream_ca is read (and refused unless it is a PEM file of CA certificates) with or
        // without services: the proxy's upstream TLS uses it, and so does everything `run` fetches.
        let upstreamRoots = try policy.network.upstreamCA.map { path throws(EgressError) in try upstreamCertificates(path) }
        // Nothing is intercepted without services: no CA, no trust bundle, no upstream TLS. With
        // services, one CA constrained to their hosts, in a trust bundle handed to the step, and TLS
        // for forwarding their requests.
        var interception: (authority: CertificateAuthority, caPEM: String, bundle: TrustBundle)?
        var upstreamTLS: UpstreamTLS?
        if !services.isEmpty {
            let authority: CertificateAuthority
            let caPEM: String
            do {
                authority = try CertificateAuthority(commonName: "stepguard per-run CA \(UUID().uuidString.prefix(8))",
                                                     permittedHosts: services.flatMap { $0.hosts.map(\.pattern) })
                caPEM = try authority.certificatePEM
            } catch {
                throw .certificateAuthority("\(error)")
            }
            interception = (authority, caPEM, try TrustBundle.write(caPEM: caPEM, in: temporaryDirectory))
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.applicationProtocols = ["http/1.1"]
            configuration.certificateVerification = .fullVerification
            if let upstreamRoots { configuration.additionalTrustRoots = [.certificates(upstreamRoots)] }
            upstreamTLS = UpstreamTLS(configuration: configuration,
                                      trustedBy: policy.network.upstreamCA.map { "system trust store + \($0)" } ?? "system trust store")
        }
        var started = false
        defer { if !started { interception?.bundle.remove() } }

        // The proxy's own lookups (and the step's resolver's) go to network.dns when the policy sets it.
        NameLookup.configure(upstream: policy.network.dns)
        let maxShortLivedTTL = policy.identity?.lifetime.maxTTL?.seconds ?? 3600
        let minted = MintedCredentials(lifetime: maxShortLivedTTL)
        let state = ProxyState(
            egress: policy.egress, resolveOverrides: policy.network.resolve, services: services, identity: identity,
            inspector: inspector ?? BuiltInCredentialInspector(verifier: verifier, identity: identity, maxShortLivedTTL: maxShortLivedTTL, minted: minted,
                                                             detector: detector),
            minted: minted, trail: trail, auditOnly: policy.mode == .audit, onViolation: policy.onViolation, stopStep: stopStep,
            authority: interception?.authority, upstreamTLS: upstreamTLS, stepStarted: stepStarted, limits: limits)
        defer { if !started { state.stopThreads() } }
        if let upstreamTLS = state.upstreamTLS, let lookups = state.lookups.startIfNeeded(), let loops = state.eventLoops.startIfNeeded() {
            // Loading the system trust store takes milliseconds: it is done on the lookup threads while the step starts.
            upstreamTLS.startMaking(on: lookups)
            // The services' addresses are known before the step runs: it cannot reach one by address first.
            if let resolved = state.decider.serviceAddresses.resolve(services, on: lookups, eventLoop: loops.group.next()) {
                _ = try? resolved.wait()  // not on an event loop: the caller's thread
            }
        }

        // The socket listens before the front threads watch it: connections wait in its backlog,
        // so the step need not wait for them. Should a front thread fail, the step is stopped.
        let (listener, port) = try listen()
        let front: SocketFront
        do {
            front = try SocketFront(state: state, threads: ProxyState.threads) { fd, prefix, handOver in
                handOff(fd, prefix: prefix, as: handOver, state: state)
            }
        } catch {
            close(listener)
            throw error
        }
        front.serve(listener: listener)
        let proxyURL = "http://127.0.0.1:\(port)"
        var environment: [String: String] = [:]
        for name in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
            environment[name] = proxyURL
            environment[name.lowercased()] = proxyURL
        }
        environment["NO_PROXY"] = ""
        environment["no_proxy"] = ""
        if let bundle = interception?.bundle {
            for name in ["SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "AWS_CA_BUNDLE", "GIT_SSL_CAINFO"] {
                environment[name] = bundle.path
            }
        }
        let session = EgressSession(port: port, environment: environment, trustBundle: interception?.bundle, caPEM: interception?.caPEM,
                                    front: front, state: state, dnsUpstream: policy.network.dns)
        @Sendable func failClosed(_ what: String) {
            guard !session.stopping.load(ordering: .relaxed) else { return }
            trail.record(AuditEvent(type: .egress, decision: .deny, reason: "\(what); the step is stopped (fail closed)",
                                    rule: "built-in: fail closed"))
            stopStep()
        }
        let startThreads: @Sendable () -> Void = {
            front.start { error in failClosed("the egress proxy stopped unexpectedly: \(error)") }
        }
        if deferThreads {
            session.startThreads.withLock { $0 = startThreads }
        } else {
            startThreads()
        }
        StartupTrace.mark("proxy: serving")
        started = true
        return session
    }

    /// The CA certificates of `network.upstream_ca` (a PEM file with at least one).
    static func upstreamCertificates(_ path: String) throws(EgressError) -> [NIOSSLCertificate] {
        let certificates: [NIOSSLCertificate]
        do { certificates = try NIOSSLCertificate.fromPEMFile(path) } catch { throw .upstreamCA(path: path, reason: "\(error)") }
        guard !certificates.isEmpty else { throw .upstreamCA(path: path, reason: "no certificate in the file") }
        return certificates
    }

    /// What `start` would refuse `policy` for before the step runs, every problem at once (for
    /// `stepguard policy check`): services the catalog does not know or that need hosts, and a
    /// `network.upstream_ca` that is not a PEM file of CA certificates.
    public static func problems(in policy: Policy, catalog: ServiceCatalog = .builtIn) -> [EgressError] {
        var problems: [EgressError] = []
        var bindable: [ServiceRule] = []
        for rule in policy.services {
            do { _ = try catalog.bind([rule]); bindable.append(rule) } catch { problems.append(error) }
        }
        do { _ = try catalog.bind(bindable) } catch { problems.append(error) }  // services that share a host
        if let path = policy.network.upstreamCA {
            do { _ = try upstreamCertificates(path) } catch { problems.append(error) }
        }
        return problems
    }

    /// Gives a connection the socket front does not serve itself to the NIO pipeline, replaying
    /// the bytes the front already read from it: a proxy connection gets the HTTP decoder and a
    /// ``FrontHandler``, an intercepted one TLS and a front handler for the service.
    private static func handOff(_ fd: Int32, prefix: [UInt8], as handOver: HandOver, state: ProxyState) {
        guard let loops = state.eventLoops.startIfNeeded() else { close(fd); return }  // the proxy is stopping
        ClientBootstrap(group: loops.group)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    let loop = state.resources(on: channel.eventLoop)
                    try sync.addHandler(ReplayHandler(prefix))
                    try sync.addHandler(ConnectionCounter(state: state))
                    switch handOver {
                    case .proxy:
                        try sync.addProxyServerHandlers(limits: state.decoderLimits)
                        try sync.addHandler(FrontHandler(state: state, mode: .proxy, loop: loop))
                    case .intercept(let route, let service, let name):
                        try FrontHandler.addInterceptHandlers(sync, name: name, route: route, service: service, state: state, loop: loop)
                    }
                }
            }
            .withConnectedSocket(fd)
            .whenFailure { _ in close(fd) }
    }

    /// Starts the front threads of a session started with `deferThreads` (connections wait in the
    /// listeners' backlogs until then). `run` starts them once the step has started, while the
    /// step's program loads: making them before cost the step's start about 0.2 ms. Does nothing
    /// the second time, or for a session already serving.
    public func startServing() {
        guard !stopping.load(ordering: .relaxed) else { return }
        startThreads.withLock { start in
            start?()
            start = nil
        }
    }

    /// Also accepts connections on `listeningSocket`, a socket already listening elsewhere — the one
    /// an isolated step's network namespace holds at the proxy's address. The session owns it from now on.
    public func serve(listeningSocket: Int32) throws(EgressError) {
        front.serve(listener: listeningSocket)
    }

    /// Serves an isolated step's captured connections: `listeners` are the capture listeners of its
    /// network namespace, where every TCP connection it opens to a non-loopback address arrives
    /// (see ``FrontLoop/acceptCaptured(_:)``). The session owns them from now on.
    public func serveCapture(listeners: [Int32]) {
        for listener in listeners { front.serve(listener: listener, captured: true) }
    }

    /// Answers an isolated step's DNS (``StepResolver``): `udp` are its sockets on port 53 of every
    /// address, `tcp` its DNS-over-TCP listener, `raw4`/`raw6` the raw sockets that see the UDP it
    /// sends (every datagram that is not DNS is dropped and reported). Captured connections to
    /// addresses it answered with are decided by the names they stand for. The session owns the
    /// sockets from now on; a socket that cannot be served throws (the step must be stopped).
    public func serveResolver(udp: [Int32], tcp: Int32?, raw4: Int32?, raw6: Int32?) throws(EgressError) {
        let resolver = try StepResolver(state: state, dns: dnsUpstream)
        state.capture.attach(resolver)
        for fd in udp { try resolver.serveUDP(fd) }
        if let tcp { try resolver.serveTCP(listener: tcp) }
        if let raw4 { try resolver.watchDroppedUDP(raw: raw4, ipv6: false) }
        if let raw6 { try resolver.watchDroppedUDP(raw: raw6, ipv6: true) }
    }

    /// Stops the proxy, closes every connection, and removes the trust bundle directory. Safe to call more than once.
    ///
    /// With `processExits`, only the bundle directory is removed and the proxy stops recording:
    /// the process is about to exit, which closes the sockets and ends the threads at once, and
    /// an orderly shutdown would only delay the step's exit status.
    public func stop(processExits: Bool = false) {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        startThreads.withLock { $0 = nil }  // never started: nothing to stop, and no cycle left
        trustBundle?.remove()
        if processExits { return }
        state.capture.current?.stop()
        front.stop()
        state.stopThreads()
    }

    /// A TCP socket listening on 127.0.0.1 at an ephemeral port (plain POSIX: no resolver, no event-loop hop).
    private static func listen() throws(EgressError) -> (Int32, Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .cannotListen("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = in_addr_t(UInt32(0x7f00_0001).bigEndian)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                bind(fd, generic, length) == 0 && Glibc.listen(fd, 1024) == 0 && getsockname(fd, generic, &length) == 0
            }
        }
        guard bound else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw .cannotListen("127.0.0.1: \(reason)")
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }
}
