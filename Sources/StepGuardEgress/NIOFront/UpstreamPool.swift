import NIOCore

/// The NIO pipeline's idle upstream connections on one event loop (an ``IdlePool`` of links).
/// Only used on its own event loop.
final class UpstreamPool {
    private var idle = IdlePool<UpstreamLink>()

    /// Idle connections held (all keys).
    var count: Int { idle.count }

    /// An idle, open connection for `key`, most recently used first; stale ones are closed.
    func take(_ key: String, now: NIODeadline = .now()) -> UpstreamLink? {
        let link = idle.take(key, now: now.uptimeNanoseconds, usable: { $0.channel.isActive }, close: Self.close)
        link?.idleIn = nil
        return link
    }

    /// Keeps `link` for reuse; closes it when the pool for its key is full.
    func put(_ link: UpstreamLink, now: NIODeadline = .now()) {
        guard link.channel.isActive else { return }
        guard idle.put(link, key: link.key, now: now.uptimeNanoseconds) else { return link.channel.close(promise: nil) }
        link.handler.front = nil
        link.idleIn = self
        if link.readsPaused {
            // Reads stay on while idle, so a close (or stray bytes) from the upstream is noticed.
            link.readsPaused = false
            link.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
        }
    }

    /// Forgets `link` (it closed or misbehaved while idle).
    func remove(_ link: UpstreamLink) {
        idle.remove(key: link.key) { $0 === link }?.idleIn = nil
    }

    /// Closes connections idle longer than ``IdlePool/maxIdleAge``.
    func sweep(now: NIODeadline = .now()) { idle.sweep(now: now.uptimeNanoseconds, close: Self.close) }

    private static func close(_ link: UpstreamLink) {
        link.idleIn = nil
        link.channel.close(promise: nil)
    }
}
