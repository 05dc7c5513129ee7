import CSandbox
import FoundationEssentials
import StepGuardCore
import Glibc
import Dispatch
import Synchronization

/// One touch of a hidden path by the step: which path, what was done to it, and the step's
/// processes at that moment (inotify does not say which process did it).
public struct Trip: Sendable, Equatable {
    /// The path as the step sees it, e.g. `/home/runner/.aws/credentials`.
    public let path: String
    /// `open`, `list`, `write` (written, truncated, or closed after being opened for writing), `create`
    /// (also mkdir, mknod or symlink onto a hidden name), `delete`, `rename`, `link`, `mount` (mount on,
    /// move, clone or reconfigure the mount at a hidden name), `unmount`, `change attributes`,
    /// `connect to`, or `events lost`.
    public let operation: String
    /// The hidden entry (`filesystem.hide`, `~` expanded) the path belongs to.
    public let hiddenEntry: String
    /// The step's processes when the trip was read, as `pid program` (pids as stepguard sees them),
    /// in tree order from the step's main process; at most ``TripwireWatch/processLimit``.
    public let processes: [String]
    /// The process that did it, as `pid program`, when the kernel says (a connection to a hidden
    /// socket carries its peer's credentials, a name call its caller; inotify names nobody), else nil.
    public var actor: String? = nil
}

/// Where the decoys go and which paths are watched: every covered directory, a decoy named like
/// each real entry inside it (directories as empty directories, anything else as an empty file),
/// and every covered file.
struct TripwirePlan {
    struct Watch {
        let path: String
        let mask: UInt32
        let hiddenEntry: String
    }

    /// How deep decoys mirror a hidden directory, and how many decoys there are at most in all.
    static let maximumDepth = 4
    static let maximumDecoys = 1024

    var decoyDirectories: [String] = []
    var decoyFiles: [String] = []
    var watches: [Watch] = []
    /// Indexes (in ``HidePlan/files``) of the hidden files that are sockets (the Docker socket…):
    /// they are covered with a listening socket of stepguard's (``SocketTrap``), so that the step's
    /// `connect()` — which opens nothing, so inotify sees nothing — trips too.
    var sockets: [Int] = []
    /// Indexes (in ``HidePlan/files``) of the other hidden files: each is covered with an empty,
    /// *writable* file of a private tmpfs (`sg_spawn_options.writable_covers`), so that opening one
    /// for writing (`echo x > ~/.npmrc`, `touch`, `truncate`) reaches the cover and trips, where a
    /// read-only cover would refuse it (EROFS) before inotify sees an open. What the step writes stays
    /// in the cover; the hidden file is never reached.
    var writableCovers: [Int] = []

    init(_ hide: HidePlan) {
        var budget = Self.maximumDecoys
        for directory in hide.directories {
            watches.append(Watch(path: directory, mask: UInt32(truncatingIfNeeded: SG_TRIPWIRE_DIRECTORY), hiddenEntry: directory))
            mirror(directory, entry: directory, depth: 1, budget: &budget)
        }
        for (index, file) in hide.hiddenFiles.enumerated() {
            var info = stat()
            let isSocket = lstat(file, &info) == 0 && (info.st_mode & S_IFMT) == S_IFSOCK
            if isSocket { sockets.append(index) } else { writableCovers.append(index) }
            let mask = isSocket ? SG_TRIPWIRE_HIDDEN_FILE : SG_TRIPWIRE_COVER_FILE
            watches.append(Watch(path: file, mask: UInt32(truncatingIfNeeded: mask), hiddenEntry: file))
        }
    }

    /// Points the sources of the hidden files with ``writableCovers`` (`coverFiles`, indexed like
    /// ``HidePlan/files``) into `directory/covers`, which it makes, and returns that directory and
    /// one flag per file (`sg_spawn_options.cover_directory` and `writable_covers`); nil when no
    /// hidden file gets a writable cover.
    func pointWritableCovers(into directory: String, coverFiles: inout [String]) throws(SandboxError) -> (directory: String, flags: [Int32])? {
        guard !writableCovers.isEmpty else { return nil }
        let covers = directory + "/covers"
        guard mkdir(covers, 0o700) == 0 else { throw SandboxError.spawnFailed("creating \(covers)", errno: errno) }
        var flags = [Int32](repeating: 0, count: coverFiles.count)
        for index in writableCovers where index < coverFiles.count {
            coverFiles[index] = "\(covers)/\(index)"
            flags[index] = 1
        }
        return (covers, flags)
    }

    /// Lists the real `directory` (before it is covered) and plans a decoy for each entry.
    private mutating func mirror(_ directory: String, entry: String, depth: Int, budget: inout Int) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names.sorted() where budget > 0 {
            let path = directory + "/" + name
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            budget -= 1
            if (info.st_mode & S_IFMT) == S_IFDIR {
                decoyDirectories.append(path)
                watches.append(Watch(path: path, mask: UInt32(truncatingIfNeeded: SG_TRIPWIRE_DIRECTORY), hiddenEntry: entry))
                if depth < Self.maximumDepth { mirror(path, entry: entry, depth: depth + 1, budget: &budget) }
            } else {
                decoyFiles.append(path)
                watches.append(Watch(path: path, mask: UInt32(truncatingIfNeeded: SG_TRIPWIRE_DECOY_FILE), hiddenEntry: entry))
            }
        }
    }
}

/// A listening Unix socket of stepguard's that covers a hidden socket inside the step's mount
/// namespace (bind-mounted over it): a step that connects reaches stepguard, which trips.
struct SocketTrap: Sendable {
    /// The hidden socket's path, as the step sees it.
    let path: String
    let listener: Int32

    /// Listens at `socketPath` (in stepguard's private directory) for connections to `path`.
    static func make(at socketPath: String, covering path: String) throws(SandboxError) -> SocketTrap {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SandboxError.spawnFailed("making a socket to cover \(path)", errno: errno) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(socketPath.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw SandboxError.spawnFailed("covering \(path): the path \(socketPath) is too long for a socket", errno: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            let error = errno
            close(fd)
            throw SandboxError.spawnFailed("listening on \(socketPath) to cover \(path)", errno: error)
        }
        return SocketTrap(path: path, listener: fd)
    }
}

/// The inotify instance watching an isolated step's hidden paths. It lives in stepguard only (the
/// step's namespaces hold no descriptor of it, and stepguard is outside the step's PID namespace),
/// so the step can neither close it nor kill its reader.
///
/// ``start(onTrip:)`` reads events on a thread of its own and calls `onTrip` for each trip, at
/// once; ``finish()`` (called by ``StepSupervisor`` once the step has ended) reads what is left.
/// It also answers the step's calls that remove, rename, link, make or mount at a name
/// (``NameTripwire``): until it is started, those calls of the step wait.
public final class TripwireWatch: Sendable {
    /// The most processes a ``Trip`` lists.
    public static let processLimit = 16

    private struct Watched: Sendable {
        let path: String
        let hiddenEntry: String
    }

    private struct State {
        var onTrip: (@Sendable (Trip) -> Void)?
        var finished = false
        var readerStarted = false
    }

    private let fd: Int32
    private let watched: [Int32: Watched]
    /// The listening sockets covering hidden sockets: a connection to one is a trip.
    private let traps: [SocketTrap]
    /// The step's calls that remove, rename, link, make or mount at a name, or nil (see ``namesUnavailable``).
    private let names: NameTripwire?
    /// Why removing, renaming, linking, making or mounting on a hidden path itself is not watched (the seccomp filter
    /// could not be installed), or nil when it is.
    public let namesUnavailable: String?
    /// Written to end the reader thread.
    private let wake: (read: Int32, write: Int32)
    /// The process whose descendants are the step (its init when isolated).
    private let root: pid_t
    private let state = Mutex(State())
    /// Serialises reading the descriptor (the thread and ``finish()``).
    private let reading = Mutex(())
    private let readerDone = DispatchSemaphore(value: 0)

    /// How many paths are watched.
    public var count: Int { watched.count }

    init(fd: Int32, plan: TripwirePlan, watchDescriptors: [Int32], root: pid_t, traps: [SocketTrap] = [],
         names: Int32 = -1, namesError: Int32 = ENOSYS, identities: [UInt64] = []) throws(SandboxError) {
        var pipeEnds: [Int32] = [0, 0]
        guard pipe(&pipeEnds) == 0, pipeEnds.allSatisfy({ fcntl($0, F_SETFD, FD_CLOEXEC) == 0 && fcntl($0, F_SETFL, O_NONBLOCK) == 0 }) else {
            close(fd)  // the traps stay the caller's on failure
            if names >= 0 { close(names) }
            throw SandboxError.spawnFailed("making the tripwire reader's wake-up pipe", errno: errno)
        }
        self.fd = fd
        self.traps = traps
        self.names = names >= 0 ? NameTripwire(listener: names, plan: plan, identities: identities) : nil
        self.namesUnavailable = names >= 0 ? nil : "the seccomp filter that shows them to stepguard could not be installed: \(String(cString: strerror(namesError)))"
        self.wake = (pipeEnds[0], pipeEnds[1])
        self.root = root
        var watched: [Int32: Watched] = [:]
        for (watch, descriptor) in zip(plan.watches, watchDescriptors) where watched[descriptor] == nil {
            watched[descriptor] = Watched(path: watch.path, hiddenEntry: watch.hiddenEntry)
        }
        self.watched = watched
    }

    /// Starts reading events; `onTrip` is called on the reader thread for every trip.
    public func start(onTrip: @escaping @Sendable (Trip) -> Void) {
        let thread = DetachedThread { [self] in
            defer { readerDone.signal() }
            // The names listener hangs up once no process of the step is left: then it is not polled.
            var namesOpen = names != nil
            while !state.withLock({ $0.finished }) {
                var waits = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0),
                             pollfd(fd: namesOpen ? names!.listener : -1, events: Int16(POLLIN), revents: 0)]
                    + traps.map { pollfd(fd: $0.listener, events: Int16(POLLIN), revents: 0) }
                let ready = poll(&waits, nfds_t(waits.count), -1)
                if ready < 0 && errno == EINTR { continue }
                if ready < 0 || waits[1].revents != 0 { return }
                if waits[2].revents & Int16(POLLIN) != 0 {
                    if let trip = names?.next(processes: processes) { deliver(trip) }
                } else if waits[2].revents != 0 {
                    namesOpen = false
                }
                // Only what is ready: a wake-up for a name call costs no read or accept.
                if waits[0].revents != 0 { readAvailable() }
                if waits[3...].contains(where: { $0.revents != 0 }) { acceptConnections() }
            }
        }
        thread.stackSize = 1 << 18
        thread.name = "stepguard-tripwires"
        state.withLock { state in
            state.onTrip = onTrip
            state.readerStarted = true
        }
        thread.start()
    }

    /// Stops the reader, handles the events still queued (a trip just before the step ended), and
    /// closes the descriptors. Safe to call more than once.
    func finish() {
        let started = state.withLock { state -> Bool? in
            guard !state.finished else { return nil }
            state.finished = true
            return state.readerStarted
        }
        guard let started else { return }
        var byte: UInt8 = 1
        _ = write(wake.write, &byte, 1)
        if started { readerDone.wait() }
        readAvailable()
        acceptConnections()
        for trap in traps { close(trap.listener) }
        names?.close()
        close(fd)
        close(wake.read)
        close(wake.write)
    }

    /// Reads and handles every queued event (the descriptor is non-blocking).
    private func readAvailable() {
        reading.withLock { _ in
            let size = 64 * 1024
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
            defer { buffer.deallocate() }
            while true {
                let count = read(fd, buffer, size)
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { return }
                var offset = 0
                while offset + 16 <= count {
                    let descriptor = buffer.loadUnaligned(fromByteOffset: offset, as: Int32.self)
                    let mask = buffer.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
                    let length = Int(buffer.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                    let nameBytes = UnsafeRawBufferPointer(start: buffer + offset + 16, count: min(length, count - offset - 16))
                    let name = String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)
                    offset += 16 + length
                    if let trip = trip(descriptor: descriptor, mask: mask, name: name) { deliver(trip) }
                }
            }
        }
    }

    /// Accepts every connection waiting on a trap (the listeners are non-blocking): each is a
    /// trip, and is closed at once — the step reaches nothing behind a hidden socket.
    private func acceptConnections() {
        reading.withLock { _ in
            for trap in traps {
                while true {
                    let connection = accept(trap.listener, nil, nil)
                    if connection < 0 {
                        if errno == EINTR { continue }
                        break
                    }
                    let actor = Self.peer(of: connection)
                    close(connection)
                    deliver(Trip(path: trap.path, operation: "connect to", hiddenEntry: trap.path, processes: processes(), actor: actor))
                }
            }
        }
    }

    /// `pid program` of the process at the other end of the Unix socket `fd` (SO_PEERCRED: the
    /// pid as stepguard's PID namespace sees it), or nil.
    private static func peer(of fd: Int32) -> String? {
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; } (Glibc's module leaves it out: _GNU_SOURCE).
        var credentials: (pid: Int32, uid: UInt32, gid: UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout.size(ofValue: credentials))
        guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0, credentials.pid > 0 else { return nil }
        let program = (try? String(contentsOfFile: "/proc/\(credentials.pid)/comm", encoding: .utf8))?
            .trimmingWhitespaceAndNewlines() ?? "?"
        return "\(credentials.pid) \(program)"
    }

    private func deliver(_ trip: Trip) {
        let onTrip = state.withLock { $0.onTrip }
        onTrip?(trip)
    }

    /// The trip an event stands for, or nil for the bookkeeping events (a watch removed when the
    /// namespace's mounts go away at the step's end).
    private func trip(descriptor: Int32, mask: UInt32, name: String) -> Trip? {
        if mask & UInt32(truncatingIfNeeded: SG_INOTIFY_OVERFLOW) != 0 {
            // Events were dropped: whatever they were, fail closed.
            return Trip(path: "(unknown)", operation: "events lost (the kernel's queue overflowed)", hiddenEntry: "(unknown)",
                        processes: processes())
        }
        guard let watched = watched[descriptor] else { return nil }
        let operations: [(Int, String)] = [
            (SG_INOTIFY_OPEN, "open"), (SG_INOTIFY_MODIFY, "write"), (SG_INOTIFY_CLOSE_WRITE, "write"), (SG_INOTIFY_CREATE, "create"), (SG_INOTIFY_DELETE, "delete"),
            (SG_INOTIFY_MOVED_FROM, "rename"), (SG_INOTIFY_MOVED_TO, "rename"),
            (SG_INOTIFY_ATTRIB, "change attributes"), (SG_INOTIFY_DELETE_SELF, "delete"),
            (SG_INOTIFY_MOVE_SELF, "rename"),
        ]
        guard var operation = operations.first(where: { mask & UInt32(truncatingIfNeeded: $0.0) != 0 })?.1 else { return nil }
        let isDirectory = mask & 0x4000_0000 != 0  // IN_ISDIR
        if operation == "open" && isDirectory { operation = "list" }
        let path = name.isEmpty ? watched.path : watched.path + "/" + name
        return Trip(path: path, operation: operation, hiddenEntry: watched.hiddenEntry, processes: processes())
    }

    /// The step's processes, from its root down (at most ``processLimit``), as `pid program`.
    private func processes() -> [String] {
        var found: [String] = []
        var queue: [pid_t] = [root]
        while let pid = queue.first, found.count < Self.processLimit {
            queue.removeFirst()
            let program = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?
                .trimmingWhitespaceAndNewlines() ?? "?"
            found.append("\(pid) \(program)")
            let children = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
            queue += children.split(separator: " ").compactMap { pid_t($0.trimmingWhitespaceAndNewlines()) }
        }
        return found
    }
}
