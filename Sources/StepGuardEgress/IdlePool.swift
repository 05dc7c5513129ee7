/// Idle keep-alive upstream connections of one loop, so that a new client connection does not cost
/// a new upstream connection (for intercepted services: a new TLS handshake). Both fronts keep
/// theirs in one: the NIO pipeline its channels (``UpstreamPool``), the socket front its sockets.
///
/// A connection is keyed by the decided host, port and the checked address it is connected to (a
/// TLS connection's key also names the server name its certificate was verified for), and is kept
/// only after a complete exchange. Each request sent over a pooled connection was decided on its
/// own, as on any keep-alive connection. Times are monotonic nanoseconds, passed in by the caller
/// (tests pass their own). Only used on its loop.
struct IdlePool<Connection> {
    /// Most idle connections kept per key; more are closed.
    static var maxIdlePerKey: Int { 64 }
    /// An idle connection older than this is not reused (servers close idle keep-alive
    /// connections, often after 5 s) and is closed by the sweep.
    static var maxIdleAge: UInt64 { 2_000_000_000 }

    private var idle: [String: [(connection: Connection, since: UInt64)]] = [:]
    /// Idle connections held (all keys).
    private(set) var count = 0

    /// The most recently kept connection for `key` that is young enough and `usable`; the others
    /// met on the way are given to `close`.
    mutating func take(_ key: String, now: UInt64, usable: (Connection) -> Bool, close: (Connection) -> Void) -> Connection? {
        // Mutated in place: copying the list out of the dictionary would copy its storage each time.
        while let entry = idle[key]?.popLast() {
            count -= 1
            if idle[key]?.isEmpty == true { idle[key] = nil }
            if now - entry.since < Self.maxIdleAge, usable(entry.connection) { return entry.connection }
            close(entry.connection)
        }
        return nil
    }

    /// Keeps `connection` for `key`; false (the caller closes it) when the pool for the key is full.
    mutating func put(_ connection: Connection, key: String, now: UInt64) -> Bool {
        guard idle[key, default: []].count < Self.maxIdlePerKey else { return false }
        idle[key, default: []].append((connection, now))
        count += 1
        return true
    }

    /// Forgets the first idle connection `matching` (it closed or misbehaved while idle) and returns it.
    @discardableResult
    mutating func remove(key: String? = nil, where matching: (Connection) -> Bool) -> Connection? {
        for (candidate, list) in idle where key == nil || candidate == key {
            guard let index = list.firstIndex(where: { matching($0.connection) }) else { continue }
            var list = list
            let removed = list.remove(at: index)
            idle[candidate] = list.isEmpty ? nil : list
            count -= 1
            return removed.connection
        }
        return nil
    }

    /// Gives connections idle for ``maxIdleAge`` or longer to `close`.
    mutating func sweep(now: UInt64, close: (Connection) -> Void) {
        for (key, list) in idle {
            let fresh = list.filter { now - $0.since < Self.maxIdleAge }
            guard fresh.count != list.count else { continue }
            for entry in list where now - entry.since >= Self.maxIdleAge { close(entry.connection) }
            idle[key] = fresh.isEmpty ? nil : fresh
            count -= list.count - fresh.count
        }
    }

    /// Gives every idle connection to `close` and forgets them all.
    mutating func removeAll(close: (Connection) -> Void) {
        for list in idle.values { for entry in list { close(entry.connection) } }
        idle = [:]
        count = 0
    }
}
