import CLinuxIO
#if canImport(Glibc)
import Glibc
#endif

/// A CONNECT tunnel that is not intercepted: bytes move between the two sockets with splice(2)
/// through a pipe per direction, so they never cross user space. Each side is read only while its
/// pipe is empty (back-pressure: at most a pipe's worth in flight per direction); an end of stream
/// is passed on as a half-close; an error on either socket closes the tunnel. Both sockets stay
/// registered edge-triggered: every event pumps both directions until they would block.
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
    private var closed = false
    /// When data last went through (for the idle timeout).
    private(set) var lastActivity: UInt64

    init(loop: FrontLoop, client: Int32, upstream: Int32) {
        self.loop = loop
        self.client = client
        self.upstream = upstream
        outbound = Direction(from: client, to: upstream)
        inbound = Direction(from: upstream, to: client)
        lastActivity = loop.epoll.now
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
        guard pump(outbound), pump(inbound) else { return close() }
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

    /// Closes both sockets and the pipes.
    func close() {
        guard !closed else { return }
        closed = true
        loop.tunnels.removeValue(forKey: ObjectIdentifier(self))
        loop.epoll.close(client)
        loop.epoll.close(upstream)
        outbound.pipe.release(to: loop)
        inbound.pipe.release(to: loop)
        loop.connectionClosed()
    }
}
