import CLinuxIO
#if canImport(Glibc)
import Glibc
#endif

/// A CONNECT tunnel that is not intercepted: bytes move between the two sockets with splice(2)
/// through a pipe per direction, so they never cross user space. Each side is read only while its
/// pipe is empty (back-pressure: at most a pipe's worth in flight per direction); an end of stream
/// is passed on as a half-close; an error on either socket closes the tunnel. Both sockets stay
/// registered edge-triggered: every event pumps both directions until they would block.
///
/// A tunnel whose client speaks plain HTTP while the policy names services is checked: its
/// client-to-upstream direction is read through user space, and only what ``TunnelRequests``
/// clears (each request head naming the tunnel's host, and the body up to the next head) is
/// written upstream; a denied request ends the tunnel. Once the requests relay the rest (a
/// protocol switched to), that direction is spliced too.
final class SpliceTunnel: EpollHandler {
    private final class Direction {
        let from: Int32
        let to: Int32
        var pipe = SplicePipe()
        var ended = false

        init(from: Int32, to: Int32) {
            self.from = from
            self.to = to
        }

        var done: Bool { ended && pipe.pending == 0 }
    }

    private let loop: FrontLoop
    let client: Int32
    let upstream: Int32
    private let outbound: Direction
    private let inbound: Direction
    /// The client's requests while they are checked: what was read and is not yet written, and how
    /// much of that is cleared. Nil once (or while) the client-to-upstream direction is spliced.
    private var requests: TunnelRequests?
    private var held = ByteQueue()
    private var cleared = 0
    private var closed = false
    /// When data last went through (for the idle timeout).
    private(set) var lastActivity: UInt64

    /// With `requests`, the client-to-upstream direction is checked from `held` (the client's
    /// bytes read so far, which the tunnel now owns) on.
    init(loop: FrontLoop, client: Int32, upstream: Int32, requests: TunnelRequests? = nil, held: ByteQueue = ByteQueue()) {
        self.loop = loop
        self.client = client
        self.upstream = upstream
        outbound = Direction(from: client, to: upstream)
        inbound = Direction(from: upstream, to: client)
        lastActivity = loop.epoll.now
        self.requests = requests
        self.held = held
    }

    /// Takes over both sockets (registered with ``EpollLoop/edgeEvents``) and moves what is already there.
    func start() {
        loop.epoll.setHandler(client, self)
        loop.epoll.setHandler(upstream, self)
        loop.tunnels[ObjectIdentifier(self)] = self
        ready(fd: client, events: 0)
    }

    func ready(fd: Int32, events: UInt32) {
        guard !closed else { return }
        // A hang-up may come with the last data: pumping reads it, and reports an error as a failed splice.
        guard requests == nil && held.isEmpty ? pump(outbound) : pumpRequests(), pump(inbound) else { return close() }
        if outbound.done, inbound.done { close() }
    }

    /// Moves data in one direction until a side would block or the stream ends; false on an error
    /// (the tunnel must close).
    private func pump(_ direction: Direction) -> Bool {
        while true {
            if direction.pipe.pending > 0 {
                switch direction.pipe.drain(to: direction.to) {
                case .moved:
                    lastActivity = loop.epoll.now
                    continue
                case .wouldBlock: return true
                case .ended, .failed: return false
                }
            }
            if direction.ended { return true }
            let step = direction.pipe.fill(from: direction.from, upTo: Int(SplicePipe.size), loop: loop)
            if case .moved = step {
                lastActivity = loop.epoll.now
                continue
            }
            // Nothing in flight: the empty pipe goes back to the loop, so idle tunnels hold none.
            direction.pipe.release(to: loop)
            switch step {
            case .moved, .wouldBlock: return true
            case .ended:
                direction.ended = true
                shutdown(direction.to, Int32(SHUT_WR))
                return true
            case .failed: return false
            }
        }
    }

    /// Moves the client's checked requests upstream: writes what is cleared, asks
    /// ``TunnelRequests`` about the rest, reads more when it needs more; once they relay the rest,
    /// splices. False when the tunnel must close (an error, or a denied request).
    private func pumpRequests() -> Bool {
        while true {
            while cleared > 0 {
                let written = write(upstream, held.bytes.baseAddress!, cleared)
                if written > 0 {
                    held.consume(written)
                    cleared -= written
                    lastActivity = loop.epoll.now
                    continue
                }
                if written < 0, errno == EINTR { continue }
                return written < 0 && errno == EAGAIN
            }
            guard var requests else {
                held.free()
                return pump(outbound)
            }
            if !held.isEmpty {
                let step = requests.next(held.bytes, enforcing: loop.state.enforce)
                self.requests = requests
                switch step {
                case .forward(let count):
                    cleared = count
                    continue
                case .relayRest:
                    relayRest()
                    continue
                case .deny(let record):
                    let reply = requests.denialReply(record)
                    if !reply.isEmpty { _ = reply.withUnsafeBytes { write(client, $0.baseAddress!, $0.count) } }
                    return false
                case .needMore:
                    break
                }
            }
            if outbound.ended { return true }
            switch held.read(from: client) {
            case .read: continue
            case .wouldBlock: return true
            case .ended(let error):
                guard error == 0 else { return false }
                // An incomplete head at the end is never sent: the server could not have answered it.
                held.removeAll()
                outbound.ended = true
                shutdown(upstream, Int32(SHUT_WR))
                return true
            }
        }
    }

    /// What is held goes upstream unchecked, then the direction is spliced.
    private func relayRest() {
        cleared = held.count
        requests = nil
    }

    /// Closes both sockets and the pipes.
    func close() {
        guard !closed else { return }
        closed = true
        held.free()
        loop.tunnels.removeValue(forKey: ObjectIdentifier(self))
        loop.epoll.close(client)
        loop.epoll.close(upstream)
        outbound.pipe.release(to: loop)
        inbound.pipe.release(to: loop)
        loop.connectionClosed()
    }
}
