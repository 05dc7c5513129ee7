import FoundationEssentials
import Glibc

// Threads, locks and file output without Foundation's Thread, NSLock and FileHandle.

/// A thread that runs one closure and ends (Foundation's `Thread` without a run loop).
public final class DetachedThread: @unchecked Sendable {
    private let body: @Sendable () -> Void
    /// A name for debuggers (`/proc/PID/task/TID/comm`, at most 15 bytes are kept).
    public var name: String?
    /// The stack size in bytes; 0 keeps the system's default.
    public var stackSize = 0

    public init(_ body: @escaping @Sendable () -> Void) { self.body = body }

    /// Starts the thread. A thread that cannot be created is a fatal error, as it was with Foundation.
    public func start() {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        if stackSize > 0 { pthread_attr_setstacksize(&attributes, stackSize) }
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let status = pthread_create(&thread, &attributes, { raw in
            let me = Unmanaged<DetachedThread>.fromOpaque(raw!).takeRetainedValue()
            if let name = me.name {
                // pthread_setname_np is not visible without _GNU_SOURCE; the kernel's file for it is.
                let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
                if fd >= 0 {
                    _ = Array(name.utf8.prefix(15)).withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                    close(fd)
                }
            }
            me.body()
            return nil
        }, context)
        guard status == 0 else {
            Unmanaged<DetachedThread>.fromOpaque(context).release()
            fatalError("cannot start a thread: \(String(cString: strerror(status)))")
        }
    }

    /// Runs `body` on a new thread.
    public static func detach(_ body: @escaping @Sendable () -> Void) { DetachedThread(body).start() }

    /// Blocks the calling thread for `seconds`.
    public static func sleep(seconds: Double) {
        guard seconds > 0 else { return }
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }
}

/// A mutual-exclusion lock (pthread mutex), for state that several threads share.
public final class PosixLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    public init() { pthread_mutex_init(mutex, nil) }
    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    public func lock() { pthread_mutex_lock(mutex) }
    public func unlock() { pthread_mutex_unlock(mutex) }

    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}

/// Writes to a file descriptor (Foundation's `FileHandle` for writing): every byte, retrying after
/// signals; errors (a closed pipe) are dropped, as output has nowhere else to go.
public final class FileOutput: Sendable {
    public let fileDescriptor: Int32
    private let closeOnDealloc: Bool

    public init(fileDescriptor: Int32, closeOnDealloc: Bool = false) {
        self.fileDescriptor = fileDescriptor
        self.closeOnDealloc = closeOnDealloc
    }

    deinit { if closeOnDealloc { close(fileDescriptor) } }

    public static let standardOutput = FileOutput(fileDescriptor: STDOUT_FILENO)
    public static let standardError = FileOutput(fileDescriptor: STDERR_FILENO)

    /// Writes all of `raw` (retrying short writes and EINTR); stops at the first error.
    public func write(_ raw: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < raw.count {
            let written = Glibc.write(fileDescriptor, raw.baseAddress! + offset, raw.count - offset)
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { return }
            offset += written
        }
    }

    public func write<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        if bytes.withContiguousStorageIfAvailable({ write(UnsafeRawBufferPointer($0)) }) == nil {
            Array(bytes).withUnsafeBytes { write($0) }
        }
    }

    /// Writes `text` as UTF-8 (without copying it first: `run` prints through here before every step).
    public func write(_ text: String) {
        var text = text
        text.withUTF8 { write(UnsafeRawBufferPointer($0)) }
    }

    /// Everything readable from `fd` until its end (standard input for `scan -`).
    public static func readToEnd(fileDescriptor fd: Int32) -> [UInt8] {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return result }
            result.append(contentsOf: buffer[0..<n])
        }
    }
}

/// What ``walkDirectory(_:_:)`` does after visiting an entry.
public enum WalkStep: Sendable {
    /// Go on (into the entry, if it is a directory).
    case next
    /// Go on, but not into this directory.
    case skipDescendants
    /// End the walk.
    case stop
}

/// Visits every entry below `root` depth first, in directory order, with its path relative to
/// `root` (as FileManager's enumerator did; symbolic links are visited, not followed).
public func walkDirectory(_ root: String, _ visit: (_ relative: String) -> WalkStep) {
    func walk(_ relative: String) -> Bool {
        guard let directory = opendir(relative.isEmpty ? root : root + "/" + relative) else { return true }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name == "." || name == ".." { continue }
            let path = relative.isEmpty ? name : relative + "/" + name
            switch visit(path) {
            case .stop: return false
            case .skipDescendants: continue
            case .next:
                var isDirectory = entry.pointee.d_type == UInt8(DT_DIR)
                if entry.pointee.d_type == UInt8(DT_UNKNOWN) {
                    var info = stat()
                    isDirectory = lstat(root + "/" + path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
                }
                if isDirectory, !walk(path) { return false }
            }
        }
        return true
    }
    _ = walk("")
}
