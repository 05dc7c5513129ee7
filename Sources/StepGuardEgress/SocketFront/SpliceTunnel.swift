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
        var pipeRead: Int32 = -1
        var pipeWrite: Int32 = -1
        /// Bytes in the pipe not yet written to `to`.
        var pending = 0
        var ended = false

        init(from: Int32, to: Int32) {
            self.from = from
            self.to = to
        }

        var done: Bool { ended && pending == 0 }
    }

    /// Pipes are 1 MiB where the system allows it: fewer system calls per byte for bulk transfers.
    static let pipeSize: Int32 = 1 << 20
    /// How much one splice moves at most.
    private static let chunk = Int(pipeSize)

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
            if direction.pending > 0 {
                let moved = sg_splice(direction.pipeRead, direction.to, direction.pending)
                if moved > 0 {
                    direction.pending -= moved
                    lastActivity = loop.epoll.now
                    continue
                }
                if moved < 0, errno == EINTR { continue }
                return moved < 0 && errno == EAGAIN
            }
            if direction.ended { return true }
            if direction.pipeRead < 0 {
                guard let pipe = loop.takePipe() else { return false }
                (direction.pipeRead, direction.pipeWrite) = pipe
            }
            let moved = sg_splice(direction.from, direction.pipeWrite, Self.chunk)
            if moved > 0 {
                direction.pending = moved
                lastActivity = loop.epoll.now
                continue
            }
            if moved < 0, errno == EINTR { continue }
            // Nothing in flight: the empty pipe goes back to the loop, so idle tunnels hold none.
            releasePipe(direction)
            if moved == 0 {
                direction.ended = true
                shutdown(direction.to, Int32(SHUT_WR))
                return true
            }
            return errno == EAGAIN
        }
    }

    private func releasePipe(_ direction: Direction) {
        guard direction.pipeRead >= 0 else { return }
        loop.returnPipe((direction.pipeRead, direction.pipeWrite), empty: direction.pending == 0)
        (direction.pipeRead, direction.pipeWrite) = (-1, -1)
    }

    /// Closes both sockets and the pipes.
    func close() {
        guard !closed else { return }
        closed = true
        loop.tunnels.removeValue(forKey: ObjectIdentifier(self))
        loop.epoll.close(client)
        loop.epoll.close(upstream)
        releasePipe(outbound)
        releasePipe(inbound)
        loop.connectionClosed()
    }
}
