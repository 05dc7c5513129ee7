import NIOCore

/// Idle keep-alive upstream connections, kept per event loop so a new client connection does not
/// cost a new upstream connection (for intercepted services: a new TLS handshake with the upstream).
///
/// Only used on its own event loop. A connection is keyed by the decided host, port and the checked
/// address it is connected to, and goes back into the pool only after a complete exchange (request
/// fully sent, response fully read, neither side asked to close, no error). A TLS connection's key
/// also names the server name its certificate was verified for. Each request sent over a pooled
/// connection was decided on its own, as on any keep-alive connection.
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
    /// Idle connections held (all keys).
    private(set) var count = 0

    /// An idle, open connection for `key`, most recently used first; stale ones are closed.
    func take(_ key: String, now: NIODeadline = .now()) -> UpstreamLink? {
        // Mutated in place: copying the list out of the dictionary would copy its storage each time.
        while let entry = idle[key]?.popLast() {
            count -= 1
            entry.link.idleIn = nil
            if idle[key]?.isEmpty == true { idle[key] = nil }
            if entry.link.channel.isActive, now - entry.since < Self.maxIdleAge { return entry.link }
            entry.link.channel.close(promise: nil)
        }
        return nil
    }

    /// Keeps `link` for reuse; closes it when the pool for its key is full.
    func put(_ link: UpstreamLink, now: NIODeadline = .now()) {
        guard link.channel.isActive else { return }
        guard idle[link.key, default: []].count < Self.maxIdlePerKey else {
            link.channel.close(promise: nil)
            return
        }
        link.handler.front = nil
        link.idleIn = self
        if link.readsPaused {
            // Reads stay on while idle, so a close (or stray bytes) from the upstream is noticed.
            link.readsPaused = false
            link.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
        }
        idle[link.key, default: []].append(Idle(link: link, since: now))
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
}
