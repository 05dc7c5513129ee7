import NIOCore

/// The two sides of one CONNECT tunnel and when data last went through it; the event loop's sweep
/// closes tunnels idle longer than `tunnelIdleTimeout` (one check per second for all tunnels
/// instead of a timer per side).
final class Tunnel {
    var lastActivity = NIODeadline.now()
    fileprivate weak var first: GlueHandler?
    fileprivate weak var second: GlueHandler?

    /// Closes both sides.
    func close() {
        first?.closeChannel()
        second?.closeChannel()
    }
}

/// Joins two channels byte for byte (a CONNECT tunnel), with back-pressure: a side reads only
/// while its partner can write. Both channels live on the same event loop.
final class GlueHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    private var partner: GlueHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    private let tunnel: Tunnel
    private let loop: LoopResources

    private init(tunnel: Tunnel, loop: LoopResources) {
        self.tunnel = tunnel
        self.loop = loop
    }

    /// The two handlers of a new tunnel, watched by `loop`'s idle sweep until either side closes.
    static func matchedPair(loop: LoopResources) -> (GlueHandler, GlueHandler) {
        let tunnel = Tunnel()
        let first = GlueHandler(tunnel: tunnel, loop: loop)
        let second = GlueHandler(tunnel: tunnel, loop: loop)
        first.partner = second
        second.partner = first
        tunnel.first = first
        tunnel.second = second
        loop.watch(tunnel)
        return (first, second)
    }

    fileprivate func closeChannel() { context?.close(promise: nil) }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        loop.unwatch(tunnel)
        self.context = nil
        self.partner = nil
    }

    private func partnerWrite(_ data: NIOAny) { context?.write(data, promise: nil) }
    private func partnerFlush() { context?.flush() }
    private func partnerWriteEOF() { context?.close(mode: .output, promise: nil) }
    private func partnerCloseFull() { context?.close(promise: nil) }
    private func partnerBecameWritable() {
        if pendingRead {
            pendingRead = false
            context?.read()
        }
    }
    private var partnerWritable: Bool { context?.channel.isWritable ?? false }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { partner?.partnerWrite(data) }
    func channelReadComplete(context: ChannelHandlerContext) {
        tunnel.lastActivity = .now()
        partner?.partnerFlush()
    }
    func channelInactive(context: ChannelHandlerContext) {
        loop.unwatch(tunnel)
        partner?.partnerCloseFull()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event {
            partner?.partnerWriteEOF()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        partner?.partnerCloseFull()
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
    }

    func read(context: ChannelHandlerContext) {
        if let partner, partner.partnerWritable {
            context.read()
        } else {
            pendingRead = true
        }
    }
}

/// First in a handed-over connection's pipeline: delivers the bytes the socket front read before
/// the handover as the connection's first read, then leaves the pipeline.
final class ReplayHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let prefix: [UInt8]

    init(_ prefix: [UInt8]) { self.prefix = prefix }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        if !prefix.isEmpty {
            context.fireChannelRead(wrapInboundOut(context.channel.allocator.buffer(bytes: prefix)))
            context.fireChannelReadComplete()
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
