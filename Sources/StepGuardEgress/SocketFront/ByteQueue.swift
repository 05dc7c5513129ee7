import CLinuxIO
#if canImport(Glibc)
import Glibc
#endif

/// A growable byte buffer for the socket front: bytes are appended at the end and consumed from
/// the start. Owned by one connection; call ``free()`` when done.
struct ByteQueue {
    private(set) var base: UnsafeMutableRawPointer?
    private(set) var capacity = 0
    private(set) var start = 0
    private(set) var end = 0

    var count: Int { end - start }
    var isEmpty: Bool { end == start }

    /// The unconsumed bytes.
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base.map { UnsafeRawPointer($0 + start) }, count: count) }

    /// Makes room for at least `more` bytes after ``end``.
    mutating func reserve(_ more: Int) {
        if start > 0, capacity - end < more {
            if count > 0 { memmove(base!, base! + start, count) }
            end -= start
            start = 0
        }
        guard capacity - end < more else { return }
        let newCapacity = max(capacity * 2, end + more, 4096)
        base = realloc(base, newCapacity)
        capacity = newCapacity
    }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        reserve(bytes.count)
        memcpy(base! + end, bytes.baseAddress!, bytes.count)
        end += bytes.count
    }

    mutating func append(_ text: StaticString) {
        append(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    mutating func consume(_ count: Int) {
        start += count
        if start == end { start = 0; end = 0 }
    }

    mutating func removeAll() { start = 0; end = 0 }

    /// What one read from a non-blocking socket gave.
    enum ReadOutcome {
        /// Bytes were appended.
        case read
        /// Nothing to read yet (EAGAIN).
        case wouldBlock
        /// The end of the stream (`error` 0) or a failure (`error` is the errno).
        case ended(error: Int32)
    }

    /// Reads once from `fd` into free space (at least `chunk` bytes of room), again when interrupted.
    mutating func read(from fd: Int32, chunk: Int = 16384) -> ReadOutcome {
        reserve(chunk)
        while true {
            let count = Glibc.read(fd, base! + end, capacity - end)
            if count > 0 {
                end += count
                return .read
            }
            if count < 0, errno == EINTR { continue }
            return count < 0 && errno == EAGAIN ? .wouldBlock : .ended(error: count == 0 ? 0 : errno)
        }
    }

    /// Writes as much as `fd` takes; returns false on an error other than EAGAIN.
    mutating func flush(to fd: Int32) -> Bool {
        while count > 0 {
            let written = Glibc.write(fd, base! + start, count)
            if written > 0 { consume(written); continue }
            if written < 0, errno == EINTR { continue }
            return written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
        }
        return true
    }

    mutating func free() {
        Glibc.free(base)
        base = nil
        capacity = 0
        start = 0
        end = 0
    }
}
