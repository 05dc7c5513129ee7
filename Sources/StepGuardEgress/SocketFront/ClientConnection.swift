import CLinuxIO
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Where a request head sends a connection, decided once per loop for targets that need no name
/// lookup (an IP address or a `network.resolve` entry): the policy cannot change while the step runs.
struct Destination {
    let route: Route
    let verdict: ConnectionVerdict
    /// The upstream pool key: decided host, port and the checked address.
    let key: String
}

// Longer than 500 lines on purpose: this is one state machine (head → routing → connecting →
// exchanging / inspecting → done) over one set of buffers and sockets, and each phase's I/O must
// see every field. Split across files, its fields would have to lose `private`, and the phases
// would be read apart. What it decides lives in Decision/ (EgressDecider, RequestTarget,
// TunnelStart); what remains here moves bytes.

/// One client connection of the socket front (see ``SocketFront``): reads a request head, serves
/// bodiless `http://` requests over pooled upstream sockets, opens splice tunnels for CONNECT (or,
/// to a named service, hands the answered CONNECT to NIO's intercept pipeline), or hands the
/// connection to the NIO pipeline.
///
/// Its sockets are registered edge-triggered once (``EpollLoop/edgeEvents``): each event, and each
/// change of phase, does the I/O the phase needs until it would block.
final class ClientConnection: EpollHandler, @unchecked Sendable {  // confined to its loop's thread; only sent back to it
    private enum Phase { case head, routing, connecting, exchanging, inspecting, naming, done }

    private let loop: FrontLoop
    private var state: ProxyState { loop.state }
    let fd: Int32
    private var phase = Phase.head
    private var input = ByteQueue()
    private var output = ByteQueue()
    private var response = ByteQueue()
    /// The request head as sent upstream (kept whole for one retry) and how much of it was written.
    private var request = ByteQueue()
    private var sent = 0
    private var method = ""
    private var path = ""
    private var isTunnel = false
    /// A connection the step opened to an address and its namespace redirected here (transparent
    /// capture): there is no request line, it is relayed like a CONNECT to where it was going, and
    /// a refusal resets it (its client does not speak to a proxy).
    private var captured = false
    /// A captured connection to a bare address the policy denies, waiting for its first bytes to
    /// name a host (``CapturedName``): the denial, enforced if they name none.
    private var pendingDenial: ConnectionDecision?
    /// A captured connection on a plain-HTTP port (``CapturedName/carriesPlainHTTP(port:)``),
    /// allowed to this destination when it was captured: its requests go over pooled upstream
    /// connections there, as bodiless `http://` requests do, until one the front does not serve
    /// relays the rest of the connection as a tunnel.
    private var capturedHTTP: Destination?
    /// Whether that connection's first request is still awaited (``CapturedName/firstRequestWait``).
    private var awaitingFirstRequest = false
    /// Whether requests were served before the connection was relayed as a tunnel (what follows
    /// must then be HTTP too, see ``TunnelRequests``).
    private var relayAfterRequests = false
    private var route: Route?
    private var key = ""
    private var upstream: Int32 = -1
    private var reused = false
    private var responseStarted = false
    private var framing: BodyFraming?
    /// The pipe the rest of a long response body is spliced through (upstream → pipe → client, see
    /// ``spliceBody()``): held while that is under way.
    private var bodyPipe = SplicePipe()
    private var reusable = true
    private var closeAfterResponse = false
    /// Whether the client socket is in the epoll set: only once something must wait for it (most
    /// plain requests arrive whole with the connection and their response is written at once).
    private var watched = false
    /// When the current phase must be over (head, connect, tunnel start); checked by the loop's sweep.
    private(set) var deadline: UInt64 = .max
    /// When the current exchange last moved bytes either way (for ``ProxyLimits/responseIdleTimeout``).
    private var lastProgress: UInt64 = 0

    init(loop: FrontLoop, fd: Int32) {
        self.loop = loop
        self.fd = fd
    }

    func start() {
        loop.connections[ObjectIdentifier(self)] = self
        waitForHead()
    }

    /// Starts a captured connection (see ``captured``) to `host:port`.
    func startCaptured(host: HostName.Normalised, port: UInt16) {
        loop.connections[ObjectIdentifier(self)] = self
        captured = true
        isTunnel = true
        method = "TCP"
        let authority = captureAuthority(host, port: port)
        if let known = loop.tunnelTargets[authority] { return decided(known) }
        route(host, port, authority: authority)
    }

    /// Puts the client socket in the epoll set (edge-triggered: an event already due is reported at once).
    private func watch() -> Bool {
        if !watched { watched = loop.epoll.register(fd, self, events: EpollLoop.edgeEvents) }
        return watched
    }

    private func waitForHead() {
        phase = .head
        deadline = loop.epoll.now + UInt64(state.limits.requestHeadTimeout.nanoseconds)
        if !input.isEmpty { parseHead() }
        readHead()
    }

    func deadlinePassed() {
        switch phase {
        case .head where awaitingFirstRequest: relayCaptured()
        case .head, .inspecting: close()
        case .naming: refusePendingDenial()
        case .connecting:
            reject(.gatewayTimeout, decision: "error", rule: "upstream",
                   reason: "connecting to \(route?.described ?? "the upstream") timed out")
        case .exchanging:
            // The client is not watched while its response is awaited: see whether it went away
            // (then the upstream connection is closed too, not left waiting for a slow answer).
            var byte: UInt8 = 0
            let peeked = recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
            if peeked == 0, capturedHTTP != nil {
                // A captured client speaks to the server, not to a proxy: the end of its stream is
                // a half-close (`shutdown(SHUT_WR)`, `nc -N`) that still waits for the response, as
                // it did through a tunnel; no request follows it. (One that went away fails the
                // next write; one whose server never answers ends with the response idle timeout.)
                closeAfterResponse = true
            } else if peeked == 0 || (peeked < 0 && errno != EAGAIN && errno != EINTR) {
                return close()
            }
            checkClientLater()
            if loop.epoll.now - lastProgress >= UInt64(state.limits.responseIdleTimeout.nanoseconds) { exchangeStalled() }
        default: break
        }
    }

    /// While a response is awaited, the sweep looks after a second whether the client is still there.
    private func checkClientLater() { deadline = loop.epoll.now + 1_000_000_000 }

    // MARK: Events

    func ready(fd: Int32, events: UInt32) {
        let failed = events & UInt32(EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0
        if fd == self.fd {
            if !output.isEmpty { flushOutput() }
            switch phase {
            case .head: readHead()
            case .inspecting: inspectTunnelStart()
            case .naming: readClient(while: .naming, ended: refusePendingDenial) { checkCapturedName() }
            case .exchanging where bodyPipe.isHeld: spliceBody()
            case .done: break
            default: if failed { close() }
            }
        } else if fd == upstream {
            switch phase {
            case .connecting: connected()
            case .exchanging:
                if sent < request.count { sendRequest() }
                if phase == .exchanging, upstream == fd, output.isEmpty { readResponse() }
            case .inspecting: relayServerGreeting()
            default: break
            }
        }
    }

    // MARK: Request head

    /// Heads longer than this go to the NIO pipeline, which applies the header limits.
    private static let maxFastHead = 8192

    private func readHead() { readClient(while: .head, ended: headEnded) { parseHead() } }

    /// The client ended its side within a request head: a captured connection relays what it sent
    /// (a protocol other than HTTP, then its half-close); any other closes.
    private func headEnded() { capturedHTTP != nil && !input.isEmpty ? relayCaptured() : close() }

    /// Reads from the client while the phase stays `expected`, giving each read to `consume`;
    /// waits for more when there is none; at the end of the stream or on an error, calls `ended`
    /// (default: closes).
    private func readClient(while expected: Phase, ended: (() -> Void)? = nil, _ consume: () -> Void) {
        while phase == expected {
            switch input.read(from: fd, chunk: 4096) {
            case .read: consume()
            case .wouldBlock: return watch() ? () : close()
            case .ended: return ended.map { $0() } ?? close()
            }
        }
    }

    private func parseHead() {
        switch RawHead.parse(input.bytes, maxFields: state.limits.maxHeaderCount) {
        case .incomplete:
            if input.count > Self.maxFastHead || (capturedHTTP != nil && !Self.mayStartRequest(input.bytes)) { notServed() }
        case .invalid:
            notServed()
        case .complete(let head):
            dispatch(head)
        }
    }

    /// Whether `bytes` may begin a request line: a method of token characters, then a space. A
    /// captured connection whose first bytes cannot (a TLS ClientHello on 8080, an SSH banner) is
    /// relayed at once rather than after ``CapturedName/firstRequestWait``.
    private static func mayStartRequest(_ bytes: UnsafeRawBufferPointer) -> Bool {
        for (index, byte) in bytes.enumerated() {
            if byte == 32 { return index > 0 }
            if !RawHead.isTokenByte(byte) { return false }
        }
        return true
    }

    /// What the front does with a complete request head: serves it, or hands the connection over.
    private func dispatch(_ head: RawHead) {
        let bytes = input.bytes
        guard bytes.equalsIgnoringCase(head.start.2, "http/1.1") else { return notServed() }
        var hostFields = 0
        var fieldBytes = 0
        closeAfterResponse = false
        for (name, value) in head.fields {
            fieldBytes += name.count + value.count
            switch name.count {
            case 4 where bytes.equalsIgnoringCase(name, "host"): hostFields += 1
            case 14 where bytes.equalsIgnoringCase(name, "content-length"):
                guard value.count == 1, bytes[value.lowerBound] == UInt8(ascii: "0") else { return notServed() }
            case 17 where bytes.equalsIgnoringCase(name, "transfer-encoding"): return notServed()
            case 7 where bytes.equalsIgnoringCase(name, "upgrade"): return notServed()
            case 6 where bytes.equalsIgnoringCase(name, "expect"): return notServed()
            case 10 where bytes.equalsIgnoringCase(name, "connection"):
                if bytes.equalsIgnoringCase(value, "close") { closeAfterResponse = true; continue }
                if bytes.equalsIgnoringCase(value, "keep-alive") { continue }
                for token in bytes.lowercasedTokens(value) {
                    if token == "close" { closeAfterResponse = true } else if token != "keep-alive" { return notServed() }
                }
            default: break
            }
        }
        guard hostFields <= 1, fieldBytes <= state.limits.maxHeaderBytes else { return notServed() }
        if let destination = capturedHTTP {
            guard hostFields == 1, !bytes.equalsIgnoringCase(head.start.0, "connect") else { return notServed() }
            return dispatchCapturedRequest(head, bytes, to: destination)
        }
        if bytes.equalsIgnoringCase(head.start.0, "connect") {
            dispatchTunnel(authority: bytes.string(head.start.1), headLength: head.length)
        } else {
            dispatchRequest(head, bytes)
        }
    }

    private func dispatchTunnel(authority: String, headLength: Int) {
        isTunnel = true
        method = "CONNECT"
        path = ""
        if let known = loop.tunnelTargets[authority] {
            input.consume(headLength)
            return decided(known)
        }
        guard let split = RequestTarget.splitAuthority(authority, defaultPort: nil), let host = HostName.normalise(split.host) else { return handOff() }
        input.consume(headLength)
        route(host, split.port, authority: authority)
    }

    private func dispatchRequest(_ head: RawHead, _ bytes: UnsafeRawBufferPointer) {
        isTunnel = false
        let target = head.start.1
        guard target.count > 7, bytes.equalsIgnoringCase(target.lowerBound..<target.lowerBound + 7, "http://") else { return handOff() }
        var authorityEnd = target.lowerBound + 7
        while authorityEnd < target.upperBound, bytes[authorityEnd] != 47, bytes[authorityEnd] != 63, bytes[authorityEnd] != 35 { authorityEnd += 1 }
        var originEnd = authorityEnd
        while originEnd < target.upperBound, bytes[originEnd] != 35 { originEnd += 1 }
        let authority = bytes.string((target.lowerBound + 7)..<authorityEnd)
        var known: Destination?
        var host: HostName.Normalised?
        var port: UInt16 = 80
        switch loop.requestTargets[authority] {
        case .intercepted: return handOff()
        case .destination(let destination): known = destination
        case nil:
            // Validated by the same parser as the NIO pipeline's; what it refuses is answered there.
            guard let parsed = try? RequestTarget.absolute(bytes.string(target)) else { return handOff() }
            guard state.decider.service(for: parsed.host) == nil else {
                loop.rememberIntercepted(authority)
                return handOff()
            }
            (host, port) = (parsed.host, parsed.port)
        }
        method = bytes.string(head.start.0)
        let origin = authorityEnd..<originEnd
        path = origin.isEmpty ? "/" : bytes[origin.lowerBound] == 63 ? "/" : String(bytes.string(origin).prefix { $0 != "?" })
        request.append(method)
        request.append(origin.isEmpty || bytes[origin.lowerBound] == 63 ? " /" : " ")
        request.append(UnsafeRawBufferPointer(rebasing: bytes[origin]))
        request.append(" HTTP/1.1\r\nHost: ")
        request.append(authority)
        request.append("\r\n")
        for (name, value) in head.fields {
            if name.count == 4, bytes.equalsIgnoringCase(name, "host") { continue }
            if HopByHop.drops(bytes, name, listed: []) { continue }
            request.append(UnsafeRawBufferPointer(rebasing: bytes[name.lowerBound..<value.upperBound]))
            request.append("\r\n")
        }
        request.append("\r\n")
        input.consume(head.length)
        if let known { return decided(known) }
        route(host!, port, authority: authority)
    }

    // MARK: Route and decision

    private func route(_ host: HostName.Normalised, _ port: UInt16, authority: String) {
        phase = .routing
        deadline = .max
        do {
            if let known = try state.knownRoute(host: host, port: port) {
                return decided(loop.remember(authority, tunnel: isTunnel, route: known))
            }
        } catch {
            return reject(.badGateway, decision: "error", rule: "upstream", reason: "\(error)")
        }
        if let denial = state.denyBeforeResolving(host: host, port: port, ask) { return reject(denial) }
        // A name to look up: resolved each time, on the resolver threads (no cache, no rebinding gap).
        let loop = self.loop
        guard let lookups = state.lookups.startIfNeeded() else {
            return reject(.badGateway, decision: "error", rule: "upstream", reason: "the proxy is stopping")
        }
        lookups.submit { [self] _ in
            let result = Result { try ProxyState.resolvedRoute(host: host, port: port) }
            loop.epoll.execute { [self] in
                guard phase == .routing else { return }
                switch result {
                case .failure(let error):
                    reject(.badGateway, decision: "error", rule: "upstream", reason: "\(error)")
                case .success(let route):
                    decided(loop.destination(route))
                }
            }
        }
    }

    /// What the request line asks: a tunnel, or a plain request.
    private var ask: Ask { captured ? .capture : isTunnel ? .connect : .request(method: method, path: path) }

    private func decided(_ destination: Destination) {
        let route = destination.route
        self.route = route
        let decision = state.decider.decide(route, ask, remembered: destination.verdict)
        if captured, pendingDenial == nil, case .address = route.host, decision.record?.allowed == false,
           CapturedName.clientSpeaksFirst(port: route.port) {
            return waitForCapturedName(denial: decision)
        }
        switch state.enforce(decision) {
        case .refuse(let failure):
            return reject(failure)
        case .intercept(let service, let name):
            return intercept(route, service, name: name)
        case .tunnel, .forward, .inspect:
            break
        }
        if captured, CapturedName.carriesPlainHTTP(port: route.port) { return awaitCapturedRequests(destination) }
        openUpstream(destination)
    }

    /// Sends the request over an idle pooled connection to `destination`, or connects (a tunnel always connects).
    private func openUpstream(_ destination: Destination) {
        route = destination.route
        key = destination.key
        if !isTunnel, let idle = loop.takeIdle(key) {
            reused = true
            upstream = idle
            loop.epoll.setHandler(idle, self)
            return sendRequest()
        }
        connect(destination.route)
    }

    // MARK: Upstream

    private func connect(_ route: Route) {
        let address = route.connectAddress
        let socket = Glibc.socket(Int32(address.protocol.rawValue), Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard socket >= 0 else { return connectFailed(reason: String(cString: strerror(errno))) }
        var one: Int32 = 1
        setsockopt(socket, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let result = address.withSockAddr { Glibc.connect(socket, $0, socklen_t($1)) }
        guard result == 0 || errno == EINPROGRESS else {
            let reason = String(cString: strerror(errno))
            Glibc.close(socket)
            return connectFailed(reason: reason)
        }
        upstream = socket
        phase = .connecting
        deadline = loop.epoll.now + UInt64(state.limits.connectTimeout.nanoseconds)
        guard loop.epoll.register(socket, self, events: EpollLoop.edgeEvents) else { return connectFailed(reason: "cannot watch the socket") }
    }

    private func connectFailed(reason: String) {
        if upstream >= 0 { loop.epoll.close(upstream); upstream = -1 }
        reject(.badGateway, decision: "error", rule: "upstream", reason: "cannot connect to \(route?.described ?? "the upstream"): \(reason)")
    }

    private func connected() {
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(upstream, SOL_SOCKET, SO_ERROR, &error, &length)
        if error == EINPROGRESS || error == EALREADY { return }
        guard error == 0 else { return connectFailed(reason: String(cString: strerror(error))) }
        deadline = .max
        if isTunnel { openTunnel() } else { sendRequest() }
    }

    private func sendRequest() {
        if phase != .exchanging { lastProgress = loop.epoll.now }
        phase = .exchanging
        checkClientLater()
        let bytes = request.bytes
        while sent < bytes.count {
            let written = write(upstream, bytes.baseAddress! + sent, bytes.count - sent)
            if written > 0 { sent += written; lastProgress = loop.epoll.now; continue }
            if written < 0, errno == EINTR { continue }
            if written < 0, errno == EAGAIN { return }
            return upstreamFailed(reason: "failed: \(String(cString: strerror(errno)))")
        }
        // The response cannot be there yet: its bytes arrive with the socket's next event.
    }

    /// The upstream failed or closed before the response ended.
    private func upstreamFailed(reason: String) {
        loop.epoll.close(upstream)
        upstream = -1
        if !responseStarted, reused, let route, RequestRetry.allowed(method: method) {
            // A pooled connection the upstream closed while it was idle: the request got no answer, send it once more.
            reused = false
            sent = 0
            response.removeAll()
            return connect(route)
        }
        if responseStarted {
            // Let what was relayed reach the client, then close: the response is cut short.
            closeAfterResponse = true
            return finishExchange()
        }
        reject(.badGateway, decision: "error", rule: "upstream", reason: "the upstream \(key) \(reason)")
    }

    // MARK: Response

    /// Reads and relays the response while the client takes it; stops when the client's buffer is full.
    private func readResponse() {
        while phase == .exchanging, output.isEmpty {
            if bodyPipe.isHeld || splicesRestOfBody() { return spliceBody() }
            switch response.read(from: upstream) {
            case .read: break
            case .wouldBlock: return
            case .ended(let error):
                if framing?.kind == .untilClose {
                    reusable = false
                    return finishExchange()
                }
                return upstreamFailed(reason: error == 0 ? "closed the connection before the response ended" : "failed: \(String(cString: strerror(error)))")
            }
            lastProgress = loop.epoll.now
            guard let finished = relay() else { return upstreamFailed(reason: "sent a malformed response") }
            if finished { return finishExchange() }
            guard output.flush(to: fd) else { return close() }
            if !output.isEmpty, !watch() { return close() }
        }
    }

    /// Bodies with at least this many bytes still to come (or that end with the upstream's close)
    /// are spliced rather than copied through user space.
    private static let spliceBodyFrom = 65536

    /// Whether the rest of the body is to be spliced (and the pipe for it was taken): once the head
    /// and every body byte read so far have reached the client.
    private func splicesRestOfBody() -> Bool {
        guard response.isEmpty, let remainder = framing?.opaqueRemainder, remainder >= Self.spliceBodyFrom else { return false }
        return bodyPipe.take(from: loop)
    }

    /// Moves the rest of the body from the upstream to the client through ``bodyPipe`` until a side
    /// would block, then ends the exchange as ``readResponse()`` does.
    private func spliceBody() {
        while phase == .exchanging {
            if bodyPipe.pending > 0 {
                switch bodyPipe.drain(to: fd) {
                case .moved:
                    lastProgress = loop.epoll.now
                    continue
                case .wouldBlock: return watch() ? () : close()  // the client's EPOLLOUT resumes
                case .ended, .failed: return close()  // the client went away
                }
            }
            guard let remainder = framing?.opaqueRemainder else { return close() }
            guard remainder > 0 else { return finishExchange() }
            switch bodyPipe.fill(from: upstream, upTo: remainder, loop: loop) {
            case .moved:
                framing?.skip(bodyPipe.pending)
                lastProgress = loop.epoll.now
            case .wouldBlock: return  // the upstream's next event resumes
            case .ended where framing?.kind == .untilClose:
                reusable = false
                return finishExchange()
            case .ended: return upstreamFailed(reason: "closed the connection before the response ended")
            case .failed(let error): return upstreamFailed(reason: "failed: \(String(cString: strerror(error)))")
            }
        }
    }

    /// Moves what `response` holds into `output`: the head (rewritten) once, then body bytes up to
    /// the end of the message. Whether the response is complete; nil when it is malformed.
    private func relay() -> Bool? {
        while framing == nil {
            switch RawHead.parse(response.bytes, maxFields: 256) {
            case .incomplete: return response.count <= 65536 ? false : nil
            case .invalid: return nil
            case .complete(let head):
                guard let kind = responseHead(head) else { return nil }
                response.consume(head.length)
                if let kind { framing = BodyFraming(kind) }
            }
        }
        guard var body = framing, let taken = body.consume(response.bytes) else { return nil }
        framing = body
        output.append(UnsafeRawBufferPointer(rebasing: response.bytes[0..<taken]))
        response.consume(taken)
        guard body.finished else { return false }
        if !response.isEmpty { reusable = false }  // bytes after the response: never reuse
        return true
    }

    /// Writes the client's copy of a response head into `output`; the body's framing, `.some(nil)`
    /// for an interim (1xx) response, or nil when the head is unacceptable.
    private func responseHead(_ head: RawHead) -> BodyFraming.Kind?? {
        let bytes = response.bytes
        let http11 = bytes.equalsIgnoringCase(head.start.0, "http/1.1")
        guard http11 || bytes.equalsIgnoringCase(head.start.0, "http/1.0"), let status = Self.number(bytes, head.start.1),
              head.start.1.count == 3, status >= 100, status != 101 else { return nil }
        var listed: [String] = []
        var length: Int?
        var chunked: Bool?
        for (name, value) in head.fields {
            switch name.count {
            case 10 where bytes.equalsIgnoringCase(name, "connection"):
                if !bytes.equalsIgnoringCase(value, "keep-alive") { listed += bytes.lowercasedTokens(value) }
            case 14 where bytes.equalsIgnoringCase(name, "content-length"):
                // One value, or a list of equal ones (RFC 9112 §6.3); anything else is malformed.
                let values = Self.number(bytes, value).map { [$0] } ?? bytes.lowercasedTokens(value).map { Int($0) ?? -1 }
                guard let first = values.first, first >= 0, values.allSatisfy({ $0 == first }), length == nil || length == first else { return nil }
                length = first
            case 17 where bytes.equalsIgnoringCase(name, "transfer-encoding"):
                chunked = bytes.lowercasedTokens(value).last == "chunked"
            default: break
            }
        }
        let kind: BodyFraming.Kind?
        if status < 200 {
            kind = nil
        } else if method == "HEAD" || status == 204 || status == 304 {
            kind = BodyFraming.Kind.none
        } else if let chunked {
            kind = chunked ? .chunked : .untilClose
        } else if let length {
            kind = .length(length)
        } else {
            kind = .untilClose
        }
        if kind != nil {
            if !http11 || listed.contains("close") || kind == .untilClose { reusable = false }
            if kind == .untilClose { closeAfterResponse = true }
            responseStarted = true
        }
        output.append("HTTP/1.1 ")
        output.append(UnsafeRawBufferPointer(rebasing: bytes[head.start.1.lowerBound..<head.start.2.upperBound]))
        output.append("\r\n")
        for (name, value) in head.fields where !HopByHop.drops(bytes, name, listed: listed) {
            output.append(UnsafeRawBufferPointer(rebasing: bytes[name.lowerBound..<value.upperBound]))
            output.append("\r\n")
        }
        if closeAfterResponse, kind != nil { output.append("Connection: close\r\n") }
        output.append("\r\n")
        return .some(kind)
    }

    /// The decimal number in `range`, if it is one (at most 15 digits).
    private static func number(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int? {
        guard !range.isEmpty, range.count <= 15 else { return nil }
        var value = 0
        for index in range {
            let digit = bytes[index] &- 48
            guard digit < 10 else { return nil }
            value = value * 10 + Int(digit)
        }
        return value
    }

    /// The response is complete (or cut short): the upstream goes back to the pool or is closed;
    /// once the client has it all, the next request or the close.
    private func finishExchange() {
        phase = .exchanging
        bodyPipe.release(to: loop)
        if upstream >= 0 {
            if reusable, responseStarted { loop.putIdle(upstream, key: key) } else { loop.epoll.close(upstream) }
            upstream = -1
        }
        framing = nil
        guard output.flush(to: fd) else { return close() }
        guard output.isEmpty else { return watch() ? () : close() }  // the client's EPOLLOUT continues in flushOutput
        endExchange()
    }

    private func endExchange() {
        if closeAfterResponse { return close() }
        request.removeAll()
        response.removeAll()  // what an upstream sent after its response is never taken for the next one
        (sent, reused, responseStarted, reusable, route) = (0, false, false, true, nil)
        waitForHead()
    }

    private func flushOutput() {
        let before = output.count
        guard output.flush(to: fd) else { return close() }
        if output.count < before { lastProgress = loop.epoll.now }
        if output.isEmpty, phase == .inspecting { return relayServerGreeting() }
        guard output.isEmpty, phase == .exchanging else { return }
        if upstream >= 0 { readResponse() } else { endExchange() }
    }

    /// Nothing moved either way for ``ProxyLimits/responseIdleTimeout``: an upstream that has not
    /// answered gets the client a `504`; a response that stopped midway, or a client that stopped
    /// taking it, ends the connection.
    private func exchangeStalled() {
        guard upstream >= 0, !responseStarted else { return close() }
        reject(.gatewayTimeout, decision: "error", rule: "upstream",
               reason: "the upstream \(key) sent no response for \(ProxyLimits.describe(state.limits.responseIdleTimeout))")
    }

    // MARK: Errors

    /// Answers with an error or deny response (the same JSON body as the NIO pipeline's), then
    /// closes unless the client keeps the connection and the request was a plain one.
    private func reject(_ failure: ProxyFailure) {
        reject(failure.status, decision: failure.decision, rule: failure.rule, reason: failure.reason)
    }

    private func reject(_ status: AnswerStatus, decision: String, rule: String, reason: String) {
        if upstream >= 0 { loop.epoll.close(upstream); upstream = -1 }
        if captured { return reset() }
        if isTunnel { closeAfterResponse = true }
        responseStarted = false
        output.append(ProxyAnswer(status, decision: decision, rule: rule, reason: reason, close: closeAfterResponse).wireBytes)
        finishExchange()
    }

    // MARK: Tunnels

    /// Tells the client its CONNECT was allowed; false (the connection must close) when it cannot take those few bytes.
    private func answerEstablished() -> Bool {
        if captured { return true }  // nothing to answer: the client thinks it is connected already
        output.append(ProxyAnswer.connectionEstablished)
        return output.flush(to: fd) && output.isEmpty
    }

    private func openTunnel() {
        guard answerEstablished() else { return close() }
        guard !state.services.isEmpty else { return spliceTunnel() }
        // Services are intercepted: a tunnel opened by address must not carry a ClientHello for one of them.
        phase = .inspecting
        deadline = loop.epoll.now + UInt64(state.limits.requestHeadTimeout.nanoseconds)
        checkTunnelStart()
        if phase == .inspecting { inspectTunnelStart() }
        // A greeting may have come while connecting (its edge is not reported again).
        if phase == .inspecting { relayServerGreeting() }
    }

    /// While a tunnel's first client bytes are awaited, a server that speaks first (SSH, SMTP,
    /// MySQL and FTP greet before the client says anything; a TLS server never does) has its bytes
    /// relayed to the client, which would otherwise wait for a greeting the tunnel withholds. What
    /// the client sends is still held, and inspected before any of it goes upstream; once the
    /// server has spoken, the client may take as long as an idle tunnel (``ProxyLimits/tunnelIdleTimeout``).
    private func relayServerGreeting() {
        while phase == .inspecting, output.isEmpty {
            switch output.read(from: upstream) {
            case .read: break
            case .wouldBlock: return
            case .ended:
                _ = output.flush(to: fd)  // the server's last words (a refusal) reach the client
                return close()
            }
            deadline = loop.epoll.now + UInt64(state.limits.tunnelIdleTimeout.nanoseconds)
            guard output.flush(to: fd) else { return close() }
            if !output.isEmpty, !watch() { return close() }
        }
    }

    private func inspectTunnelStart() { readClient(while: .inspecting) { checkTunnelStart() } }

    private func checkTunnelStart() {
        guard let route else { return close() }
        switch TunnelStart.decide(input.bytes, route: route, decider: state.decider) {
        case .needMore: return
        case .pass: break
        case .plain:
            return spliceTunnel(requests: TunnelRequests(route: route, decider: state.decider, limits: state.limits, afterRequests: relayAfterRequests))
        case .deny(let record): if state.enforce(record) { return close() }
        }
        spliceTunnel()
    }

    /// `requests`: the client's plain HTTP requests are checked (``TunnelRequests``) as the tunnel
    /// relays them, from the bytes it sent so far on.
    private func spliceTunnel(requests: TunnelRequests? = nil) {
        // Bytes the client sent before the tunnel was open go first; a server greeting the client
        // has not taken yet (it sent while not reading) ends the tunnel rather than being dropped.
        guard output.flush(to: fd), output.isEmpty else { return close() }
        if requests == nil {
            guard input.flush(to: upstream), input.isEmpty else { return close() }
        }
        guard watch() else { return close() }
        loop.connections.removeValue(forKey: ObjectIdentifier(self))
        phase = .done
        let tunnel = SpliceTunnel(loop: loop, client: fd, upstream: upstream, requests: requests, held: requests == nil ? ByteQueue() : input)
        if requests != nil { input = ByteQueue() }  // the tunnel owns those bytes now
        upstream = -1
        freeBuffers()
        tunnel.start()
    }

    /// A CONNECT to a service the policy names: answered here, then the connection goes to the NIO
    /// pipeline that terminates its TLS and decides each request (``HandOver/intercept``).
    private func intercept(_ route: Route, _ service: BoundService, name: String) {
        guard (try? state.leafContext(for: name)) != nil, answerEstablished() else { return close() }
        handOff(.intercept(route: route, service: service, name: name))
    }

    // MARK: Ending

    /// Gives the connection to the NIO pipeline with the bytes read so far (and not yet used).
    private func handOff(_ handOver: HandOver = .proxy) {
        let prefix = Array(input.bytes)
        if watched { loop.epoll.unregister(fd) }
        release()
        loop.handOff(fd, prefix, handOver)
    }

    // MARK: Captured plain HTTP

    /// A captured connection allowed to `destination` on a plain-HTTP port: no upstream connection
    /// is opened until its first bytes show whether the front serves them.
    private func awaitCapturedRequests(_ destination: Destination) {
        capturedHTTP = destination
        awaitingFirstRequest = true
        isTunnel = false
        phase = .head
        deadline = loop.epoll.now + CapturedName.firstRequestWait
        loop.epoll.sweep(by: deadline)
        if !input.isEmpty { parseHead() }
        if phase == .head { readHead() }
    }

    /// A request on a captured plain-HTTP connection (origin-form, with the `Host` its client sent):
    /// sent, unchanged but for hop-by-hop fields, over a pooled connection to the destination the
    /// connection was allowed to when it was captured.
    private func dispatchCapturedRequest(_ head: RawHead, _ bytes: UnsafeRawBufferPointer, to destination: Destination) {
        let target = head.start.1
        guard !target.isEmpty, bytes[target.lowerBound] == UInt8(ascii: "/") else { return notServed() }
        // With services, each request's Host must name where the connection goes, and no service.
        if !state.services.isEmpty, case .denied(let record, _) = TunnelRequests.check(head, bytes, route: destination.route, decider: state.decider),
           state.enforce(record) {
            return refuseCapturedRequest(record)
        }
        awaitingFirstRequest = false
        method = bytes.string(head.start.0)
        path = String(bytes.string(target).prefix { $0 != "?" })
        request.append(UnsafeRawBufferPointer(rebasing: bytes[head.start.0]))
        request.append(" ")
        request.append(UnsafeRawBufferPointer(rebasing: bytes[target]))
        request.append(" HTTP/1.1\r\n")
        for (name, value) in head.fields where !HopByHop.drops(bytes, name, listed: []) {
            request.append(UnsafeRawBufferPointer(rebasing: bytes[name.lowerBound..<value.upperBound]))
            request.append("\r\n")
        }
        request.append("\r\n")
        input.consume(head.length)
        openUpstream(destination)
    }

    /// A request on the captured plain-HTTP path that ``TunnelRequests/check(_:_:route:decider:)``
    /// denies (recorded, `on_violation` applied): answered `403` — its client speaks HTTP, and the
    /// previous response was complete — and the connection closed; nothing of it goes upstream.
    private func refuseCapturedRequest(_ record: DecisionRecord) {
        closeAfterResponse = true
        responseStarted = false
        output.append(record.denial.answer(close: true).wireBytes)
        finishExchange()
    }

    /// A head the front does not serve: the NIO pipeline takes the connection; a captured one is
    /// relayed from its unsent bytes on, as a tunnel.
    private func notServed() { capturedHTTP == nil ? handOff() : relayCaptured() }

    /// The rest of a captured plain-HTTP connection relayed as a tunnel to the destination it was
    /// allowed to (with services, its first bytes are still inspected as a tunnel's are).
    private func relayCaptured() {
        guard let destination = capturedHTTP else { return close() }
        capturedHTTP = nil
        relayAfterRequests = !awaitingFirstRequest
        awaitingFirstRequest = false
        isTunnel = true
        method = "TCP"
        route = destination.route
        key = destination.key
        connect(destination.route)
    }

    // MARK: Captured connections to bare addresses

    /// A captured connection to an address the policy denies, on a port where the client speaks
    /// first (TLS, HTTP): its first bytes may name an allowed host, which then decides it.
    private func waitForCapturedName(denial: ConnectionDecision) {
        pendingDenial = denial
        phase = .naming
        deadline = loop.epoll.now + UInt64(state.limits.requestHeadTimeout.nanoseconds)
        checkCapturedName()
        // A client that closes without naming a host is refused all the same (recorded, a violation).
        if phase == .naming { readClient(while: .naming, ended: refusePendingDenial) { checkCapturedName() } }
    }

    private func checkCapturedName() {
        guard let route else { return close() }
        switch CapturedName.find(in: input.bytes, maxFields: state.limits.maxHeaderCount) {
        case .needMore: return
        case .unnamed: refusePendingDenial()
        case .named(let host):
            // Decided again as a CONNECT to the name would be; the connection goes where the name resolves.
            deadline = .max
            self.route(host, route.port, authority: captureAuthority(host, port: route.port))
        }
    }

    /// The address's denial, enforced: recorded, `on_violation` applied, the connection reset.
    private func refusePendingDenial() {
        guard let denial = pendingDenial else { return close() }
        if case .refuse(let failure) = state.enforce(denial) { return reject(failure) }
        // mode: audit — recorded, not enforced: relayed to the address as asked.
        guard let route else { return close() }
        connect(route)
    }

    /// Ends a captured connection with a TCP reset.
    private func reset() {
        guard phase != .done else { return }
        resetOnClose(fd)
        close()
    }

    func close() {
        guard phase != .done else { return }
        loop.epoll.close(fd)
        release()
    }

    private func release() {
        phase = .done
        bodyPipe.release(to: loop)
        if upstream >= 0 { loop.epoll.close(upstream); upstream = -1 }
        loop.connections.removeValue(forKey: ObjectIdentifier(self))
        freeBuffers()
        loop.connectionClosed()
    }

    private func freeBuffers() {
        input.free()
        output.free()
        response.free()
        request.free()
    }
}
