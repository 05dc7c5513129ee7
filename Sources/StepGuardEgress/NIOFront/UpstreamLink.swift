import NIOCore
import NIOHTTP1

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
