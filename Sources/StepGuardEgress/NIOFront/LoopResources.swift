import NIOCore

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
