import CLinuxIO
#if canImport(Glibc)
import Glibc
#endif

/// A pipe that bytes move through with splice(2), socket → pipe → socket, without crossing user
/// space; taken from its loop's pool when first needed and given back when empty. Used by tunnels
/// (``SpliceTunnel``, each direction) and by long response bodies (``ClientConnection``).
struct SplicePipe {
    /// What one splice did.
    enum Step {
        /// Bytes moved.
        case moved
        /// Nothing to move now (EAGAIN): the next event of that socket resumes.
        case wouldBlock
        /// The source ended its stream.
        case ended
        /// A failure (`errno`), or no pipe could be made.
        case failed(errno: Int32)
    }

    /// The largest pipe the loop asks for (1 MiB where the system allows it): fewer system calls
    /// per byte for bulk transfers. Also the most one splice moves.
    static let size: Int32 = 1 << 20

    private var fds: (read: Int32, write: Int32)?
    /// Bytes in the pipe not yet written out.
    private(set) var pending = 0

    /// Whether a pipe is held (taken and not yet released).
    var isHeld: Bool { fds != nil }

    /// Takes a pipe from `loop`'s pool unless one is held; false when none can be made.
    mutating func take(from loop: FrontLoop) -> Bool {
        if fds == nil { fds = loop.takePipe() }
        return fds != nil
    }

    /// Moves up to `limit` bytes from `source` into the pipe (which must be empty), taking a pipe first if needed.
    mutating func fill(from source: Int32, upTo limit: Int, loop: FrontLoop) -> Step {
        guard take(from: loop), let fds else { return .failed(errno: EMFILE) }
        while true {
            let moved = sg_splice(source, fds.write, min(limit, Int(Self.size)))
            if moved > 0 {
                pending = moved
                return .moved
            }
            if moved == 0 { return .ended }
            if errno == EINTR { continue }
            return errno == EAGAIN ? .wouldBlock : .failed(errno: errno)
        }
    }

    /// Writes what the pipe holds to `destination`, as much as it takes.
    mutating func drain(to destination: Int32) -> Step {
        guard let fds else { return .failed(errno: EBADF) }
        guard pending > 0 else { return .moved }
        while true {
            let moved = sg_splice(fds.read, destination, pending)
            if moved > 0 {
                pending -= moved
                return .moved
            }
            if moved < 0, errno == EINTR { continue }
            return moved < 0 && errno == EAGAIN ? .wouldBlock : .failed(errno: moved < 0 ? errno : EPIPE)
        }
    }

    /// Gives the pipe back to `loop` (which keeps it only when empty).
    mutating func release(to loop: FrontLoop) {
        guard let fds else { return }
        loop.returnPipe((fds.read, fds.write), empty: pending == 0)
        self.fds = nil
        pending = 0
    }
}
