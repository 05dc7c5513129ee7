import CGit2
#if canImport(Glibc)
import Glibc
#endif

/// A blob's findings in history mode, with the line hashes of each finding's lines (same order).
struct BlobFindings: Sendable {
    var found: [BufferScanner.Located]
    /// For each finding, the hashes of the lines it spans (``LineHashes/hash(_:)``).
    var spanLines: [[UInt64]]
}

/// Lines by hash, to attribute a blob's findings without a diff when the answer does not depend
/// on one: a line of the new blob that the old blob (or every possible rename source) does not
/// contain is an added line in any diff, since a diff only ever pairs equal lines. A finding with
/// such a line counts whichever way the diff is computed. Equal hashes of different lines (or
/// the same text with and without its newline, which a diff tells apart) only make a line look
/// present: the diff is then computed as before, never skipped wrongly.
enum LineHashes {
    /// Beyond this many deleted blobs in one commit, renames are left to libgit2's detection
    /// (which gives up on inexact renames past its own limit) instead of reading them all.
    static let maximumRenameSources = 100

    /// FNV-1a of a line's bytes, without its newline.
    static func hash(_ line: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in line {
            h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        return h
    }

    /// Calls `body` with each line of `bytes` (1-based number, bytes without the newline).
    static func forEachLine(_ bytes: UnsafeRawBufferPointer, _ body: (Int, UnsafeRawBufferPointer) -> Bool) {
        var start = 0
        var number = 1
        while start < bytes.count {
            let end = BufferScanner.nextNewline(bytes, from: start, limit: bytes.count)
            if !body(number, UnsafeRawBufferPointer(rebasing: bytes[start..<end])) { return }
            number += 1
            start = end + 1
        }
    }

    /// The hashes of every line of `bytes`.
    static func lines(of bytes: UnsafeRawBufferPointer) -> HashSet {
        var out = HashSet(expected: bytes.count / 32)
        forEachLine(bytes) { _, line in out.insert(hash(line)); return true }
        return out
    }

    /// The hashes of every line of every blob in `ids`; nil if one cannot be read.
    static func lines(of ids: [git_oid], in repo: GitRepository) -> HashSet? {
        var out = HashSet(expected: 1024)
        for id in ids {
            guard repo.withBlob(id, { raw in forEachLine(raw) { _, line in out.insert(hash(line)); return true } }) != nil else { return nil }
        }
        return out
    }

    /// A set of line hashes (open addressing; the hashes are already well mixed). 0 stands for
    /// an empty slot, so the hash 0 is stored as 1: a collision, which only makes a line look present.
    struct HashSet {
        private var slots: [UInt64]
        private var count = 0

        init(expected: Int) {
            var capacity = 64
            while capacity < expected * 2 { capacity <<= 1 }
            slots = [UInt64](repeating: 0, count: capacity)
        }

        mutating func insert(_ value: UInt64) {
            if (count + 1) * 2 > slots.count { grow() }
            let v = value == 0 ? 1 : value
            let mask = slots.count - 1
            var i = Int(truncatingIfNeeded: v) & mask
            while slots[i] != 0 {
                if slots[i] == v { return }
                i = (i + 1) & mask
            }
            slots[i] = v
            count += 1
        }

        func contains(_ value: UInt64) -> Bool {
            let v = value == 0 ? 1 : value
            let mask = slots.count - 1
            var i = Int(truncatingIfNeeded: v) & mask
            while slots[i] != 0 {
                if slots[i] == v { return true }
                i = (i + 1) & mask
            }
            return false
        }

        private mutating func grow() {
            let old = slots
            slots = [UInt64](repeating: 0, count: old.count * 2)
            count = 0
            for v in old where v != 0 { insert(v) }
        }
    }

    /// For each span (first and last line, 1-based, ascending by first line), the hashes of its lines.
    static func spans(_ bytes: UnsafeRawBufferPointer, _ spans: [(first: Int, last: Int)]) -> [[UInt64]] {
        guard let lastNeeded = spans.map(\.last).max() else { return [] }
        var byLine: [Int: UInt64] = [:]
        var wanted = Set<Int>()
        for span in spans { for n in span.first...max(span.first, span.last) { wanted.insert(n) } }
        forEachLine(bytes) { number, line in
            if wanted.contains(number) { byLine[number] = hash(line) }
            return number < lastNeeded
        }
        // A span with a line past the end (not a finding of this blob) is left empty: it then
        // never counts as new here, and the diff decides.
        return spans.map { span in
            let hashes = (span.first...max(span.first, span.last)).compactMap { byLine[$0] }
            return hashes.count == max(span.first, span.last) - span.first + 1 ? hashes : []
        }
    }

    /// Whether every span has a line whose hash is not in `present` (an empty list of spans: no).
    static func everySpanHasALineNotIn(_ present: HashSet, _ spans: [[UInt64]]) -> Bool {
        !spans.isEmpty && spans.allSatisfy { span in span.contains { !present.contains($0) } }
    }
}
