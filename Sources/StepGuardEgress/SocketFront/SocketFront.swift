import FoundationEssentials
import StepGuardCore
import NIOCore
import NIOPosix
import StepGuardAudit
import Synchronization

import CLinuxIO
#if canImport(Glibc)
import Glibc
#endif

/// The proxy's front door: accepts the step's connections on plain epoll threads and serves the
/// two hot cases itself —
///
/// - a bodiless absolute-form `http://` request to a host that is not intercepted: decided, then
///   sent over a pooled keep-alive upstream connection, its response relayed as it comes;
/// - a `CONNECT` tunnel to a host that is not intercepted: decided, then relayed with splice(2).
///
/// A `CONNECT` to a service named in `services:` is decided and answered here too; its connection
/// then goes to a SwiftNIO pipeline that terminates its TLS and decides every request
/// (``HandOver/intercept``). Every other connection (requests with a body, HTTP/1.0, anything
/// unusual or malformed) is handed, with the bytes already read, to the full NIO pipeline
/// (``FrontHandler``), which serves it to the end. Both paths decide with the same ``ProxyState``
/// and record the same audit events.
final class SocketFront: Sendable {
    let loops: [FrontLoop]

    /// - Parameters:
    ///   - handOff: gives a connection (and the bytes read from it so far) to the NIO pipeline.
    init(state: ProxyState, threads count: Int, handOff: @escaping @Sendable (Int32, [UInt8], HandOver) -> Void) throws(EgressError) {
        // Writing or splicing to a socket the peer closed must fail with EPIPE, not end stepguard
        // (the step's own signal dispositions are reset when it is spawned).
        signal(SIGPIPE, SIG_IGN)
        let interval = UInt64(ProxyState.sweepInterval(state.limits).nanoseconds)
        var loops: [FrontLoop] = []
        for _ in 0..<count { loops.append(FrontLoop(state: state, epoll: try EpollLoop(sweepInterval: interval), handOff: handOff)) }
        self.loops = loops
    }

    /// Starts the threads (they end with ``stop()``); `failed` is called if one of them stops on an error.
    func start(failed: @escaping @Sendable (String) -> Void) {
        for (index, loop) in loops.enumerated() {
            let thread = DetachedThread {
                do { try loop.epoll.run() } catch { failed("\(error)") }
            }
            thread.name = "stepguard-front-\(index)"
            thread.start()
        }
    }

    /// Accepts connections on `listener` (a listening socket; the front owns it from now on).
    /// `captured`: it is a capture listener of the step's namespace (``FrontLoop/acceptCaptured(_:)``).
    func serve(listener: Int32, captured: Bool = false) {
        let flags = fcntl(listener, F_GETFL)
        _ = fcntl(listener, F_SETFL, flags | O_NONBLOCK)
        // A connection is accepted once its first bytes are there: the first read finds the request.
        // Not for captured ones: in protocols where the server speaks first, the client waits.
        var seconds: Int32 = 5
        if !captured { setsockopt(listener, Int32(IPPROTO_TCP), TCP_DEFER_ACCEPT, &seconds, socklen_t(MemoryLayout<Int32>.size)) }
        // Accepted sockets inherit TCP_NODELAY from the listener: one call instead of one per connection.
        var one: Int32 = 1
        setsockopt(listener, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let shared = SharedListener(fd: listener, users: loops.count, captured: captured)
        for loop in loops {
            loop.epoll.execute { loop.listen(shared) }
        }
    }

    /// Stops the threads; the sockets are closed with the process or by ``FrontLoop/closeAll()``.
    func stop() {
        for loop in loops {
            loop.epoll.execute { loop.closeAll() }
            loop.epoll.stop()
        }
    }
}

/// A listening socket shared by the loops; closed by the last one that stops using it.
final class SharedListener: Sendable {
    let fd: Int32
    /// Whether its connections are the step's captured ones.
    let captured: Bool
    private let users: Atomic<Int>

    init(fd: Int32, users: Int, captured: Bool = false) {
        self.fd = fd
        self.captured = captured
        self.users = Atomic(users)
    }

    func release() {
        if users.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { close(fd) }
    }
}

/// One front thread's state: its epoll loop, its idle upstream connections, and the connections
/// it watches for deadlines. Only used on its thread.
final class FrontLoop: @unchecked Sendable {  // confined to its EpollLoop's thread, except `epoll.execute`
    let state: ProxyState
    let epoll: EpollLoop
    let handOff: @Sendable (Int32, [UInt8], HandOver) -> Void
    /// Connections that are not tunnels (waiting for a head, connecting, exchanging).
    var connections: [ObjectIdentifier: ClientConnection] = [:]
    var tunnels: [ObjectIdentifier: SpliceTunnel] = [:]
    private var acceptors: [Acceptor] = []
    /// Idle keep-alive upstream sockets.
    private var idle = IdlePool<Int32>()
    private lazy var idleWatcher = IdleUpstreamWatcher(loop: self)
    /// Decided destinations by the authority of absolute-form requests (or that it names a service)
    /// and of CONNECTs.
    private(set) var requestTargets: [String: KnownTarget] = [:]
    private(set) var tunnelTargets: [String: Destination] = [:]
    /// Most authorities remembered per kind; the memory is cleared when full.
    static let maxKnownTargets = 1024

    init(state: ProxyState, epoll: EpollLoop, handOff: @escaping @Sendable (Int32, [UInt8], HandOver) -> Void) {
        self.state = state
        self.epoll = epoll
        self.handOff = handOff
        epoll.onSweep = { [unowned self] now in sweep(now: now) }
    }

    func listen(_ listener: SharedListener) {
        let acceptor = Acceptor(loop: self, listener: listener)
        acceptors.append(acceptor)
        acceptor.enable()
    }

    func connectionClosed() { state.openConnections.subtract(1, ordering: .relaxed) }

    // MARK: Pipes

    /// Empty pipes for splice tunnels, reused so that opening a tunnel costs no pipe(2) and idle tunnels hold none.
    private var pipes: [(read: Int32, write: Int32)] = []
    static let maxIdlePipes = 32

    func takePipe() -> (Int32, Int32)? {
        if let pipe = pipes.popLast() { return pipe }
        var fds: [Int32] = [-1, -1]
        guard sg_pipe(&fds, SplicePipe.size) == 0 else { return nil }  // 1 MiB where allowed; the default 64 KiB works too
        return (fds[0], fds[1])
    }

    /// Keeps an empty pipe for reuse; closes it when it still holds data or enough are kept.
    func returnPipe(_ pipe: (Int32, Int32), empty: Bool) {
        guard empty, pipes.count < Self.maxIdlePipes else {
            Glibc.close(pipe.0)
            Glibc.close(pipe.1)
            return
        }
        pipes.append(pipe)
    }

    // MARK: Known targets

    /// The destination of `route`, decided.
    func destination(_ route: Route) -> Destination {
        Destination(route: route, verdict: state.decider.verdict(for: route), key: "http://\(route.host.text):\(route.port)@\(route.connectAddress)")
    }

    /// Decides `route` and remembers it for `authority` (a route that needed no name lookup).
    func remember(_ authority: String, tunnel: Bool, route: Route) -> Destination {
        let decided = destination(route)
        if tunnel {
            if tunnelTargets.count >= Self.maxKnownTargets { tunnelTargets = [:] }
            tunnelTargets[authority] = decided
        } else {
            remember(authority, as: .destination(decided))
        }
        return decided
    }

    /// Remembers that the absolute-form authority `authority` names a service: the NIO pipeline inspects its requests.
    func rememberIntercepted(_ authority: String) { remember(authority, as: .intercepted) }

    private func remember(_ authority: String, as known: KnownTarget) {
        if requestTargets.count >= Self.maxKnownTargets { requestTargets = [:] }
        requestTargets[authority] = known
    }

    // MARK: Upstream pool

    /// An idle upstream socket for `key` that is still open and quiet.
    func takeIdle(_ key: String) -> Int32? {
        idle.take(key, now: epoll.now, usable: Self.isQuiet, close: epoll.close)
    }

    /// Whether idle `fd` has neither data nor an end of stream waiting (a peek that would block).
    static func isQuiet(_ fd: Int32) -> Bool {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) < 0 && errno == EAGAIN
    }

    /// Keeps `fd` (registered edge-triggered) for reuse; while idle, any event on it closes it.
    func putIdle(_ fd: Int32, key: String) {
        guard idle.put(fd, key: key, now: epoll.now) else { return epoll.close(fd) }
        epoll.setHandler(fd, idleWatcher)
    }

    /// The upstream closed (or wrote to) idle `fd`: it is not reused.
    func dropIdle(_ fd: Int32) {
        idle.remove { $0 == fd }
        epoll.close(fd)
    }

    // MARK: Deadlines

    private func sweep(now: UInt64) {
        idle.sweep(now: now, close: epoll.close)
        for connection in connections.values {
            if connection.deadline <= now { connection.deadlinePassed() }
            // A deadline still ahead keeps its own sweep (a captured connection's 200 ms wait):
            // otherwise one that comes due just after this sweep would wait for the next interval.
            if connection.deadline > now { epoll.sweep(by: connection.deadline) }
        }
        let idleTunnel = UInt64(state.limits.tunnelIdleTimeout.nanoseconds)
        for tunnel in tunnels.values where now - tunnel.lastActivity >= idleTunnel { tunnel.close() }
        for acceptor in acceptors { acceptor.enable() }
    }

    /// Closes every connection and stops accepting (the session stops).
    func closeAll() {
        for connection in connections.values { connection.close() }
        for tunnel in tunnels.values { tunnel.close() }
        idle.removeAll(close: epoll.close)
        for pipe in pipes { Glibc.close(pipe.read); Glibc.close(pipe.write) }
        pipes = []
        for acceptor in acceptors { acceptor.stop() }
        acceptors = []
    }
}

/// Accepts connections from a listening socket shared by all loops (EPOLLEXCLUSIVE: one loop is woken per connection).
final class Acceptor: EpollHandler {
    private let loop: FrontLoop
    private let listener: SharedListener
    private var enabled = false
    private var stopped = false

    init(loop: FrontLoop, listener: SharedListener) {
        self.loop = loop
        self.listener = listener
    }

    /// Watches the listener (again, after running out of descriptors).
    func enable() {
        guard !enabled, !stopped else { return }
        enabled = loop.epoll.register(listener.fd, self, events: UInt32(EPOLLIN.rawValue) | UInt32(SG_EPOLLEXCLUSIVE))
    }

    func stop() {
        guard !stopped else { return }
        stopped = true
        if enabled { loop.epoll.unregister(listener.fd) }
        listener.release()
    }

    func ready(fd: Int32, events: UInt32) {
        for _ in 0..<64 {
            let client = sg_accept(listener.fd)
            if client < 0 {
                if errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM {
                    // Out of descriptors: stop watching until the next sweep rather than spin.
                    loop.epoll.unregister(listener.fd)
                    enabled = false
                }
                return
            }
            if listener.captured {
                loop.acceptCaptured(client)
                continue
            }
            loop.state.openConnections.add(1, ordering: .relaxed)
            ClientConnection(loop: loop, fd: client).start()
        }
    }
}

/// How the NIO pipeline takes over a connection from the socket front.
enum HandOver: Sendable {
    /// As a proxy connection: it parses the bytes read so far as a request and serves it.
    case proxy
    /// As the intercepted connection to a service, its CONNECT already decided and answered; the
    /// bytes read so far are the start of the client's TLS.
    case intercept(route: Route, service: BoundService, name: String)
}

/// What a loop knows about the authority of an absolute-form request it saw before.
enum KnownTarget {
    case destination(Destination)
    /// A host of a service named in `services:`: the NIO pipeline serves it.
    case intercepted
}

/// Receives the events of idle pooled upstream sockets: when the upstream closed one, or sent
/// something unasked, it is not reused. (An event may also be left over from the exchange that
/// just ended on the socket: then a peek finds nothing, and the socket stays in the pool.)
final class IdleUpstreamWatcher: EpollHandler {
    private unowned let loop: FrontLoop
    init(loop: FrontLoop) { self.loop = loop }

    func ready(fd: Int32, events: UInt32) {
        let quiet = events & UInt32(EPOLLERR.rawValue | EPOLLHUP.rawValue | EPOLLRDHUP.rawValue) == 0 && FrontLoop.isQuiet(fd)
        if !quiet { loop.dropIdle(fd) }
    }
}
