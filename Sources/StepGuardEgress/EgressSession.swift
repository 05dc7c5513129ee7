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

/// The part of an egress proxy that does not depend on the policy: its threads (event loops and
/// the pool that resolves host names), the per-run CA, the trust bundle, and the socket it listens on.
///
/// Making it takes a few milliseconds, most of it generating the CA and waiting for new threads to
/// run; `stepguard run` makes it first, so that this overlaps loading the policy and checking the
/// step's environment. A session takes it over (and releases it when it stops); one that no session
/// took must be discarded.
public final class EgressGroundwork: Sendable {
    let group: MultiThreadedEventLoopGroup
    let resolverPool: NIOThreadPool
    let authority: CertificateAuthority
    let caPEM: String
    /// A private 0700 directory holding the trust bundle.
    let bundleDirectory: String
    /// The system CAs and the per-run CA (PEM).
    let bundlePath: String
    /// A socket listening on 127.0.0.1:`port`.
    let listener: Int32
    let port: Int
    private let taken = Atomic<Bool>(false)

    /// Makes the CA, writes the trust bundle, opens the listening socket and starts the threads;
    /// blocks until the threads run, so call it off the event loops.
    /// - Parameter temporaryDirectory: where the per-run trust bundle's private directory is made
    ///   (the caller's `$TMPDIR`, or `/tmp`).
    public init(temporaryDirectory: String = "/tmp") throws(EgressError) {
        // The event loops come up on a thread of their own (each new loop thread is waited for)
        // while this one makes the CA and the bundle.
        let loops = EventLoopsStarting()
        let pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        var made = false
        defer {
            if !made {
                loops.wait().shutdownGracefully { _ in }
                pool.shutdownGracefully { _ in }
            }
        }
        do {
            (authority, caPEM) = try Self.makeAuthority(permitting: [])
        } catch {
            throw .certificateAuthority("\(error)")
        }
        (bundleDirectory, bundlePath) = try EgressSession.writeTrustBundle(caPEM: caPEM, in: temporaryDirectory)
        do {
            (listener, port) = try Self.listen()
        } catch {
            try? FileManager.default.removeItem(atPath: bundleDirectory)
            throw error
        }
        resolverPool = pool
        group = loops.wait()
        made = true
    }

    /// A per-run CA that may issue only for `hosts` (see ``CertificateAuthority/nameConstraints(permitting:)``), and its PEM.
    static func makeAuthority(permitting hosts: [String]) throws -> (CertificateAuthority, String) {
        let authority = try CertificateAuthority(commonName: "stepguard per-run CA \(UUID().uuidString.prefix(8))", permittedHosts: hosts)
        return (authority, try authority.certificatePEM)
    }

    /// Hands the groundwork to a session; false when it was already taken or discarded.
    func take() -> Bool { !taken.exchange(true, ordering: .acquiringAndReleasing) }

    /// Releases the threads, the socket and the bundle directory, unless a session took them.
    public func discard() {
        guard take() else { return }
        release(closingListener: true)
    }

    func release(closingListener: Bool) {
        if closingListener { close(listener) }
        group.shutdownGracefully { _ in }
        resolverPool.shutdownGracefully { _ in }
        removeBundle()
    }

    /// Removes the bundle and its directory, which holds nothing else (plain calls: this runs after every step).
    func removeBundle() {
        unlink(bundlePath)
        if rmdir(bundleDirectory) != 0 { try? FileManager.default.removeItem(atPath: bundleDirectory) }
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
    /// Variables to add to the step's environment: proxy settings and CA bundle paths.
    public let environment: [String: String]
    /// The PEM file with the system CAs and the per-run CA (inside a private 0700 directory).
    public let trustBundlePath: String
    /// The per-run CA certificate (PEM); its key never leaves memory.
    public let certificateAuthorityPEM: String

    private let groundwork: EgressGroundwork
    /// Internal for the fail-closed test, which breaks a front thread.
    let front: SocketFront
    private let state: ProxyState
    private let stopping = Atomic<Bool>(false)
    /// `network.dns`: the upstream of the step's resolver under capture.
    private let dnsUpstream: HostPort?

    /// Tokens the step obtained through an allowed exchange (`mints:`), for revocation.
    public var minted: MintedCredentials { state.minted }

    /// The reference time of the services' `window:`.
    public var stepStarted: Date { state.stepStarted }

    /// Event loop threads serving the proxy; each keeps its own pool of idle upstream connections.
    public var threads: Int { state.threads }

    /// Client connections open right now (tunnels count once).
    public var openConnections: Int { state.openConnections.load(ordering: .relaxed) }

    private init(port: Int, environment: [String: String], groundwork: EgressGroundwork, caPEM: String,
                 front: SocketFront, state: ProxyState, dnsUpstream: HostPort?) {
        self.dnsUpstream = dnsUpstream
        self.port = port
        self.environment = environment
        self.trustBundlePath = groundwork.bundlePath
        self.certificateAuthorityPEM = caPEM
        self.groundwork = groundwork
        self.front = front
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
    ///   - detector: the detection rules that classify tokens in flight (the secret scanner's, from
    ///     the composition root); nil: only JWTs, SigV4 and basic auth are recognised.
    ///   - inspector: classifies credentials; default ``BuiltInCredentialInspector`` with `detector`.
    ///   - limits: limits and timeouts.
    ///   - stepStarted: the reference time of `window:`.
    ///   - groundwork: the proxy's threads, CA, bundle and socket, if made ahead (see ``EgressGroundwork``);
    ///     the session takes it over, also when starting fails.
    ///   - stopStep: stops the step; called on a violation with `on_violation: kill`, and when the proxy fails.
    /// - Throws: ``EgressError`` — unknown service names (with their policy location), an unusable
    ///   `network.upstream_ca`, or a proxy that cannot start. The step must not run then.
    public static func start(policy: Policy, identity: JobIdentity?, trail: AuditTrail,
                             catalog: ServiceCatalog? = nil, verifier: WorkloadTokenVerifier? = nil,
                             detector: (any CredentialDetector)?, inspector: CredentialInspector? = nil, limits: ProxyLimits = ProxyLimits(),
                             stepStarted: Date = Date(), groundwork: EgressGroundwork? = nil,
                             stopStep: @escaping @Sendable () -> Void) async throws(EgressError) -> EgressSession {
        let groundwork = if let groundwork { groundwork } else { try EgressGroundwork() }
        guard groundwork.take() else { throw .cannotListen("internal error: the proxy's groundwork was already used or discarded") }
        var started = false
        var listenerHandedOver = false  // from then on the server channel closes it, also on failure
        defer { if !started { groundwork.release(closingListener: !listenerHandedOver) } }
        let services = policy.services.isEmpty ? [] : try (catalog ?? .builtIn).bind(policy.services)

        var upstreamConfiguration = TLSConfiguration.makeClientConfiguration()
        upstreamConfiguration.applicationProtocols = ["http/1.1"]
        upstreamConfiguration.certificateVerification = .fullVerification
        if let path = policy.network.upstreamCA {
            upstreamConfiguration.additionalTrustRoots = [.certificates(try upstreamCertificates(path))]
        }
        // Only intercepted services are forwarded over TLS by the proxy itself; without any, loading
        // the system trust store would cost every run milliseconds for nothing. With services, it is
        // loaded on the thread pool while the step starts.
        let upstreamTLS = services.isEmpty ? nil
            : UpstreamTLS(configuration: upstreamConfiguration, trustedBy: policy.network.upstreamCA.map { "system trust store + \($0)" } ?? "system trust store",
                          pool: groundwork.resolverPool)

        // The groundwork's CA may issue for no real name (nothing is intercepted without services);
        // with services, a CA constrained to their hosts replaces it in the trust bundle.
        var (authority, caPEM) = (groundwork.authority, groundwork.caPEM)
        if !services.isEmpty {
            do {
                (authority, caPEM) = try EgressGroundwork.makeAuthority(permitting: services.flatMap { $0.hosts.map(\.pattern) })
            } catch {
                throw .certificateAuthority("\(error)")
            }
            try rewriteTrustBundle(groundwork.bundlePath, caPEM: caPEM)
        }

        // The proxy's own lookups (and the step's resolver's) go to network.dns when the policy sets it.
        NameLookup.configure(upstream: policy.network.dns)
        let maxShortLivedTTL = policy.identity?.lifetime.maxTTL?.seconds ?? 3600
        let minted = MintedCredentials(lifetime: maxShortLivedTTL)
        let state = ProxyState(
            egress: policy.egress, resolveOverrides: policy.network.resolve, services: services, identity: identity,
            inspector: inspector ?? BuiltInCredentialInspector(verifier: verifier, identity: identity, maxShortLivedTTL: maxShortLivedTTL, minted: minted,
                                                             detector: detector),
            minted: minted, trail: trail, auditOnly: policy.mode == .audit, onViolation: policy.onViolation, stopStep: stopStep,
            authority: authority, upstreamTLS: upstreamTLS, stepStarted: stepStarted, limits: limits,
            resolverPool: groundwork.resolverPool, eventLoops: Array(groundwork.group.makeIterator()))
        state.startSweeps()
        // The services' addresses are known before the step runs: it cannot reach one by address first.
        if let lookups = state.decider.serviceAddresses.resolve(services, on: groundwork.resolverPool, eventLoop: groundwork.group.next()) {
            try? await lookups.get()
        }

        // The socket already listens: connections wait in its backlog until a front thread watches
        // it, so the step need not wait for that. Should a front thread fail, the step is stopped.
        let group = groundwork.group
        let front = try SocketFront(state: state, threads: state.threads) { fd, prefix, handOver in
            handOff(fd, prefix: prefix, as: handOver, group: group, state: state)
        }
        listenerHandedOver = true
        front.serve(listener: groundwork.listener)
        let port = groundwork.port
        let proxyURL = "http://127.0.0.1:\(port)"
        var environment: [String: String] = [:]
        for name in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
            environment[name] = proxyURL
            environment[name.lowercased()] = proxyURL
        }
        environment["NO_PROXY"] = ""
        environment["no_proxy"] = ""
        for name in ["SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "AWS_CA_BUNDLE", "GIT_SSL_CAINFO"] {
            environment[name] = groundwork.bundlePath
        }
        let session = EgressSession(port: port, environment: environment, groundwork: groundwork, caPEM: caPEM,
                                    front: front, state: state, dnsUpstream: policy.network.dns)
        @Sendable func failClosed(_ what: String) {
            guard !session.stopping.load(ordering: .relaxed) else { return }
            trail.record(AuditEvent(type: .egress, decision: .deny, reason: "\(what); the step is stopped (fail closed)",
                                    rule: "built-in: fail closed"))
            stopStep()
        }
        front.start { error in failClosed("the egress proxy stopped unexpectedly: \(error)") }
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
    private static func handOff(_ fd: Int32, prefix: [UInt8], as handOver: HandOver, group: MultiThreadedEventLoopGroup, state: ProxyState) {
        ClientBootstrap(group: group)
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
        if processExits { return groundwork.removeBundle() }
        state.capture.current?.stop()
        front.stop()
        groundwork.release(closingListener: false)  // the front owns the listener now
    }

    /// Creates `path` (mode 0644; it must not exist) with the first readable system bundle, copied
    /// by the kernel, followed by the per-run CA. False with errno set on failure.
    static func writeBundle(_ path: String, caPEM: String) -> Bool {
        let output = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard output >= 0 else { return false }
        defer { close(output) }
        var endsWithNewline = true
        if let input = systemBundles.lazy.map({ open($0, O_RDONLY | O_CLOEXEC) }).first(where: { $0 >= 0 }) {
            defer { close(input) }
            var info = stat()
            guard fstat(input, &info) == 0 else { return false }
            var copied = 0
            while copied < Int(info.st_size) {
                let count = sendfile(output, input, nil, Int(info.st_size) - copied)
                if count < 0 && errno == EINTR { continue }
                guard count >= 0 else { return false }
                if count == 0 { break }  // the file shrank while being copied
                copied += count
            }
            var last: UInt8 = 0
            if copied > 0, pread(input, &last, 1, off_t(copied - 1)) == 1 { endsWithNewline = last == UInt8(ascii: "\n") }
        }
        let text = Array("\(endsWithNewline ? "" : "\n")# stepguard per-run CA (intercepts the services named in the policy)\n\(caPEM)\n".utf8)
        var written = 0
        while written < text.count {
            let count = text.withUnsafeBytes { write(output, $0.baseAddress! + written, $0.count - written) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return false }
            written += count
        }
        return fchmod(output, 0o644) == 0
    }

    /// The system CA bundle stepguard trusts upstream and hands to steps, and how many certificates
    /// it holds; nil when none of the usual locations has one.
    public static func systemTrustBundle() -> (path: String, certificates: Int)? {
        for path in systemBundles {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { continue }
            let count = text.components(separatedBy: "-----BEGIN CERTIFICATE-----").count - 1
            if count > 0 { return (path, count) }
        }
        return nil
    }

    /// Candidate locations of the system CA bundle (Debian/Ubuntu, RHEL/Fedora, Alpine/macOS).
    public static let systemBundles = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"]

    /// Replaces the bundle at `path` with one holding `caPEM` instead (written beside it, then renamed over it).
    static func rewriteTrustBundle(_ path: String, caPEM: String) throws(EgressError) {
        let next = path + ".next"
        guard writeBundle(next, caPEM: caPEM), rename(next, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(next)
            throw .cannotWriteTrustBundle(path: path, reason: reason)
        }
    }

    /// Writes system CAs + the per-run CA into a fresh 0700 directory; returns (directory, bundle path).
    static func writeTrustBundle(caPEM: String, in base: String) throws(EgressError) -> (String, String) {
        var template = Array("\(base)/stepguard-egress-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw .cannotWriteTrustBundle(path: base, reason: String(cString: strerror(errno)))
        }
        let directory = String(cString: made)
        chmod(directory, 0o700)
        let path = directory + "/ca-bundle.pem"
        guard writeBundle(path, caPEM: caPEM) else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: directory)
            throw .cannotWriteTrustBundle(path: path, reason: reason)
        }
        return (directory, path)
    }
}

/// An event-loop group whose threads start on a dispatch thread; ``wait()`` returns it once they run.
final class EventLoopsStarting: Sendable {
    private let ready = DispatchSemaphore(value: 0)
    private let group = Mutex<MultiThreadedEventLoopGroup?>(nil)

    init() {
        DispatchQueue.global().async { [self] in
            let started = MultiThreadedEventLoopGroup(numberOfThreads: max(1, min(System.coreCount, 4)))
            group.withLock { $0 = started }
            ready.signal()
        }
    }

    /// The group, once its threads run; call once.
    func wait() -> MultiThreadedEventLoopGroup {
        ready.wait()
        return group.withLock { $0! }
    }
}
