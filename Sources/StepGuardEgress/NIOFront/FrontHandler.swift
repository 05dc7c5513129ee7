import FoundationEssentials
import StepGuardCore
import Glibc
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import StepGuardAudit
import StepGuardPolicy

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
    var phase: Phase = .idle
    /// The request being served; a new one with each request head.
    private var exchange = Exchange()
    private var upstream: UpstreamLink?
    /// When the request head must have arrived (while ``phase`` is idle); checked by the loop's sweep.
    private(set) var headDeadline = NIODeadline.distantFuture
    let loop: LoopResources
    private(set) var context: ChannelHandlerContext?
    private(set) var generation = 0
    private var readsPaused = false
    /// The last response part written to the client: closing must wait for it, or data still
    /// queued behind back-pressure would be dropped.
    private var lastResponseWrite: EventLoopFuture<Void>?

    /// One request and its response, as far as they have come.
    struct Exchange {
        var head: HTTPRequestHead?
        /// Parts read while the request is decided (or its upstream connected); sent once it is.
        var queue: [HTTPServerRequestPart] = []
        var bodyBytes = 0
        /// The decision waits for the whole body (the service carries credentials in bodies).
        var needsBody = false
        var pendingDecision: ((ChannelHandlerContext, [UInt8]?) -> Void)?
        var ended = false
        var responseStarted = false
        var closeAfterResponse = false
        /// The request goes to an intercepted service: its trailer fields (which no decision read)
        /// are not forwarded.
        var dropTrailers = false
        /// The response of an allowed token exchange being read for the token it mints.
        var mintCapture: (service: String, field: String, body: [UInt8])?
        /// The request to send again on a fresh connection when a pooled one turns out closed
        /// before any response: only bodiless GET/HEAD/OPTIONS requests.
        var retry: (head: HTTPRequestHead, target: RequestTarget, route: Route, tls: Bool)?

        init(head: HTTPRequestHead? = nil) {
            self.head = head
            closeAfterResponse = head.map { !$0.isKeepAlive } ?? false
        }
    }

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
            exchange = Exchange(head: head)
            phase = .deciding
            start(context, head)
        case .body(let buffer):
            exchange.bodyBytes += buffer.readableBytes
            switch phase {
            case .deciding:
                if exchange.needsBody, exchange.bodyBytes > state.limits.maxInspectedBody {
                    reject(context, .payloadTooLarge, decision: "error", rule: "built-in: inspected body limit",
                           reason: "the request body exceeds \(state.limits.maxInspectedBody) bytes, the most stepguard reads to find a credential")
                    return
                }
                exchange.queue.append(part)
                if !exchange.needsBody, exchange.bodyBytes > state.limits.maxInspectedBody, !readsPaused {
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
            exchange.ended = true
            switch phase {
            case .deciding:
                exchange.queue.append(part)
                if exchange.needsBody, let decision = exchange.pendingDecision {
                    exchange.pendingDecision = nil
                    var body: [UInt8] = []
                    for case .body(var buffer) in exchange.queue { body += buffer.readBytes(length: buffer.readableBytes) ?? [] }
                    decision(context, body)
                }
            case .forwarding:
                upstream?.channel.writeAndFlush(HTTPClientRequestPart.end(exchange.dropTrailers ? nil : trailers), promise: nil)
            default:
                break
            }
        }
    }

    // MARK: Requests

    private func start(_ context: ChannelHandlerContext, _ head: HTTPRequestHead) {
        if let refusal = RequestFraming.refusal(head.headers, limits: state.limits) { return reject(context, refusal) }
        if head.method == .CONNECT {
            guard case .proxy = mode else {
                return reject(context, .badRequest, decision: "error", rule: "built-in: no nested CONNECT", reason: "CONNECT inside an intercepted connection is not allowed")
            }
            return connect(context, head)
        }
        switch mode {
        case .proxy:
            let target: RequestTarget
            do { target = try RequestTarget.absolute(head.uri) } catch { return reject(context, error) }
            let generation = self.generation
            let ask = Ask.request(method: head.method.rawValue, path: target.path)
            state.route(host: target.host, port: target.port, ask, on: context.eventLoop).assumeIsolated().whenComplete { [self] result in
                guard self.generation == generation, phase == .deciding, let context = self.context else { return }
                switch result {
                case .failure(let error):
                    routeFailed(context, error)
                case .success(let route):
                    switch state.enforce(state.decider.decide(route, ask)) {
                    case .refuse(let failure): reject(context, failure)
                    case .inspect(let service): decideService(context, head: head, target: target, route: route, service: service, tls: false)
                    case .forward, .tunnel, .intercept: forward(context, head: head, target: target, route: route, tls: false)
                    }
                }
            }
        case .intercept(let route, let service):
            let target: RequestTarget
            do { target = try RequestTarget.intercepted(head.uri, hostFields: head.headers["host"], route: route) } catch {
                let path = String(head.uri.prefix { $0 != "?" })
                let blocked = state.enforce(DecisionRecord(.service, refusing: error, route: route, method: head.method.rawValue, path: path, service: service))
                // In audit mode a request to another host than the one decided is still not forwarded.
                return reject(context, blocked ? error : ProxyFailure(status: .badRequest, reason: error.reason, rule: "built-in: request target"))
            }
            decideService(context, head: head, target: target, route: route, service: service, tls: true)
        }
    }

    /// Decides a request to `service` once its body is read (when the service carries credentials
    /// in bodies), then forwards it or answers `403`.
    private func decideService(_ context: ChannelHandlerContext, head: HTTPRequestHead, target requested: RequestTarget, route: Route, service: BoundService, tls: Bool) {
        exchange.dropTrailers = true
        // The path is decided, and forwarded, in its normal form: what a server would resolve it to.
        let target: RequestTarget
        do { target = try requested.normalisedForService(encodedSlashes: service.definition.encodedSlashes) } catch {
            if state.enforce(DecisionRecord(.service, refusing: error, route: route, method: head.method.rawValue, path: requested.path, service: service)) {
                return reject(context, error)
            }
            target = requested  // audit mode: recorded, not enforced
        }
        let decide: (ChannelHandlerContext, [UInt8]?) -> Void = { [self] context, body in
            let decision = state.serviceContext.decide(method: head.method.rawValue, target: target, headers: head.headers.map { ($0.name, $0.value) },
                                                       body: body, route: route, service: service, now: Date())
            if state.enforce(decision.record) { return reject(context, decision.record.denial) }
            if let mint = decision.mint { exchange.mintCapture = (mint.service, mint.field, []) }
            forward(context, head: head, target: target, route: route, tls: tls)
        }
        let hasBody = !head.headers["transfer-encoding"].isEmpty || (Int(head.headers.first(name: "content-length") ?? "0") ?? 0) > 0
        if service.definition.credentialInBody, hasBody, !exchange.ended {
            exchange.needsBody = true
            exchange.pendingDecision = decide
        } else if service.definition.credentialInBody, hasBody {
            var body: [UInt8] = []
            for case .body(var buffer) in exchange.queue { body += buffer.readBytes(length: buffer.readableBytes) ?? [] }
            decide(context, body)
        } else {
            decide(context, nil)
        }
    }

    // MARK: Forwarding

    /// `headers` without hop-by-hop fields and the fields the Connection header names. Headers that
    /// have none (most requests) are returned as they are, without a copy.
    static func filtered(_ headers: HTTPHeaders) -> HTTPHeaders {
        guard let forwarded = HopByHop.forwarded(headers) else { return headers }
        return HTTPHeaders(forwarded.map { ($0.name, $0.value) })
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
                exchange.retry = link.reused && Self.retryable(head) ? (head, target, route, tls) : nil
                var headers = Self.filtered(head.headers)
                headers.replaceOrAdd(name: "Host", value: target.authority)
                // The minted token is read from the response: it must not come compressed.
                if exchange.mintCapture != nil { headers.replaceOrAdd(name: "Accept-Encoding", value: "identity") }
                let upstreamHead = HTTPRequestHead(version: .http1_1, method: head.method, uri: target.originForm, headers: headers)
                link.channel.write(HTTPClientRequestPart.head(upstreamHead), promise: nil)
                for part in exchange.queue {
                    switch part {
                    case .body(let buffer): link.channel.write(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil)
                    case .end(let trailers): link.channel.write(HTTPClientRequestPart.end(exchange.dropTrailers ? nil : trailers), promise: nil)
                    case .head: break
                    }
                }
                link.channel.flush()
                exchange.queue = []
                phase = .forwarding
                resumeReads(context)
            }
        }
    }

    /// Whether `head` may be sent again on a fresh connection (see ``RequestRetry``).
    static func retryable(_ head: HTTPRequestHead) -> Bool {
        guard RequestRetry.allowed(method: head.method.rawValue) else { return false }
        guard head.headers["transfer-encoding"].isEmpty else { return false }
        return head.headers["content-length"].allSatisfy { $0.trimmingWhitespace() == "0" }
    }

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
            exchange.responseStarted = true
            exchange.retry = nil
            if !head.isKeepAlive { link.reusable = false }
            if !(200..<300).contains(head.status.code) { exchange.mintCapture = nil }
            var headers = Self.filtered(head.headers)
            if exchange.closeAfterResponse { headers.replaceOrAdd(name: "Connection", value: "close") }
            let version = exchange.head?.version ?? .http1_1
            lastResponseWrite = context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: head.status, headers: headers))))
        case .body(let buffer):
            if exchange.mintCapture != nil { readMintedToken(buffer) }
            lastResponseWrite = context.write(wrapOutboundOut(.body(.byteBuffer(buffer))))
            if !context.channel.isWritable, !link.readsPaused {
                link.readsPaused = true
                link.channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
            }
        case .end(let trailers):
            if !exchange.ended { link.reusable = false; exchange.closeAfterResponse = true }
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
        guard var capture = exchange.mintCapture else { return }
        capture.body += buffer.readableBytesView
        guard capture.body.count <= state.limits.maxInspectedBody else { exchange.mintCapture = nil; return }
        if let token = BuiltInCredentialInspector.jsonString(at: capture.field, in: capture.body) {
            state.minted.remember(token, service: capture.service, now: Date())
            exchange.mintCapture = nil
        } else {
            exchange.mintCapture = capture
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
        if !exchange.responseStarted, let retry = exchange.retry {
            // The pooled connection was closed by the upstream while idle; the request got no answer.
            exchange.retry = nil
            channel.close(promise: nil)
            phase = .deciding
            exchange.queue = exchange.ended ? [.end(nil)] : []
            return forward(context, head: retry.head, target: retry.target, route: retry.route, tls: retry.tls, fresh: true)
        }
        if exchange.responseStarted {
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
        guard !exchange.responseStarted else { return closeAfterRelayed(context) }
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
        if exchange.closeAfterResponse {
            phase = .closed
            written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        } else {
            phase = .idle
            armHeadTimer(context)
        }
    }

    /// The destination could not be routed: denied by name before resolving, or not resolvable.
    func routeFailed(_ context: ChannelHandlerContext, _ error: Error) {
        reject(context, error as? ProxyFailure ?? ProxyFailure(status: .badGateway, reason: "\(error)"))
    }

    /// Answers the current request with `failure`.
    func reject(_ context: ChannelHandlerContext, _ failure: ProxyFailure) {
        reject(context, failure.status, decision: failure.decision, rule: failure.rule, reason: failure.reason)
    }

    /// Answers the current request with an error or deny response (JSON body naming the rule and reason).
    func reject(_ context: ChannelHandlerContext, _ status: AnswerStatus, decision: String, rule: String, reason: String) {
        guard !exchange.responseStarted, phase != .closed else { context.close(promise: nil); return }
        exchange.responseStarted = true
        exchange.pendingDecision = nil
        exchange.queue = []
        if !exchange.ended { exchange.closeAfterResponse = true }
        phase = .rejecting
        resumeReads(context)
        let answer = ProxyAnswer(status, decision: decision, rule: rule, reason: reason, close: exchange.closeAfterResponse)
        context.write(wrapOutboundOut(.head(answer.head(version: exchange.head?.version ?? .http1_1))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: answer.body)))), promise: nil)
        finishResponse(context, context.writeAndFlush(wrapOutboundOut(.end(nil))))
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
