import NIOCore

/// Holds back the first bytes of a plain CONNECT tunnel (only when the policy names services) until
/// ``TunnelStart`` can decide on them: a denied tunnel is closed; otherwise the bytes pass on
/// untouched and the inspector leaves the pipeline.
final class TunnelSNIInspector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let state: ProxyState
    private let route: Route
    private var buffered: ByteBuffer?
    private var done = false

    init(state: ProxyState, route: Route) {
        self.state = state
        self.route = route
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return context.fireChannelRead(data) }
        var incoming = unwrapInboundIn(data)
        if buffered == nil { buffered = incoming } else { buffered!.writeBuffer(&incoming) }
        switch buffered!.withUnsafeReadableBytes({ TunnelStart.decide($0, route: route, decider: state.decider) }) {
        case .needMore: return
        case .pass: return release(context)
        case .deny(let record):
            guard state.enforce(record) else { return release(context) }
            done = true
            buffered = nil
            context.close(promise: nil)
        }
    }

    private func release(_ context: ChannelHandlerContext) {
        done = true
        if let buffered {
            self.buffered = nil
            context.fireChannelRead(wrapInboundOut(buffered))
            context.fireChannelReadComplete()
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
