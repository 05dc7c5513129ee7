import FoundationEssentials
import Glibc

/// What stepguard appended to its audit log, kept so that a change by anyone else — a step that
/// truncates, rewrites, replaces or moves the file while it runs — is noticed before the verdict.
///
/// It holds the file's identity (device and inode), where each of stepguard's writes landed, and a
/// keyed hash of their bytes (Swift's `Hasher`, seeded at random per process: a step cannot compute
/// it, nor read the seed from a non-dumpable stepguard). Lines others append between stepguard's
/// are not a change: two runs may share a log.
struct AuditLogSeal {
    private let device: UInt64
    private let inode: UInt64
    private var digest = Hasher()
    /// Where stepguard's bytes are, contiguous writes merged.
    private var ranges: [(offset: Int64, length: Int64)] = []

    /// Seals the open log `fd`; nil when it cannot be inspected (then nothing is checked).
    init?(fd: Int32) {
        var info = stat()
        guard fstat(fd, &info) == 0 else { return nil }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
    }

    /// Records that `bytes` were just appended through `fd` (whose offset is now past them).
    mutating func appended(_ bytes: Data, through fd: Int32) {
        let end = lseek(fd, 0, SEEK_CUR)
        guard end >= 0 else { return }
        let start = Int64(end) - Int64(bytes.count)
        bytes.withUnsafeBytes { digest.combine(bytes: $0) }
        if let last = ranges.last, last.offset + last.length == start {
            ranges[ranges.count - 1].length += Int64(bytes.count)
        } else {
            ranges.append((start, Int64(bytes.count)))
        }
    }

    /// Nil when `path` is still the sealed file and holds every byte stepguard wrote, unchanged;
    /// else what happened, in words.
    func problem(fd: Int32, path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return "the audit log '\(path)' was removed or moved while the step ran" }
        guard UInt64(info.st_dev) == device, UInt64(info.st_ino) == inode else {
            return "the audit log '\(path)' was replaced by another file while the step ran"
        }
        var check = Hasher()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        for range in ranges {
            var offset = range.offset
            while offset < range.offset + range.length {
                let wanted = Int(min(Int64(buffer.count), range.offset + range.length - offset))
                let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, wanted, off_t(offset)) }
                guard count > 0 else { return "the audit log '\(path)' was truncated while the step ran" }
                buffer.withUnsafeBytes { check.combine(bytes: UnsafeRawBufferPointer(rebasing: $0.prefix(count))) }
                offset += Int64(count)
            }
        }
        return check.finalize() == digest.finalize() ? nil : "the audit log '\(path)' was rewritten while the step ran"
    }
}
