import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import StepGuardAudit
import StepGuardPolicy

/// Counts open client connections (for leak checks); stays first in every client pipeline.
final class ConnectionCounter: ChannelInboundHandler {
    typealias InboundIn = NIOAny
    let state: ProxyState
    init(state: ProxyState) { self.state = state }

    func channelActive(context: ChannelHandlerContext) {
        state.openConnections.add(1, ordering: .relaxed)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        state.openConnections.subtract(1, ordering: .relaxed)
        context.fireChannelInactive()
    }
}

/// An upstream connection a front connection forwards requests over. It goes back to the event
/// loop's ``UpstreamPool`` after each complete exchange, plain `http://` and TLS to intercepted
/// services alike: every request on it was decided on its own.
final class UpstreamLink {
    let key: String
    let channel: Channel
    let handler: UpstreamHandler
    var reusable = true
    /// Reading from the upstream is paused (the client could not take more).
    var readsPaused = false
    /// Taken from the pool: the upstream may have closed it while it was idle.
    var reused = false
    /// The pool holding it while idle.
    var idleIn: UpstreamPool?

    init(key: String, channel: Channel, handler: UpstreamHandler) {
        self.key = key
        self.channel = channel
        self.handler = handler
    }
}

/// Relays an upstream's response parts to the front connection that owns it. While its link is
/// idle in the pool there is no front: anything the upstream sends then makes the link unusable.
final class UpstreamHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    weak var front: FrontHandler?
    weak var link: UpstreamLink?

    init(front: FrontHandler) { self.front = front }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let front else {
            // An unsolicited response on an idle connection: never hand it to a later request.
            context.close(promise: nil)
            return
        }
        front.upstreamRead(unwrapInboundIn(data), from: context.channel)
    }

    func channelReadComplete(context: ChannelHandlerContext) { front?.upstreamReadComplete() }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Idle in the pool, the pool's own sweep looks after the connection.
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .all { front?.upstreamStalled(context.channel) }
        context.fireUserInboundEventTriggered(event)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { front?.upstreamWritable() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let link, let pool = link.idleIn { pool.remove(link) }
        front?.upstreamClosed(context.channel, error: nil)
        front = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        front?.upstreamClosed(context.channel, error: error)
        context.close(promise: nil)
    }
}

/// What the handlers of one event loop share: the upstream pool, the fronts waiting for a request
/// head and the open tunnels (deadlines checked by one periodic sweep instead of a timer per
/// connection). Only used on its loop.
final class LoopResources {
    let pool = UpstreamPool()
    let tunnelIdleTimeout: TimeAmount
    private var waiting: [ObjectIdentifier: FrontHandler] = [:]
    private var tunnels: [ObjectIdentifier: Tunnel] = [:]

    init(tunnelIdleTimeout: TimeAmount) { self.tunnelIdleTimeout = tunnelIdleTimeout }

    /// `tunnel` is closed when no data went through it for `tunnelIdleTimeout`.
    func watch(_ tunnel: Tunnel) { tunnels[ObjectIdentifier(tunnel)] = tunnel }
    func unwatch(_ tunnel: Tunnel) { tunnels.removeValue(forKey: ObjectIdentifier(tunnel)) }

    /// `front` waits for a request head until its deadline.
    func watch(_ front: FrontHandler) { waiting[ObjectIdentifier(front)] = front }
    func unwatch(_ front: FrontHandler) { waiting.removeValue(forKey: ObjectIdentifier(front)) }

    /// Closes fronts whose request head is late, idle tunnels and upstream connections idle too long.
    func sweep(now: NIODeadline = .now()) {
        pool.sweep(now: now)
        let late = waiting.values.filter { $0.headDeadline <= now }
        for front in late {
            unwatch(front)
            front.headTimedOut()
        }
        let idle = tunnels.values.filter { now - $0.lastActivity >= tunnelIdleTimeout }
        for tunnel in idle {
            unwatch(tunnel)
            tunnel.close()
        }
    }
}

/// Where an absolute-form or origin-form request goes.
struct RequestTarget {
    let host: HostName.Normalised
    let port: UInt16
    /// `/path?query` as sent upstream.
    let originForm: String
    /// The path without the query (what is decided and recorded: queries may hold secrets).
    var path: String { String(originForm.prefix { $0 != "?" }) }
    var query: [(String, String)] { InspectedRequest.formItems(originForm.split(separator: "?", maxSplits: 1).dropFirst().first.map(String.init) ?? "") }
    /// The Host header sent upstream.
    let authority: String
}

/// One client connection: the proxy front door (CONNECT and absolute-form `http://`), or, after an
/// intercepted CONNECT, the decrypted HTTP/1.1 stream to a catalog service.
final class FrontHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    enum Mode {
        case proxy
        case intercept(route: Route, service: BoundService)
    }

    enum Phase { case idle, deciding, forwarding, rejecting, tunnel, closed }

    let state: ProxyState
    let mode: Mode
    private var phase: Phase = .idle
    private var queue: [HTTPServerRequestPart] = []
    private var bodyBytes = 0
    private var needsBody = false
    private var requestEnded = false
    private var responseStarted = false
    private var closeAfterResponse = false
    private var requestHead: HTTPRequestHead?
    /// The current request goes to an intercepted service: its trailer fields (which no decision
    /// read) are not forwarded.
    private var dropTrailers = false
    private var pendingDecision: ((ChannelHandlerContext, [UInt8]?) -> Void)?
    /// The response of an allowed token exchange being read for the token it mints.
    private var mintCapture: (service: String, field: String, body: [UInt8])?
    private var upstream: UpstreamLink?
    /// When the request head must have arrived (while ``phase`` is idle); checked by the loop's sweep.
    private(set) var headDeadline = NIODeadline.distantFuture
    /// The request to send again on a fresh connection when a pooled one turns out closed before
    /// any response: only bodiless GET/HEAD/OPTIONS requests.
    private var retry: (head: HTTPRequestHead, target: RequestTarget, route: Route, tls: Bool)?
    let loop: LoopResources
    private var context: ChannelHandlerContext?
    private var generation = 0
    private var readsPaused = false
    /// The last response part written to the client: closing must wait for it, or data still
    /// queued behind back-pressure would be dropped.
    private var lastResponseWrite: EventLoopFuture<Void>?

    init(state: ProxyState, mode: Mode, loop: LoopResources) {
        self.state = state
        self.mode = mode
        self.loop = loop
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        addRequestBodyTimeout(context)
        if case .intercept = mode { armHeadTimer(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        loop.unwatch(self)
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        armHeadTimer(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        phase = .closed
        loop.unwatch(self)
        upstream?.channel.close(promise: nil)
        upstream = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if phase == .forwarding { upstream?.channel.flush() }
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let upstream, upstream.readsPaused {
            upstream.readsPaused = false
            upstream.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
        }
        context.fireChannelWritabilityChanged()
    }

    private func armHeadTimer(_ context: ChannelHandlerContext) {
        headDeadline = .now() + state.limits.requestHeadTimeout
        loop.watch(self)
    }

    /// The loop's sweep found the request head late: close the connection.
    func headTimedOut() {
        guard phase == .idle else { return }
        context?.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch part {
        case .head(let head):
            guard phase == .idle else { context.close(promise: nil); return }
            loop.unwatch(self)
            generation += 1
            requestHead = head
            requestEnded = false
            responseStarted = false
            queue = []
            bodyBytes = 0
            needsBody = false
            pendingDecision = nil
            mintCapture = nil
            retry = nil
            dropTrailers = false
            closeAfterResponse = !head.isKeepAlive
            phase = .deciding
            start(context, head)
        case .body(let buffer):
            bodyBytes += buffer.readableBytes
            switch phase {
            case .deciding:
                if needsBody, bodyBytes > state.limits.maxInspectedBody {
                    reject(context, .payloadTooLarge, decision: "error", rule: "built-in: inspected body limit",
                           reason: "the request body exceeds \(state.limits.maxInspectedBody) bytes, the most stepguard reads to find a credential")
                    return
                }
                queue.append(part)
                if !needsBody, bodyBytes > state.limits.maxInspectedBody, !readsPaused {
                    // The upstream is not connected yet: stop reading until it is (bounded memory).
                    readsPaused = true
                    context.channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
                }
            case .forwarding:
                upstream?.channel.write(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil)
                if let upstream, !upstream.channel.isWritable, !readsPaused {
                    // Pause first: the flush may make the upstream writable again at once, which resumes.
                    readsPaused = true
                    context.channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
                    upstream.channel.flush()
                }
            default:
                break
            }
        case .end(let trailers):
            requestEnded = true
            switch phase {
            case .deciding:
                queue.append(part)
                if needsBody, let decision = pendingDecision {
                    pendingDecision = nil
                    var body: [UInt8] = []
                    for case .body(var buffer) in queue { body += buffer.readBytes(length: buffer.readableBytes) ?? [] }
                    decision(context, body)
                }
            case .forwarding:
                upstream?.channel.writeAndFlush(HTTPClientRequestPart.end(dropTrailers ? nil : trailers), promise: nil)
            default:
                break
            }
        }
    }

    // MARK: Requests

    private func start(_ context: ChannelHandlerContext, _ head: HTTPRequestHead) {
        if head.headers.count > state.limits.maxHeaderCount {
            return reject(context, .headersTooLarge, decision: "error", rule: "built-in: header limits",
                          reason: "the request has \(head.headers.count) header fields; at most \(state.limits.maxHeaderCount) are accepted")
        }
        let headerBytes = head.headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count }
        if headerBytes > state.limits.maxHeaderBytes {
            return reject(context, .headersTooLarge, decision: "error", rule: "built-in: header limits",
                          reason: "the request headers are \(headerBytes) bytes; at most \(state.limits.maxHeaderBytes) are accepted")
        }
        let transferEncoding = head.headers["transfer-encoding"]
        let contentLength = head.headers["content-length"]
        if !transferEncoding.isEmpty, !contentLength.isEmpty {
            return reject(context, .badRequest, decision: "error", rule: "built-in: message framing",
                          reason: "the request has both Content-Length and Transfer-Encoding (request smuggling); send one")
        }
        if Set(contentLength.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }).count > 1 {
            return reject(context, .badRequest, decision: "error", rule: "built-in: message framing", reason: "the request has conflicting Content-Length values")
        }
        if let last = transferEncoding.last, last.lowercased().split(separator: ",").last?.trimmingCharacters(in: .whitespaces) != "chunked" {
            return reject(context, .badRequest, decision: "error", rule: "built-in: message framing", reason: "Transfer-Encoding must end with chunked")
        }
        if head.method == .CONNECT {
            guard case .proxy = mode else {
                return reject(context, .badRequest, decision: "error", rule: "built-in: no nested CONNECT", reason: "CONNECT inside an intercepted connection is not allowed")
            }
            return connect(context, head)
        }
        switch mode {
        case .proxy:
            let target: RequestTarget
            do { target = try Self.absoluteTarget(head.uri) } catch {
                return reject(context, .badRequest, decision: "error", rule: "built-in: request target", reason: error.reason)
            }
            let generation = self.generation
            let routed = state.route(host: target.host, port: target.port, method: head.method.rawValue, path: target.path, on: context.eventLoop)
            routed.assumeIsolated().whenComplete { [self] result in
                guard self.generation == generation, phase == .deciding, let context = self.context else { return }
                switch result {
                case .failure(let error):
                    routeFailed(context, error)
                case .success(let route):
                    let verdict = state.decideConnection(route)
                    let service = state.service(for: route.host)
                    if service == nil || !verdict.allowed {
                        if recordEgress(context, verdict, subject: ProxyState.subject(route: route, method: head.method.rawValue, path: target.path)) { return }
                    }
                    if let service {
                        decideService(context, head: head, target: target, route: route, service: service, tls: false)
                    } else {
                        forward(context, head: head, target: target, route: route, tls: false)
                    }
                }
            }
        case .intercept(let route, let service):
            let target: RequestTarget
            do { target = try interceptedTarget(head, route: route) } catch {
                let blocked = state.record(.service, allowed: false, rule: "built-in: Host must equal the CONNECT target", reason: error.reason,
                                           subject: ProxyState.subject(route: route, method: head.method.rawValue, path: String(head.uri.prefix { $0 != "?" }), service: service))
                if blocked || error.status != .forbidden { return reject(context, error.status, decision: "deny", rule: "built-in: Host must equal the CONNECT target", reason: error.reason) }
                return reject(context, .badRequest, decision: "error", rule: "built-in: request target", reason: error.reason)
            }
            decideService(context, head: head, target: target, route: route, service: service, tls: true)
        }
    }

    private func decideService(_ context: ChannelHandlerContext, head: HTTPRequestHead, target requested: RequestTarget, route: Route, service: BoundService, tls: Bool) {
        dropTrailers = true
        // The path is decided, and forwarded, in its normal form: what a server would resolve it to.
        let target: RequestTarget
        do { target = try requested.normalisedForService(encodedSlashes: service.definition.encodedSlashes) } catch {
            let blocked = state.record(.service, allowed: false, rule: error.rule, reason: error.reason,
                                       subject: ProxyState.subject(route: route, method: head.method.rawValue, path: requested.path, service: service))
            if blocked { return reject(context, error.status, decision: "deny", rule: error.rule, reason: error.reason) }
            target = requested  // audit mode: recorded, not enforced
        }
        let decide: (ChannelHandlerContext, [UInt8]?) -> Void = { [self] context, body in
            let inspected = InspectedRequest(method: head.method.rawValue, target: target.originForm,
                                             headers: head.headers.map { ($0.name, $0.value) }, body: body,
                                             locations: service.definition.credentials, service: service.definition.name)
            let now = Date()
            let finding = state.inspector.inspect(inspected, now: now)
            let verdict = service.decide(ServiceRequest(method: head.method.rawValue, path: target.path, query: target.query, credential: finding),
                                         identity: state.identity, stepStarted: state.stepStarted, now: now)
            var details = ProxyState.subject(route: route, method: head.method.rawValue, path: target.path, service: service)
            details["credential"] = .string(finding.credentialClass.rawValue)
            if finding.credentialClass != .none {
                details["credential_kind"] = .string(finding.kind)
                details["credential_id"] = .string(finding.redacted)
            }
            details["sensitive"] = .bool(verdict.sensitive)
            let blocked = state.record(.service, allowed: verdict.allowed, rule: verdict.rule, reason: verdict.reason, subject: details)
            if blocked { return reject(context, .forbidden, decision: "deny", rule: verdict.rule, reason: verdict.reason) }
            if verdict.allowed, let mint = service.definition.mint(method: head.method.rawValue, path: target.path) {
                mintCapture = (service.definition.name, mint.field, [])
            }
            forward(context, head: head, target: target, route: route, tls: tls)
        }
        let hasBody = !head.headers["transfer-encoding"].isEmpty || (Int(head.headers.first(name: "content-length") ?? "0") ?? 0) > 0
        if service.definition.credentialInBody, hasBody, !requestEnded {
            needsBody = true
            pendingDecision = decide
        } else if service.definition.credentialInBody, hasBody {
            var body: [UInt8] = []
            for case .body(var buffer) in queue { body += buffer.readBytes(length: buffer.readableBytes) ?? [] }
            decide(context, body)
        } else {
            decide(context, nil)
        }
    }

    // MARK: Forwarding

    /// ASCII case-insensitive equality with `lower`, which is lower case; no allocation.
    static func equalsIgnoringCase(_ name: String, _ lower: String) -> Bool {
        name.utf8.elementsEqual(lower.utf8) { ($0 >= 65 && $0 <= 90 ? $0 + 32 : $0) == $1 }
    }


    /// `headers` without hop-by-hop fields and the fields the Connection header names. Headers that
    /// have none (most requests) are returned as they are, without a copy.
    static func filtered(_ headers: HTTPHeaders) -> HTTPHeaders {
        var listed: [String] = []
        var found = false
        for (name, value) in headers where HopByHop.isHopByHop(name) {
            found = true
            if equalsIgnoringCase(name, "connection") {
                for token in value.utf8.split(separator: UInt8(ascii: ",")) {
                    let trimmed = token.drop { $0 == 32 || $0 == 9 }.reversed().drop { $0 == 32 || $0 == 9 }.reversed()
                    if !trimmed.isEmpty { listed.append(String(decoding: trimmed, as: UTF8.self).lowercased()) }
                }
            }
        }
        guard found else { return headers }
        var result = HTTPHeaders()
        for (name, value) in headers {
            if HopByHop.isHopByHop(name) || listed.contains(where: { equalsIgnoringCase(name, $0) }) { continue }
            result.add(name: name, value: value)
        }
        return result
    }

    private func forward(_ context: ChannelHandlerContext, head: HTTPRequestHead, target: RequestTarget, route: Route, tls: Bool, fresh: Bool = false) {
        let generation = self.generation
        upstreamLink(context, route: route, tls: tls, fresh: fresh).whenComplete { [self] result in
            guard self.generation == generation, phase == .deciding, let context = self.context else {
                if case .success(let link) = result, link !== upstream { link.channel.close(promise: nil) }
                return
            }
            switch result {
            case .failure(let error):
                reject(context, .badGateway, decision: "error", rule: "upstream",
                       reason: "cannot connect to \(route.described): \(error)")
            case .success(let link):
                upstream = link
                retry = link.reused && Self.retryable(head) ? (head, target, route, tls) : nil
                var headers = Self.filtered(head.headers)
                headers.replaceOrAdd(name: "Host", value: target.authority)
                // The minted token is read from the response: it must not come compressed.
                if mintCapture != nil { headers.replaceOrAdd(name: "Accept-Encoding", value: "identity") }
                let upstreamHead = HTTPRequestHead(version: .http1_1, method: head.method, uri: target.originForm, headers: headers)
                link.channel.write(HTTPClientRequestPart.head(upstreamHead), promise: nil)
                for part in queue {
                    switch part {
                    case .body(let buffer): link.channel.write(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil)
                    case .end(let trailers): link.channel.write(HTTPClientRequestPart.end(dropTrailers ? nil : trailers), promise: nil)
                    case .head: break
                    }
                }
                link.channel.flush()
                queue = []
                phase = .forwarding
                resumeReads(context)
            }
        }
    }

    /// Only requests without a body whose method is safe are sent again after a pooled connection
    /// turns out closed (RFC 9110 §9.2.2): they cannot have had an effect the client did not ask for twice.
    static func retryable(_ head: HTTPRequestHead) -> Bool {
        guard retryable(method: head.method.rawValue) else { return false }
        guard head.headers["transfer-encoding"].isEmpty else { return false }
        return head.headers["content-length"].allSatisfy { $0.trimmingCharacters(in: .whitespaces) == "0" }
    }

    /// Whether a bodiless request with `method` may be sent again (see ``retryable(_:)``).
    static func retryable(method: String) -> Bool { method == "GET" || method == "HEAD" || method == "OPTIONS" }

    private func upstreamLink(_ context: ChannelHandlerContext, route: Route, tls: Bool, fresh: Bool) -> EventLoopFuture<UpstreamLink>.Isolated {
        let key = "\(tls ? "https" : "http")://\(route.host.text):\(route.port)@\(route.connectAddress)"
        if !fresh, let link = upstream, link.key == key, link.reusable, link.channel.isActive {
            return context.eventLoop.makeSucceededIsolatedFuture(link)
        }
        upstream?.channel.close(promise: nil)
        upstream = nil
        if !fresh, let link = loop.pool.take(key) {
            // A connection to the same checked address and port (and, for TLS, the same verified
            // server name), idle after a complete exchange.
            link.handler.front = self
            link.reused = true
            return context.eventLoop.makeSucceededIsolatedFuture(link)
        }
        let state = self.state
        let eventLoop = context.eventLoop
        let tlsContext: EventLoopFuture<NIOSSLContext?> = if tls {
            state.upstreamTLS.map { $0.context(on: eventLoop).map { $0 } } ?? eventLoop.makeFailedFuture(ChannelError.inappropriateOperationForState)
        } else {
            eventLoop.makeSucceededFuture(nil)
        }
        return tlsContext.flatMap { upstreamTLS in
            ClientBootstrap(group: eventLoop)
                .connectTimeout(state.limits.connectTimeout)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .connect(to: route.connectAddress)
                .map { ($0, upstreamTLS) }
        }.assumeIsolated().flatMapThrowing { [self] channel, upstreamTLS in
            let sync = channel.pipeline.syncOperations
            if let upstreamTLS {
                if case .name(let name) = route.host {
                    try sync.addHandler(UpstreamIdentity.clientHandler(context: upstreamTLS, host: name))
                } else {
                    try sync.addHandler(NIOSSLClientHandler(context: upstreamTLS, serverHostname: nil))
                }
            }
            try sync.addHandler(IdleStateHandler(allTimeout: state.limits.responseIdleTimeout), position: .first)
            try sync.addHTTPClientHandlers()
            let handler = UpstreamHandler(front: self)
            try sync.addHandler(handler)
            let link = UpstreamLink(key: key, channel: channel, handler: handler)
            handler.link = link
            return link
        }
    }

    func upstreamRead(_ part: HTTPClientResponsePart, from channel: Channel) {
        guard let context, let link = upstream, link.channel === channel, phase == .forwarding else { return }
        switch part {
        case .head(let head):
            responseStarted = true
            retry = nil
            if !head.isKeepAlive { link.reusable = false }
            if !(200..<300).contains(head.status.code) { mintCapture = nil }
            var headers = Self.filtered(head.headers)
            if closeAfterResponse { headers.replaceOrAdd(name: "Connection", value: "close") }
            let version = requestHead?.version ?? .http1_1
            lastResponseWrite = context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: head.status, headers: headers))))
        case .body(let buffer):
            if mintCapture != nil { readMintedToken(buffer) }
            lastResponseWrite = context.write(wrapOutboundOut(.body(.byteBuffer(buffer))))
            if !context.channel.isWritable, !link.readsPaused {
                link.readsPaused = true
                link.channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
            }
        case .end(let trailers):
            if !requestEnded { link.reusable = false; closeAfterResponse = true }
            if !link.reusable {
                link.channel.close(promise: nil)
                upstream = nil
            } else {
                // A complete exchange: other client connections may use the connection now.
                upstream = nil
                loop.pool.put(link)
            }
            finishResponse(context, context.writeAndFlush(wrapOutboundOut(.end(trailers))))
        }
    }

    /// Adds a part of a token exchange's response to what was read of it; once it is a whole JSON
    /// document, remembers the minted token — before the client has the part that completes it.
    private func readMintedToken(_ buffer: ByteBuffer) {
        guard var capture = mintCapture else { return }
        capture.body += buffer.readableBytesView
        guard capture.body.count <= state.limits.maxInspectedBody else { mintCapture = nil; return }
        if let token = BuiltInCredentialInspector.jsonString(at: capture.field, in: capture.body) {
            state.minted.remember(token, service: capture.service, now: Date())
            mintCapture = nil
        } else {
            mintCapture = capture
        }
    }

    func upstreamReadComplete() { context?.flush() }

    /// The upstream can take more request body: read from the client again.
    func upstreamWritable() {
        if let context, phase == .forwarding { resumeReads(context) }
    }

    private func resumeReads(_ context: ChannelHandlerContext) {
        guard readsPaused else { return }
        readsPaused = false
        context.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
    }

    func upstreamClosed(_ channel: Channel, error: Error?) {
        guard let link = upstream, link.channel === channel else { return }
        upstream = nil
        guard let context, phase == .forwarding || phase == .deciding else { return }
        if !responseStarted, let retry {
            // The pooled connection was closed by the upstream while idle; the request got no answer.
            self.retry = nil
            channel.close(promise: nil)
            phase = .deciding
            queue = requestEnded ? [.end(nil)] : []
            return forward(context, head: retry.head, target: retry.target, route: retry.route, tls: retry.tls, fresh: true)
        }
        if responseStarted {
            closeAfterRelayed(context)
        } else {
            let reason = error.map { "the upstream \(link.key) failed: \($0)" } ?? "the upstream \(link.key) closed the connection before responding"
            reject(context, .badGateway, decision: "error", rule: "upstream", reason: reason)
        }
    }

    /// Nothing went either way on the upstream connection for ``ProxyLimits/responseIdleTimeout``:
    /// a request still unanswered gets `504`; a response that stopped midway ends the connection.
    func upstreamStalled(_ channel: Channel) {
        guard let link = upstream, link.channel === channel, phase == .forwarding, let context else { return }
        upstream = nil
        channel.close(promise: nil)
        guard !responseStarted else { return closeAfterRelayed(context) }
        reject(context, .gatewayTimeout, decision: "error", rule: "upstream",
               reason: "the upstream \(link.key) sent no response for \(ProxyLimits.describe(state.limits.responseIdleTimeout))")
    }

    /// Closes the client connection once what was already relayed has reached it.
    private func closeAfterRelayed(_ context: ChannelHandlerContext) {
        phase = .closed
        context.flush()
        if let pending = lastResponseWrite {
            pending.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        } else {
            context.close(promise: nil)
        }
    }

    private func finishResponse(_ context: ChannelHandlerContext, _ written: EventLoopFuture<Void>) {
        if closeAfterResponse {
            phase = .closed
            written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        } else {
            phase = .idle
            armHeadTimer(context)
        }
    }

    /// The destination could not be routed: denied by name before resolving, or not resolvable.
    private func routeFailed(_ context: ChannelHandlerContext, _ error: Error) {
        let failure = error as? ProxyFailure ?? ProxyFailure(status: .badGateway, reason: "\(error)")
        reject(context, failure.status, decision: failure.decision, rule: failure.rule, reason: failure.reason)
    }

    /// Answers the current request with an error or deny response (JSON body naming the rule and reason).
    func reject(_ context: ChannelHandlerContext, _ status: ProxyFailure.HTTPResponseStatusCode, decision: String, rule: String, reason: String) {
        guard !responseStarted, phase != .closed else { context.close(promise: nil); return }
        responseStarted = true
        pendingDecision = nil
        queue = []
        if !requestEnded { closeAfterResponse = true }
        phase = .rejecting
        resumeReads(context)
        let answer = ProxyAnswer(status, decision: decision, rule: rule, reason: reason, close: closeAfterResponse)
        context.write(wrapOutboundOut(.head(answer.head(version: requestHead?.version ?? .http1_1))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: answer.body)))), promise: nil)
        finishResponse(context, context.writeAndFlush(wrapOutboundOut(.end(nil))))
    }

    // MARK: CONNECT

    private func connect(_ context: ChannelHandlerContext, _ head: HTTPRequestHead) {
        guard let split = Self.splitAuthority(head.uri, defaultPort: nil), let host = HostName.normalise(split.0) else {
            return reject(context, .badRequest, decision: "error", rule: "built-in: request target",
                          reason: "CONNECT needs host:port, not '\(head.uri.prefix(200))'")
        }
        phase = .tunnel
        let generation = self.generation
        // Start on the next loop tick: the pipeline is rebuilt below, which must not happen while the
        // HTTP decoder is still delivering this CONNECT request.
        context.eventLoop.assumeIsolated().execute { [self] in
            guard self.generation == generation, phase == .tunnel, let context = self.context else { return }
            connectRoute(context, host: host, port: split.1, generation: generation)
        }
    }

    /// Records the egress decision about a connection; when it blocks, answers 403 and returns true.
    private func recordEgress(_ context: ChannelHandlerContext, _ verdict: ConnectionVerdict, subject: [String: AuditValue]) -> Bool {
        guard state.record(.egress, allowed: verdict.allowed, rule: verdict.rule, reason: verdict.reason, subject: subject) else { return false }
        reject(context, .forbidden, decision: "deny", rule: verdict.rule, reason: verdict.reason)
        return true
    }

    private func connectRoute(_ context: ChannelHandlerContext, host: HostName.Normalised, port: UInt16, generation: Int) {
        state.route(host: host, port: port, method: "CONNECT", path: "", on: context.eventLoop).assumeIsolated().whenComplete { [self] result in
            guard self.generation == generation, phase == .tunnel, let context = self.context else { return }
            phase = .deciding
            switch result {
            case .failure(let error):
                routeFailed(context, error)
            case .success(let route):
                let verdict = state.decideConnection(route)
                let service = state.service(for: route.host)
                if recordEgress(context, verdict, subject: ProxyState.subject(route: route, method: "CONNECT", path: "", service: service)) { return }
                phase = .tunnel
                if let service {
                    intercept(context, route: route, service: service)
                } else {
                    tunnel(context, route: route)
                }
            }
        }
    }

    private func removeHTTPHandlers(_ context: ChannelHandlerContext) throws {
        // Removals without a promise: nothing waits for them (they complete at once), so no future is made.
        let sync = context.pipeline.syncOperations
        Self.removeRequestBodyTimeout(sync)
        sync.removeHandler(try sync.handler(type: HTTPResponseEncoder.self), promise: nil)
        if let pipelining = try? sync.handler(type: HTTPServerPipelineHandler.self) { sync.removeHandler(pipelining, promise: nil) }
        if let errors = try? sync.handler(type: ProtocolErrorAnswer.self) { sync.removeHandler(errors, promise: nil) }
        if let validator = try? sync.handler(type: NIOHTTPResponseHeadersValidator.self) { sync.removeHandler(validator, promise: nil) }
    }

    private func removeDecoderAndSelf(_ context: ChannelHandlerContext) throws {
        let sync = context.pipeline.syncOperations
        sync.removeHandler(try sync.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self), promise: nil)
        sync.removeHandler(context: context, promise: nil)
    }

    /// The answer to an allowed CONNECT; the tunnel starts after it.
    static let established = "HTTP/1.1 200 Connection Established\r\n\r\n"

    /// Reads of a tunnel start small (1,000 idle tunnels stay cheap) and grow up to 1 MiB while data
    /// streams, so bulk transfers take few system calls. Back-pressure is unchanged: a side reads
    /// only while its partner is writable, so at most one read is queued per direction.
    private static let tunnelReads = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2048, maximum: 1024 * 1024)

    private func tunnel(_ context: ChannelHandlerContext, route: Route) {
        let state = self.state
        ClientBootstrap(group: context.eventLoop)
            .connectTimeout(state.limits.connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.recvAllocator, value: Self.tunnelReads)
            .connect(to: route.connectAddress)
            .assumeIsolated()
            .whenComplete { [self] result in
                guard phase == .tunnel, self.context != nil, context.channel.isActive else {
                    if case .success(let peer) = result { peer.close(promise: nil) }
                    return
                }
                switch result {
                case .failure(let error):
                    phase = .deciding
                    reject(context, .badGateway, decision: "error", rule: "upstream",
                           reason: "cannot connect to \(route.described): \(error)")
                case .success(let peer):
                    do {
                        try removeHTTPHandlers(context)
                        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: Self.established)), promise: nil)
                        let (local, remote) = GlueHandler.matchedPair(loop: loop)
                        try peer.pipeline.syncOperations.addHandler(remote)
                        _ = context.channel.setOption(ChannelOptions.allowRemoteHalfClosure, value: true)
                        _ = context.channel.setOption(ChannelOptions.recvAllocator, value: Self.tunnelReads)
                        var handlers: [ChannelHandler] = []
                        if !state.services.isEmpty {
                            handlers.append(TunnelSNIInspector(state: state, route: route))
                        }
                        handlers.append(local)
                        try context.pipeline.syncOperations.addHandlers(handlers)
                        try removeDecoderAndSelf(context)
                    } catch {
                        peer.close(promise: nil)
                        context.close(promise: nil)
                    }
                }
            }
    }

    private func intercept(_ context: ChannelHandlerContext, route: Route, service: BoundService) {
        guard case .name(let name) = route.host else {
            return reject(context, .forbidden, decision: "deny", rule: "services: \(service.definition.name)", reason: "services are intercepted by name, not by address")
        }
        do {
            _ = try state.leafContext(for: name)  // made (or found) before the client is told the tunnel is open
            try removeHTTPHandlers(context)
            context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: Self.established)), promise: nil)
            try Self.addInterceptHandlers(context.pipeline.syncOperations, name: name, route: route, service: service, state: state, loop: loop)
            try removeDecoderAndSelf(context)
        } catch {
            context.close(promise: nil)
        }
    }

    /// What serves an intercepted connection once its CONNECT was answered: the SNI check, TLS with
    /// a leaf certificate for `name`, the HTTP server pipeline, and a front handler deciding every
    /// request to `service`.
    static func addInterceptHandlers(_ sync: ChannelPipeline.SynchronousOperations, name: String, route: Route, service: BoundService,
                                     state: ProxyState, loop: LoopResources) throws {
        try sync.addHandler(InterceptedSNIGuard(host: name, trail: state.trail))
        try sync.addHandler(NIOSSLServerHandler(context: try state.leafContext(for: name)))
        try sync.addProxyServerHandlers(limits: state.decoderLimits)
        try sync.addHandler(FrontHandler(state: state, mode: .intercept(route: route, service: service), loop: loop))
    }

    // MARK: Targets

    /// Splits `host:port` / `[v6]:port`; the port is required unless `defaultPort` is given.
    static func splitAuthority(_ authority: String, defaultPort: UInt16?) -> (String, UInt16)? {
        var host = authority
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = String(authority[...close])
            let rest = authority[authority.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { return nil }
                portText = rest.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: ":") {
            guard authority.firstIndex(of: ":") == colon else { return nil }
            host = String(authority[..<colon])
            portText = authority[authority.index(after: colon)...]
        }
        guard !host.isEmpty else { return nil }
        if let portText {
            guard !portText.isEmpty, portText.allSatisfy(\.isNumber), let port = UInt16(portText), port > 0 else { return nil }
            return (host, port)
        }
        guard let defaultPort else { return nil }
        return (host, defaultPort)
    }

    static func absoluteTarget(_ uri: String) throws(ProxyFailure) -> RequestTarget {
        let lower = uri.lowercased()
        if lower.hasPrefix("https://") {
            throw ProxyFailure(status: .badRequest, reason: "send https:// requests through CONNECT, not as absolute-form requests")
        }
        guard lower.hasPrefix("http://") else {
            throw ProxyFailure(status: .badRequest, reason: "this is stepguard's forward proxy: send CONNECT host:port or an absolute-form http:// request, not '\(uri.prefix(100))'")
        }
        let rest = uri.dropFirst(7)
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        let authority = String(rest[..<authorityEnd])
        guard !authority.contains("@") else {
            throw ProxyFailure(status: .badRequest, reason: "user information in the request URL is not accepted")
        }
        var origin = String(rest[authorityEnd...].prefix { $0 != "#" })
        if origin.isEmpty { origin = "/" } else if origin.hasPrefix("?") { origin = "/" + origin }
        guard let split = splitAuthority(authority, defaultPort: 80), let host = HostName.normalise(split.0) else {
            throw ProxyFailure(status: .badRequest, reason: "'\(authority.prefix(100))' is not a valid host[:port]")
        }
        return RequestTarget(host: host, port: split.1, originForm: origin, authority: authority)
    }

    private func interceptedTarget(_ head: HTTPRequestHead, route: Route) throws(ProxyFailure) -> RequestTarget {
        var origin = head.uri
        var hostHeaders = head.headers["host"]
        if head.uri.lowercased().hasPrefix("https://") {
            let rest = head.uri.dropFirst(8)
            let end = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
            hostHeaders.append(String(rest[..<end]))
            origin = String(rest[end...])
            if origin.isEmpty { origin = "/" }
        }
        guard origin.hasPrefix("/") else {
            throw ProxyFailure(status: .badRequest, reason: "request target '\(head.uri.prefix(100))' is not origin-form")
        }
        guard !hostHeaders.isEmpty else {
            throw ProxyFailure(status: .forbidden, reason: "the request has no Host header; it must name \(route.host.text)")
        }
        for value in hostHeaders {
            guard let split = Self.splitAuthority(value, defaultPort: route.port), HostName.normalise(split.0) == route.host, split.1 == route.port else {
                throw ProxyFailure(status: .forbidden, reason: "Host '\(value.prefix(100))' differs from the CONNECT target \(route.host.text):\(route.port)")
            }
        }
        let authority = route.port == 443 ? route.host.text : "\(route.host.text):\(route.port)"
        return RequestTarget(host: route.host, port: route.port, originForm: String(origin.prefix { $0 != "#" }), authority: authority)
    }
}

extension ProxyState {
    var decoderLimits: NIOHTTPDecoderLimitConfiguration {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderListSize = self.limits.maxHeaderBytes + 1024
        limits.maxHeaderFieldSize = self.limits.maxHeaderBytes
        limits.maxHeaderFieldCount = self.limits.maxHeaderCount + 1
        return limits
    }
}
