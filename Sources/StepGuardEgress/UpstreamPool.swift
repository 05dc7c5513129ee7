import NIOCore

/// Idle keep-alive upstream connections of plain `http://` forwarding, kept per event loop so a new
/// client connection does not cost a new upstream connection.
///
/// Only used on its own event loop. A connection is keyed by the decided host, port and the checked
/// address it is connected to, and goes back into the pool only after a complete exchange (request
/// fully sent, response fully read, neither side asked to close, no error). Connections of
/// TLS-intercepted services are never pooled: each of their requests gets its own decision and its
/// own upstream connection per client connection.
final class UpstreamPool {
    /// Most idle connections kept per key; more are closed.
    static let maxIdlePerKey = 64
    /// An idle connection older than this is not reused (servers close idle keep-alive connections,
    /// often after 5 s) and is closed by the sweep.
    static let maxIdleAge: TimeAmount = .seconds(2)

    private struct Idle {
        let link: UpstreamLink
        let since: NIODeadline
    }

    private var idle: [String: [Idle]] = [:]
    private(set) var count = 0

    /// An idle, open connection for `key`, most recently used first; stale ones are closed.
    func take(_ key: String, now: NIODeadline = .now()) -> UpstreamLink? {
        guard var list = idle[key], !list.isEmpty else { return nil }
        defer { idle[key] = list.isEmpty ? nil : list }
        while let entry = list.popLast() {
            count -= 1
            entry.link.idleIn = nil
            if entry.link.channel.isActive, now - entry.since < Self.maxIdleAge { return entry.link }
            entry.link.channel.close(promise: nil)
        }
        return nil
    }

    /// Keeps `link` for reuse; closes it when the pool for its key is full.
    func put(_ link: UpstreamLink, now: NIODeadline = .now()) {
        guard link.channel.isActive else { return }
        var list = idle[link.key] ?? []
        guard list.count < Self.maxIdlePerKey else {
            link.channel.close(promise: nil)
            return
        }
        link.handler.front = nil
        link.idleIn = self
        link.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
        list.append(Idle(link: link, since: now))
        idle[link.key] = list
        count += 1
    }

    /// Forgets `link` (it closed or misbehaved while idle).
    func remove(_ link: UpstreamLink) {
        guard var list = idle[link.key], let index = list.firstIndex(where: { $0.link === link }) else { return }
        list.remove(at: index)
        idle[link.key] = list.isEmpty ? nil : list
        count -= 1
        link.idleIn = nil
    }

    /// Closes connections idle longer than ``maxIdleAge``.
    func sweep(now: NIODeadline = .now()) {
        for (key, list) in idle {
            let (stale, fresh) = (list.filter { now - $0.since >= Self.maxIdleAge }, list.filter { now - $0.since < Self.maxIdleAge })
            guard !stale.isEmpty else { continue }
            idle[key] = fresh.isEmpty ? nil : fresh
            count -= stale.count
            for entry in stale {
                entry.link.idleIn = nil
                entry.link.channel.close(promise: nil)
            }
        }
    }

    /// Closes every idle connection.
    func closeAll() {
        for list in idle.values {
            for entry in list {
                entry.link.idleIn = nil
                entry.link.channel.close(promise: nil)
            }
        }
        idle = [:]
        count = 0
    }
}
