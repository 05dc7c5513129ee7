import FoundationEssentials
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import StepGuardAudit
import StepGuardPolicy
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Limits and timeouts of the proxy (the defaults suit CI steps; tests shorten them).
public struct ProxyLimits: Sendable {
    /// Most bytes of request header fields (names and values) in one request.
    public var maxHeaderBytes = 32 * 1024
    /// Most header fields in one request.
    public var maxHeaderCount = 100
    /// How long a connection may wait for (the rest of) the next request head.
    public var requestHeadTimeout: TimeAmount = .seconds(30)
    /// How long a request's body may take to arrive after its head (a late body gets `408`) …
    public var requestBodyTimeout: TimeAmount = .seconds(60)
    /// … plus one second for every this many bytes received: uploads at this pace or faster never
    /// time out, stalled or trickling ones do (0: the timeout is absolute).
    public var requestBodyMinRate = 1024
    /// How long an open tunnel may stay without traffic either way.
    public var tunnelIdleTimeout: TimeAmount = .minutes(10)
    /// How long a forwarded request may go without progress either way: no response yet (then the
    /// client gets `504`), or no further bytes of its response (then both connections close).
    public var responseIdleTimeout: TimeAmount = .minutes(10)
    /// How long to wait for an upstream TCP connection.
    public var connectTimeout: TimeAmount = .seconds(15)
    /// Most bytes of a request body read before deciding (services that carry credentials in bodies).
    public var maxInspectedBody = 1024 * 1024

    public init() {}

    /// `amount` in seconds, for messages (`30 s`, `0.25 s`).
    static func describe(_ amount: TimeAmount) -> String {
        let milliseconds = amount.nanoseconds / 1_000_000
        return milliseconds % 1000 == 0 ? "\(milliseconds / 1000) s" : "\(Double(milliseconds) / 1000) s"
    }
}

/// Where a request goes: the normalised host, the addresses it resolved to (all checked), and the
/// address the proxy connects to (one of the checked ones).
struct Route: Sendable {
    let host: HostName.Normalised
    let port: UInt16
    let addresses: [IPAddress]
    let connectAddress: SocketAddress
    /// Whether the addresses come from the policy's `network.resolve` (not from a lookup or the request).
    var fromPolicy = false

    /// `host:port (address)`, for messages.
    var described: String { "\(hostAndPort) (\(connectAddress))" }
    /// `host:port`, as decisions name a tunnel's target.
    var hostAndPort: String { "\(host.text):\(port)" }
}

/// Everything the proxy's handlers share; one per session.
final class ProxyState: Sendable {
    /// Every egress decision (see ``EgressDecider``).
    let decider: EgressDecider
    /// What decides each request to an intercepted service.
    let serviceContext: ServiceContext
    let resolveOverrides: [HostPort: HostPort]
    /// Tokens read from the responses of allowed token exchanges (see ``MintOperation``).
    let minted: MintedCredentials
    let trail: AuditTrail
    let auditOnly: Bool
    let onViolation: ViolationAction
    let stopStep: @Sendable () -> Void
    /// The per-run CA that issues the intercepted services' certificates; nil when the policy names none.
    let authority: CertificateAuthority?
    /// TLS for forwarding intercepted requests; nil when the policy names no service (nothing is intercepted).
    let upstreamTLS: UpstreamTLS?
    let stepStarted: Date
    let limits: ProxyLimits
    /// The threads that run blocking name lookups, started on the first lookup.
    let lookups = StartedOnFirstUse<NIOThreadPool>(
        start: {
            let pool = NIOThreadPool(numberOfThreads: 2)
            pool.start()
            return pool
        },
        stop: { $0.shutdownGracefully { _ in } })
    /// The NIO event loops that serve handed-off and intercepted connections, started on the first
    /// hand-off, each with its resources and its periodic sweep.
    let eventLoops: StartedOnFirstUse<NIOLoops>
    let openConnections = Atomic<Int>(0)
    /// The step's resolver under transparent capture (names behind captured addresses).
    let capture = CaptureLink()
    let leafContexts = Mutex<[String: NIOSSLContext]>([:])

    init(egress: EgressPolicy, resolveOverrides: [HostPort: HostPort], services: [BoundService], identity: JobIdentity?,
         inspector: CredentialInspector, minted: MintedCredentials, trail: AuditTrail, auditOnly: Bool, onViolation: ViolationAction,
         stopStep: @escaping @Sendable () -> Void, authority: CertificateAuthority?, upstreamTLS: UpstreamTLS?,
         stepStarted: Date, limits: ProxyLimits) {
        self.decider = EgressDecider(egress: egress, services: services, resolveOverrides: resolveOverrides)
        self.serviceContext = ServiceContext(inspector: inspector, identity: identity, stepStarted: stepStarted)
        self.resolveOverrides = resolveOverrides
        self.minted = minted
        self.trail = trail
        self.auditOnly = auditOnly
        self.onViolation = onViolation
        self.stopStep = stopStep
        self.authority = authority
        self.upstreamTLS = upstreamTLS
        self.stepStarted = stepStarted
        self.limits = limits
        let sweepInterval = Self.sweepInterval(limits)
        self.eventLoops = StartedOnFirstUse(
            start: { NIOLoops(threads: Self.threads, tunnelIdleTimeout: limits.tunnelIdleTimeout, sweepInterval: sweepInterval) },
            stop: { $0.group.shutdownGracefully { _ in } })
    }

    /// Shuts down the lookup threads and the event loops (if they ever started); neither starts again.
    func stopThreads() {
        lookups.shutDown()
        eventLoops.shutDown()
    }

    /// How many event loops (and socket-front threads) serve the proxy.
    static let threads = max(1, min(System.coreCount, 4))

    /// The resources of `eventLoop`, one of the session's loops; call it on that loop.
    func resources(on eventLoop: EventLoop) -> LoopResources {
        guard let box = eventLoops.started?.resources[ObjectIdentifier(eventLoop)] else {
            preconditionFailure("stepguard egress: a channel on an event loop that is not the session's")
        }
        return box.value
    }

    /// How often each loop checks request-head deadlines, idle tunnels and idle pooled connections.
    static func sweepInterval(_ limits: ProxyLimits) -> TimeAmount {
        let quarter = min(limits.requestHeadTimeout, limits.tunnelIdleTimeout, limits.responseIdleTimeout).nanoseconds / 4
        return .nanoseconds(max(TimeAmount.milliseconds(10).nanoseconds, min(TimeAmount.seconds(1).nanoseconds, quarter)))
    }


    /// The services the policy names.
    var services: [BoundService] { decider.services }

    // MARK: Resolution

    /// The route of `host` when no lookup is needed: a `network.resolve` entry or an IP address; nil for a name to resolve.
    func knownRoute(host: HostName.Normalised, port: UInt16) throws -> Route? {
        if let override = resolveOverrides[HostPort(host: host.text, port: port)], let address = IPAddress(override.host) {
            return try Route(host: host, port: port, addresses: [address], connectAddress: Self.socketAddress(address, port: override.port), fromPolicy: true)
        }
        if case .address(let address) = host {
            return try Route(host: host, port: port, addresses: [address], connectAddress: Self.socketAddress(address, port: port))
        }
        return nil
    }

    /// Resolves `host` (or applies `network.resolve`), off the event loop.
    func route(host: HostName.Normalised, port: UInt16, _ ask: Ask, on eventLoop: EventLoop) -> EventLoopFuture<Route> {
        do {
            if let known = try knownRoute(host: host, port: port) { return eventLoop.makeSucceededFuture(known) }
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        if let denial = denyBeforeResolving(host: host, port: port, ask) { return eventLoop.makeFailedFuture(denial) }
        guard let pool = lookups.startIfNeeded() else {
            return eventLoop.makeFailedFuture(ProxyFailure(status: .badGateway, reason: "the proxy is stopping"))
        }
        return pool.runIfActive(eventLoop: eventLoop) { try Self.resolvedRoute(host: host, port: port) }
    }

    /// Resolves `host` with getaddrinfo (blocking: call it on the resolver threads); every address
    /// is checked, the first is connected to.
    static func resolvedRoute(host: HostName.Normalised, port: UInt16) throws -> Route {
        let addresses = try resolve(host.text)
        return Route(host: host, port: port, addresses: addresses, connectAddress: try socketAddress(addresses[0], port: port))
    }

    /// Denies (and records) a connection to a name the policy denies whatever it resolves to,
    /// before any lookup (``EgressDecider/decideBeforeResolving(host:port:_:)``). Nil when the name
    /// may be resolved, and in audit mode, where the request goes ahead (and its name is resolved)
    /// whatever the verdict.
    func denyBeforeResolving(host: HostName.Normalised, port: UInt16, _ ask: Ask) -> ProxyFailure? {
        guard !auditOnly, let record = decider.decideBeforeResolving(host: host, port: port, ask) else { return nil }
        _ = enforce(record)
        return record.denial
    }

    static func socketAddress(_ address: IPAddress, port: UInt16) throws -> SocketAddress {
        try SocketAddress(ipAddress: address.unmapped.description, port: Int(port))
    }

    /// Every address of `name` (IPv4-mapped IPv6 unwrapped), from the session's ``NameLookup``:
    /// the policy's `network.dns` server when set, else getaddrinfo.
    static func resolve(_ name: String) throws -> [IPAddress] {
        try NameLookup.session.addresses(of: name)
    }

    // MARK: Enforcement

    /// Records `record` and, when it denies, applies `on_violation`. Returns true when the action
    /// must be blocked (a deny outside `mode: audit`). The subject is built only when the event is
    /// kept, logged or printed.
    func enforce(_ record: DecisionRecord) -> Bool {
        if record.allowed, !trail.wantsAllowedRequestEvents {
            trail.countAllowedRequest()
            return false
        }
        trail.record(AuditEvent(type: record.type, decision: record.allowed ? .allow : .deny, reason: record.reason, rule: record.rule,
                                subject: record.subject))
        guard !record.allowed, !auditOnly else { return false }
        if onViolation == .kill { stopStep() }
        return true
    }

    /// Records `decision` (see ``enforce(_:)-(DecisionRecord)``); what to do with the connection:
    /// a blocked decision becomes its `403`.
    func enforce(_ decision: ConnectionDecision) -> ConnectionDecision.Action {
        if let record = decision.record, enforce(record) { return .refuse(record.denial) }
        return decision.action
    }

    // MARK: Certificates

    /// The TLS server context for intercepting `host`: a leaf certificate from the per-run CA,
    /// issued once per host; ALPN http/1.1 only. The ClientHello's SNI is checked before the
    /// handshake starts, by ``FirstBytesGate/interceptedSNI(host:trail:)`` in front of the TLS handler.
    func leafContext(for host: String) throws -> NIOSSLContext {
        if let cached = leafContexts.withLock({ $0[host] }) { return cached }
        // The guard takes an SNI spelled exactly like `host` as equal to it without normalising it
        // again: that holds only for a host that is its own normal form (every CONNECT host is).
        guard HostName.normalise(host)?.text == host else {
            throw ProxyFailure(status: .badRequest, reason: "'\(host.prefix(100))' is not a normalised host name")
        }
        guard let authority else {  // only services are intercepted, and with services there is a CA
            throw ProxyFailure(status: .badGateway, reason: "no per-run CA: the policy names no service to intercept")
        }
        let issued = try authority.issueServerCertificate(for: host)
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(try NIOSSLCertificate(bytes: try issued.certificateDER, format: .der))],
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(issued.privateKeyPEM.utf8), format: .pem)))
        configuration.applicationProtocols = ["http/1.1"]
        configuration.minimumTLSVersion = .tlsv12
        let context = try NIOSSLContext(configuration: configuration)
        leafContexts.withLock { $0[host] = context }
        return context
    }
}

/// The proxy's NIO event loops and, per loop, the upstream pool and the fronts waiting for a
/// request head; each loop sweeps its resources periodically until the group shuts down.
struct NIOLoops: Sendable {
    let group: MultiThreadedEventLoopGroup
    let resources: [ObjectIdentifier: NIOLoopBoundBox<LoopResources>]

    init(threads: Int, tunnelIdleTimeout: TimeAmount, sweepInterval: TimeAmount) {
        group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        var resources: [ObjectIdentifier: NIOLoopBoundBox<LoopResources>] = [:]
        for loop in group.makeIterator() {
            let box = NIOLoopBoundBox.makeBoxSendingValue(LoopResources(tunnelIdleTimeout: tunnelIdleTimeout), eventLoop: loop)
            resources[ObjectIdentifier(loop)] = box
            loop.scheduleRepeatedTask(initialDelay: sweepInterval, delay: sweepInterval) { _ in box.value.sweep() }
        }
        self.resources = resources
    }
}
