import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// An allowed CONNECT becomes a relayed tunnel or an intercepted connection: the HTTP handlers
/// leave the pipeline, and what serves the connection from then on takes their place.
extension FrontHandler {
    // MARK: CONNECT: tunnels and interception

    func connect(_ context: ChannelHandlerContext, _ head: HTTPRequestHead) {
        let destination: (host: HostName.Normalised, port: UInt16)
        do { destination = try RequestTarget.connect(head.uri) } catch { return reject(context, error) }
        phase = .tunnel
        let generation = self.generation
        // Start on the next loop tick: the pipeline is rebuilt below, which must not happen while the
        // HTTP decoder is still delivering this CONNECT request.
        context.eventLoop.assumeIsolated().execute { [self] in
            guard self.generation == generation, phase == .tunnel, let context = self.context else { return }
            connectRoute(context, host: destination.host, port: destination.port, generation: generation)
        }
    }

    private func connectRoute(_ context: ChannelHandlerContext, host: HostName.Normalised, port: UInt16, generation: Int) {
        state.route(host: host, port: port, .connect, on: context.eventLoop).assumeIsolated().whenComplete { [self] result in
            guard self.generation == generation, phase == .tunnel, let context = self.context else { return }
            phase = .deciding
            switch result {
            case .failure(let error):
                routeFailed(context, error)
            case .success(let route):
                switch state.enforce(state.decider.decide(route, .connect)) {
                case .refuse(let failure): reject(context, failure)
                case .intercept(let service, let name):
                    phase = .tunnel
                    intercept(context, route: route, service: service, name: name)
                case .tunnel, .forward, .inspect:
                    phase = .tunnel
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
                        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: ProxyAnswer.connectionEstablished)), promise: nil)
                        let (local, remote) = GlueHandler.matchedPair(loop: loop)
                        try peer.pipeline.syncOperations.addHandler(remote)
                        _ = context.channel.setOption(ChannelOptions.allowRemoteHalfClosure, value: true)
                        _ = context.channel.setOption(ChannelOptions.recvAllocator, value: Self.tunnelReads)
                        var handlers: [ChannelHandler] = []
                        if !state.services.isEmpty {
                            handlers.append(FirstBytesGate.tunnelStart(route: route, state: state))
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

    private func intercept(_ context: ChannelHandlerContext, route: Route, service: BoundService, name: String) {
        do {
            _ = try state.leafContext(for: name)  // made (or found) before the client is told the tunnel is open
            try removeHTTPHandlers(context)
            context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: ProxyAnswer.connectionEstablished)), promise: nil)
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
        try sync.addHandler(FirstBytesGate.interceptedSNI(host: name, trail: state.trail))
        try sync.addHandler(NIOSSLServerHandler(context: try state.leafContext(for: name)))
        try sync.addProxyServerHandlers(limits: state.decoderLimits)
        try sync.addHandler(FrontHandler(state: state, mode: .intercept(route: route, service: service), loop: loop))
    }
}
