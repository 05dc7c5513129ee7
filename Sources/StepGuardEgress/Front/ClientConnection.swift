import NIOCore
import NIOHTTP1
import StepGuardAudit

import CLinuxIO
#if canImport(Glibc)
import Glibc
#endif

/// One client connection of the socket front (see ``SocketFront``): reads a request head, serves
/// bodiless `http://` requests over pooled upstream sockets and opens splice tunnels for CONNECT,
/// or hands the connection to the NIO pipeline.
final class ClientConnection: EpollHandler, @unchecked Sendable {  // confined to its loop's thread; only sent back to it
    private enum Phase { case head, routing, connecting, exchanging, inspecting, done }

    /// A bodiless request, decided, being forwarded.
    private struct Exchange {
        let method: String
        /// The head as sent upstream, and how much of it was written.
        let head: [UInt8]
        var sent = 0
        let key: String
        let route: Route
        var reused = false
        var responseStarted = false
        var framing: BodyFraming?
        var reusable = true
        var finished = false
    }

    private let loop: FrontLoop
    private var state: ProxyState { loop.state }
    let fd: Int32
    private var phase = Phase.head
    private var input = ByteQueue()
    private var output = ByteQueue()
    private var response = ByteQueue()
    private var upstream: Int32 = -1
    /// A request whose route is not decided yet.
    private var pending: (method: String, head: [UInt8])?
    private var exchange: Exchange?
    private var tunnelRoute: Route?
    private var closeAfterResponse = false
    /// When the current phase must be over (head, connect); checked by the loop's sweep.
    private(set) var deadline: UInt64 = .max

    init(loop: FrontLoop, fd: Int32) {
        self.loop = loop
        self.fd = fd
    }

    func start() {
        guard loop.epoll.register(fd, self, events: UInt32(EPOLLIN.rawValue)) else { return close() }
        loop.connections[ObjectIdentifier(self)] = self
        waitForHead()
    }

    private func waitForHead() {
        phase = .head
        deadline = loop.epoll.now + UInt64(state.limits.requestHeadTimeout.nanoseconds)
        loop.epoll.modify(fd, events: UInt32(EPOLLIN.rawValue))
        if !input.isEmpty { parseHead() } else { readHead() }
    }

    func deadlinePassed() {
        switch phase {
        case .head, .inspecting: close()
        case .connecting:
            let route = exchange?.route ?? tunnelRoute
            reject(.gatewayTimeout, decision: "error", rule: "upstream",
                   reason: "connecting to \(route.map { "\($0.host.text):\($0.port) (\($0.connectAddress))" } ?? "the upstream") timed out")
        default: break
        }
    }

    // MARK: Events

    func ready(fd: Int32, events: UInt32) {
        let failed = events & UInt32(EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0
        if fd == self.fd {
            if events & UInt32(EPOLLOUT.rawValue) != 0 || (failed && !output.isEmpty) { return flushOutput() }
            switch phase {
            case .head: readHead()
            case .inspecting: inspectTunnelStart()
            default: if failed { close() }
            }
        } else if fd == upstream {
            switch phase {
            case .connecting: connected()
            case .exchanging:
                if events & UInt32(EPOLLOUT.rawValue) != 0, let exchange, exchange.sent < exchange.head.count { sendRequest() }
                if events & UInt32(EPOLLIN.rawValue) != 0 || failed { readResponse() }
            default: if failed { close() }
            }
        }
    }

    // MARK: Request head

    /// Heads longer than this go to the NIO pipeline, which applies the header limits.
    private static let maxFastHead = 8192

    private func readHead() {
        while phase == .head {
            let count = input.read(from: fd, chunk: 4096)
            if count > 0 { parseHead(); continue }
            if count < 0, errno == EAGAIN { return }
            if count < 0, errno == EINTR { continue }
            return close()  // end of stream or error before a complete head
        }
    }

    private func parseHead() {
        switch RawHead.parse(input.bytes, maxFields: state.limits.maxHeaderCount) {
        case .incomplete:
            if input.count > Self.maxFastHead { handOff() }
        case .invalid:
            handOff()
        case .complete(let head):
            dispatch(head)
        }
    }

    /// What the front does with a complete request head.
    private func dispatch(_ head: RawHead) {
        let bytes = input.bytes
        guard bytes.equalsIgnoringCase(head.start.2, "http/1.1") else { return handOff() }
        var hostFields = 0
        var fieldBytes = 0
        var close = false
        for (name, value) in head.fields {
            fieldBytes += name.count + value.count
            switch name.count {
            case 4 where bytes.equalsIgnoringCase(name, "host"): hostFields += 1
            case 14 where bytes.equalsIgnoringCase(name, "content-length"):
                guard value.count == 1, bytes[value.lowerBound] == UInt8(ascii: "0") else { return handOff() }
            case 17 where bytes.equalsIgnoringCase(name, "transfer-encoding"): return handOff()
            case 7 where bytes.equalsIgnoringCase(name, "upgrade"): return handOff()
            case 6 where bytes.equalsIgnoringCase(name, "expect"): return handOff()
            case 10 where bytes.equalsIgnoringCase(name, "connection"):
                for token in bytes.lowercasedTokens(value) {
                    if token == "close" { close = true } else if token != "keep-alive" { return handOff() }
                }
            default: break
            }
        }
        guard hostFields <= 1, fieldBytes <= state.limits.maxHeaderBytes else { return handOff() }
        closeAfterResponse = close
        let target = bytes.string(head.start.1)
        if bytes.equalsIgnoringCase(head.start.0, "connect") {
            guard let split = FrontHandler.splitAuthority(target, defaultPort: nil), let host = HostName.normalise(split.0),
                  state.service(for: host) == nil else { return handOff() }
            input.consume(head.length)
            return route(host, split.1, method: "CONNECT", path: "")
        }
        guard target.utf8.count > 7, bytes.equalsIgnoringCase(head.start.1.lowerBound..<head.start.1.lowerBound + 7, "http://"),
              let requestTarget = try? FrontHandler.absoluteTarget(target), state.service(for: requestTarget.host) == nil else { return handOff() }
        let method = bytes.string(head.start.0)
        var upstreamHead = Array("\(method) \(requestTarget.originForm) HTTP/1.1\r\nHost: \(requestTarget.authority)\r\n".utf8)
        upstreamHead.reserveCapacity(head.length + 64)
        for (name, value) in head.fields {
            if name.count == 4, bytes.equalsIgnoringCase(name, "host") { continue }
            if HopByHop.drops(bytes, name, listed: []) { continue }
            upstreamHead.append(contentsOf: bytes[name.lowerBound..<value.upperBound])
            upstreamHead.append(contentsOf: [13, 10])
        }
        upstreamHead.append(contentsOf: [13, 10])
        input.consume(head.length)
        pending = (method, upstreamHead)
        route(requestTarget.host, requestTarget.port, method: method, path: requestTarget.path)
    }

    // MARK: Route and decision

    private func route(_ host: HostName.Normalised, _ port: UInt16, method: String, path: String) {
        phase = .routing
        deadline = .max
        loop.epoll.modify(fd, events: 0)
        do {
            if let known = try state.knownRoute(host: host, port: port) { return decide(known, method: method, path: path) }
        } catch {
            return reject(.badGateway, decision: "error", rule: "upstream", reason: (error as? ProxyFailure)?.reason ?? "\(error)")
        }
        let loop = self.loop
        state.resolverPool.submit { [self] _ in
            let result = Result { try ProxyState.resolve(host.text) }
            loop.epoll.execute { [self] in
                guard phase == .routing else { return }
                switch result {
                case .failure(let error):
                    reject(.badGateway, decision: "error", rule: "upstream", reason: (error as? ProxyFailure)?.reason ?? "\(error)")
                case .success(let addresses):
                    do {
                        decide(Route(host: host, port: port, addresses: addresses, connectAddress: try ProxyState.socketAddress(addresses[0], port: port)),
                               method: method, path: path)
                    } catch {
                        reject(.badGateway, decision: "error", rule: "upstream", reason: "\(error)")
                    }
                }
            }
        }
    }

    private func decide(_ route: Route, method: String, path: String) {
        let verdict = state.decideConnection(route)
        let blocked = state.record(.egress, allowed: verdict.allowed, rule: verdict.rule, reason: verdict.reason,
                                   subject: ProxyState.subject(route: route, method: method, path: path))
        if blocked { return reject(.forbidden, decision: "deny", rule: verdict.rule, reason: verdict.reason) }
        if let pending {
            self.pending = nil
            let key = "http://\(route.host.text):\(route.port)@\(route.connectAddress)"
            exchange = Exchange(method: pending.method, head: pending.head, key: key, route: route)
            if let idle = loop.takeIdle(key) {
                exchange!.reused = true
                upstream = idle
                guard loop.epoll.register(idle, self, events: UInt32(EPOLLIN.rawValue)) else { return upstreamFailed(reason: "cannot watch the upstream socket") }
                return sendRequest()
            }
        } else {
            tunnelRoute = route
        }
        connect(route)
    }

    // MARK: Upstream

    private func connect(_ route: Route) {
        let address = route.connectAddress
        let socket = Glibc.socket(Int32(address.protocol.rawValue), Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard socket >= 0 else { return connectFailed(route, reason: String(cString: strerror(errno))) }
        var one: Int32 = 1
        setsockopt(socket, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let result = address.withSockAddr { Glibc.connect(socket, $0, socklen_t($1)) }
        guard result == 0 || errno == EINPROGRESS else {
            let reason = String(cString: strerror(errno))
            Glibc.close(socket)
            return connectFailed(route, reason: reason)
        }
        upstream = socket
        phase = .connecting
        deadline = loop.epoll.now + UInt64(state.limits.connectTimeout.nanoseconds)
        guard loop.epoll.register(socket, self, events: UInt32(EPOLLOUT.rawValue)) else { return connectFailed(route, reason: "cannot watch the socket") }
    }

    private func connectFailed(_ route: Route, reason: String) {
        if upstream >= 0 { loop.epoll.close(upstream); upstream = -1 }
        reject(.badGateway, decision: "error", rule: "upstream", reason: "cannot connect to \(route.host.text):\(route.port) (\(route.connectAddress)): \(reason)")
    }

    private func connected() {
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(upstream, SOL_SOCKET, SO_ERROR, &error, &length)
        guard let route = exchange?.route ?? tunnelRoute else { return close() }
        guard error == 0 else { return connectFailed(route, reason: String(cString: strerror(error))) }
        deadline = .max
        if exchange != nil {
            sendRequest()
        } else {
            openTunnel()
        }
    }

    private func sendRequest() {
        phase = .exchanging
        guard var exchange else { return close() }
        while exchange.sent < exchange.head.count {
            let written = exchange.head.withUnsafeBytes { write(upstream, $0.baseAddress! + exchange.sent, $0.count - exchange.sent) }
            if written > 0 { exchange.sent += written; continue }
            if written < 0, errno == EINTR { continue }
            if written < 0, errno == EAGAIN { break }
            self.exchange = exchange
            return upstreamFailed(reason: "failed: \(String(cString: strerror(errno)))")
        }
        self.exchange = exchange
        loop.epoll.modify(upstream, events: UInt32(EPOLLIN.rawValue) | (exchange.sent < exchange.head.count ? UInt32(EPOLLOUT.rawValue) : 0))
    }

    /// The upstream failed or closed before the response ended.
    private func upstreamFailed(reason: String) {
        guard var exchange else { return close() }
        loop.epoll.close(upstream)
        upstream = -1
        if !exchange.responseStarted, exchange.reused, ["GET", "HEAD", "OPTIONS"].contains(exchange.method) {
            // A pooled connection the upstream closed while it was idle: the request got no answer, send it once more.
            exchange.reused = false
            exchange.sent = 0
            self.exchange = exchange
            return connect(exchange.route)
        }
        if exchange.responseStarted {
            // Let what was relayed reach the client, then close: the response is cut short.
            closeAfterResponse = true
            exchange.finished = true
            self.exchange = exchange
            return finishIfFlushed()
        }
        self.exchange = nil
        reject(.badGateway, decision: "error", rule: "upstream", reason: "the upstream \(exchange.key) \(reason)")
    }

    // MARK: Response

    private func readResponse() {
        guard var exchange else { return }
        while !exchange.finished {
            let count = response.read(from: upstream, chunk: 16384)
            if count < 0, errno == EINTR { continue }
            if count < 0, errno == EAGAIN { break }
            if count <= 0 {
                if exchange.framing?.kind == .untilClose {
                    exchange.finished = true
                    exchange.reusable = false
                    closeAfterResponse = true
                    break
                }
                self.exchange = exchange
                return upstreamFailed(reason: count == 0 ? "closed the connection before the response ended" : "failed: \(String(cString: strerror(errno)))")
            }
            guard relay(&exchange) else {
                self.exchange = exchange
                return upstreamFailed(reason: "sent a malformed response")
            }
            if !output.isEmpty { break }
        }
        self.exchange = exchange
        if exchange.finished { return finishIfFlushed() }
        guard output.flush(to: fd) else { return close() }
        if !output.isEmpty {
            // The client cannot take more now: stop reading from the upstream until it can.
            loop.epoll.modify(upstream, events: 0)
            loop.epoll.modify(fd, events: UInt32(EPOLLOUT.rawValue))
        }
    }

    /// Moves what `response` holds into `output`: the head (rewritten) once, then body bytes up to
    /// the end of the message. False when the upstream's response is malformed.
    private func relay(_ exchange: inout Exchange) -> Bool {
        while exchange.framing == nil {
            switch RawHead.parse(response.bytes, maxFields: 256) {
            case .incomplete: return response.count <= 65536
            case .invalid: return false
            case .complete(let head):
                guard let kind = responseHead(head, exchange: &exchange) else { return false }
                response.consume(head.length)
                if let kind { exchange.framing = BodyFraming(kind) }
            }
        }
        guard var framing = exchange.framing else { return true }
        guard let taken = framing.consume(response.bytes) else { return false }
        output.append(UnsafeRawBufferPointer(rebasing: response.bytes[0..<taken]))
        response.consume(taken)
        exchange.framing = framing
        if framing.finished {
            exchange.finished = true
            if !response.isEmpty { exchange.reusable = false }  // bytes after the response: never reuse
            response.removeAll()
        }
        return true
    }

    /// Writes the client's copy of a response head into `output`; the body's framing, `.some(nil)`
    /// for an interim (1xx) response, or nil when the head is unacceptable.
    private func responseHead(_ head: RawHead, exchange: inout Exchange) -> BodyFraming.Kind?? {
        let bytes = response.bytes
        let http11 = bytes.equalsIgnoringCase(head.start.0, "http/1.1")
        guard http11 || bytes.equalsIgnoringCase(head.start.0, "http/1.0"), head.start.1.count == 3,
              let status = Int(bytes.string(head.start.1)), status >= 100, status != 101 else { return nil }
        var listed: [String] = []
        var lengths: Set<String> = []
        var chunked: Bool?
        for (name, value) in head.fields {
            if bytes.equalsIgnoringCase(name, "connection") { listed += bytes.lowercasedTokens(value) }
            if bytes.equalsIgnoringCase(name, "content-length") { lengths.formUnion(bytes.lowercasedTokens(value)) }
            if bytes.equalsIgnoringCase(name, "transfer-encoding") { chunked = bytes.lowercasedTokens(value).last == "chunked" }
        }
        let kind: BodyFraming.Kind?
        if status < 200 {
            kind = nil
        } else if exchange.method == "HEAD" || status == 204 || status == 304 {
            kind = BodyFraming.Kind.none
        } else if let chunked {
            kind = chunked ? .chunked : .untilClose
        } else if let text = lengths.first {
            guard lengths.count == 1, let length = Int(text), length >= 0 else { return nil }
            kind = .length(length)
        } else {
            kind = .untilClose
        }
        if kind != nil {
            if !http11 || listed.contains("close") || kind == .untilClose { exchange.reusable = false }
            if kind == .untilClose { closeAfterResponse = true }
            exchange.responseStarted = true
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

    /// After the response: the upstream goes back to the pool, then the next request or the close.
    private func finishIfFlushed() {
        if let exchange, upstream >= 0 {
            loop.epoll.unregister(upstream)
            if exchange.reusable { loop.putIdle(upstream, key: exchange.key) } else { Glibc.close(upstream) }
            upstream = -1
        }
        guard output.flush(to: fd) else { return close() }
        guard output.isEmpty else { return loop.epoll.modify(fd, events: UInt32(EPOLLOUT.rawValue)) }
        exchange = nil
        if closeAfterResponse { return close() }
        waitForHead()
    }

    private func flushOutput() {
        guard output.flush(to: fd) else { return close() }
        guard output.isEmpty else { return }
        if exchange?.finished == false, upstream >= 0 {
            loop.epoll.modify(fd, events: 0)
            loop.epoll.modify(upstream, events: UInt32(EPOLLIN.rawValue))
            return readResponse()
        }
        finishIfFlushed()
    }

    // MARK: Errors

    /// Answers with an error or deny response (the same JSON body as the NIO pipeline's), then
    /// closes unless the client keeps the connection and the request was a plain one.
    private func reject(_ status: ProxyFailure.HTTPResponseStatusCode, decision: String, rule: String, reason: String) {
        if upstream >= 0 { loop.epoll.close(upstream); upstream = -1 }
        if tunnelRoute != nil || (exchange == nil && pending == nil) { closeAfterResponse = true }
        exchange = nil
        pending = nil
        tunnelRoute = nil
        phase = .exchanging
        output.append(ProxyState.errorResponse(status, decision: decision, rule: rule, reason: reason, close: closeAfterResponse))
        finishIfFlushed()
    }

    // MARK: Tunnels

    private static let established: StaticString = "HTTP/1.1 200 Connection Established\r\n\r\n"

    private func openTunnel() {
        output.append(Self.established)
        guard output.flush(to: fd), output.isEmpty else { return close() }
        guard !state.services.isEmpty else { return spliceTunnel() }
        // Services are intercepted: a tunnel opened by address must not carry a ClientHello for one of them.
        phase = .inspecting
        deadline = loop.epoll.now + UInt64(state.limits.requestHeadTimeout.nanoseconds)
        loop.epoll.modify(upstream, events: 0)
        loop.epoll.modify(fd, events: UInt32(EPOLLIN.rawValue))
        if input.isEmpty { inspectTunnelStart() } else { checkTunnelStart() }
    }

    private func inspectTunnelStart() {
        while phase == .inspecting {
            let count = input.read(from: fd, chunk: 4096)
            if count > 0 { checkTunnelStart(); continue }
            if count < 0, errno == EAGAIN { return }
            if count < 0, errno == EINTR { continue }
            return close()
        }
    }

    private func checkTunnelStart() {
        guard let route = tunnelRoute else { return close() }
        switch TunnelSNIInspector.scan(input.bytes) {
        case .needMore: return
        case .serverName(let name):
            if let host = HostName.normalise(name), let service = state.service(for: host),
               state.recordServiceHiddenInTunnel(route: route, sni: host, service: service) {
                return close()
            }
        case .other: break
        }
        spliceTunnel()
    }

    private func spliceTunnel() {
        // Bytes the client sent before the tunnel was open go first.
        guard input.flush(to: upstream), input.isEmpty else { return close() }
        loop.epoll.unregister(fd)
        loop.epoll.unregister(upstream)
        loop.connections.removeValue(forKey: ObjectIdentifier(self))
        phase = .done
        let tunnel = SpliceTunnel(loop: loop, client: fd, upstream: upstream)
        upstream = -1
        freeBuffers()
        tunnel.start()
    }

    // MARK: Ending

    /// Gives the connection to the NIO pipeline with the bytes read so far.
    private func handOff() {
        let prefix = Array(input.bytes)
        loop.epoll.unregister(fd)
        release()
        loop.handOff(fd, prefix)
    }

    func close() {
        guard phase != .done else { return }
        loop.epoll.close(fd)
        release()
    }

    private func release() {
        phase = .done
        if upstream >= 0 { loop.epoll.close(upstream); upstream = -1 }
        loop.connections.removeValue(forKey: ObjectIdentifier(self))
        freeBuffers()
        loop.connectionClosed()
    }

    private func freeBuffers() {
        input.free()
        output.free()
        response.free()
    }
}
