import Crypto
import StepGuardCore
#if canImport(Glibc)
import Glibc
#endif

/// git's index file (`.git/index`, or the one `GIT_INDEX_FILE` names) read directly: versions 2,
/// 3 and 4, its SHA-1 trailer verified, and the cache-tree (`TREE` extension) that says which
/// directories still match a tree object. Whatever it does not understand is unsupported (the
/// caller then asks libgit2): unmerged entries, intent-to-add entries, unknown flags, unknown
/// required extensions. A sparse index (`sdir`) is read: its directory entries (outside the
/// sparse-checkout cone) name a tree each; so is a split index (`link`): its entries over those
/// of `sharedindex.<id>`.
struct GitIndexFile {
    /// One stage-0 entry: its path in ``paths``, mode and blob id.
    struct Entry {
        var pathStart: Int
        var pathCount: Int
        var mode: UInt32
        /// Where its 20-byte blob id (a tree id for a sparse directory) starts in ``ids``.
        var idStart: Int
    }

    /// A directory of the cache-tree: the tree id its entries had when it was last written (nil:
    /// invalidated since), and its subdirectories by name.
    final class CacheTree {
        var id: [UInt8]?
        var children: [[UInt8]: CacheTree] = [:]
        init(id: [UInt8]?) { self.id = id }
    }

    /// Every entry's path bytes, one after the other.
    var paths: [UInt8] = []
    /// Every entry's blob id, one after the other.
    var ids: [UInt8] = []
    /// The entries in index order (by path bytes).
    var entries: [Entry] = []
    /// The root of the cache-tree, if the index has one.
    var cacheTree: CacheTree?
    /// How many entries are sparse directories.
    private(set) var sparseDirectories = 0

    /// Parses `bytes`, the whole index file; `sharedIndex` reads `sharedindex.<hex id>` of the git
    /// directory for a split index (nil: not there).
    init(_ bytes: [UInt8], sharedIndex: (String) -> [UInt8]? = { _ in nil }) throws(GitDirectUnsupported) {
        try self.init(bytes, shared: false)
        guard let (sharedID, deleted, replaced) = link else {
            try checkOrder()
            return
        }
        var shared = GitIndexFile()  // an all-zero id: no shared index
        if !sharedID.allSatisfy({ $0 == 0 }) {
            let name = Hex.string(sharedID)
            guard let bytes = sharedIndex(name) else { throw GitDirectUnsupported("the shared index sharedindex.\(name) cannot be read") }
            shared = try GitIndexFile(bytes, shared: true)
        }
        try merge(over: shared, deleted: deleted, replaced: replaced)
        guard sparseDirectories == 0 else { throw GitDirectUnsupported("a split index that is also sparse") }
        try checkOrder()
    }

    private init() {}

    private init(_ bytes: [UInt8], shared: Bool) throws(GitDirectUnsupported) {
        var failure: GitDirectUnsupported?
        bytes.withUnsafeBytes { raw in
            do throws(GitDirectUnsupported) { try parse(raw, shared: shared) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// The split index's `link` extension: the shared index's id, the positions of its entries
    /// deleted and those replaced (in order) by this file's first entries.
    private var link: (id: [UInt8], deleted: Set<Int>, replaced: [Int])?

    /// Checks that paths are not empty and strictly increasing, as git writes them.
    private func checkOrder() throws(GitDirectUnsupported) {
        for k in entries.indices {
            guard entries[k].pathCount > 0 else { throw GitDirectUnsupported("an empty path in the index") }
            if entries[k].mode == 0o040000, paths[entries[k].pathStart + entries[k].pathCount - 1] != UInt8(ascii: "/") {
                throw GitDirectUnsupported("a directory entry without a trailing slash")
            }
            if k > 0, !Self.less(paths, entries[k - 1], entries[k]) { throw GitDirectUnsupported("index entries out of order") }
        }
    }

    /// This split index's entries over those of `shared`: replaced entries take their place
    /// (keeping the shared path when theirs is empty), deleted ones go, the rest are added.
    private mutating func merge(over shared: GitIndexFile, deleted: Set<Int>, replaced: [Int]) throws(GitDirectUnsupported) {
        var items: [(path: ArraySlice<UInt8>, mode: UInt32, id: ArraySlice<UInt8>)] = []
        func path(_ file: GitIndexFile, _ e: Entry) -> ArraySlice<UInt8> { file.paths[e.pathStart..<(e.pathStart + e.pathCount)] }
        func id(_ file: GitIndexFile, _ e: Entry) -> ArraySlice<UInt8> { file.ids[e.idStart..<(e.idStart + 20)] }
        guard replaced.count <= entries.count, replaced.allSatisfy({ $0 < shared.entries.count }), deleted.allSatisfy({ $0 < shared.entries.count }) else {
            throw GitDirectUnsupported("a split index that does not match its shared index")
        }
        let replacing = Dictionary(uniqueKeysWithValues: replaced.enumerated().map { ($1, $0) })
        for (k, e) in shared.entries.enumerated() {
            var item = (path: path(shared, e), mode: e.mode, id: id(shared, e))
            if let j = replacing[k] {
                let r = entries[j]
                guard r.pathCount == 0 || path(self, r) == item.path else { throw GitDirectUnsupported("a split index entry replaces another path") }
                item = (item.path, r.mode, id(self, r))
            }
            if !deleted.contains(k) { items.append(item) }
        }
        for e in entries[replaced.count...] { items.append((path(self, e), e.mode, id(self, e))) }
        items.sort { $0.path.lexicographicallyPrecedes($1.path) }
        var newPaths: [UInt8] = [], newIDs: [UInt8] = [], newEntries: [Entry] = []
        for item in items {
            newEntries.append(Entry(pathStart: newPaths.count, pathCount: item.path.count, mode: item.mode, idStart: newIDs.count))
            newPaths.append(contentsOf: item.path)
            newIDs.append(contentsOf: item.id)
        }
        (paths, ids, entries) = (newPaths, newIDs, newEntries)
        sparseDirectories = entries.filter { $0.mode == 0o040000 }.count
    }

    /// The set bits of an EWAH bitmap (git's `ewah/`: bit count, word count, words, last marker
    /// position, big-endian), from `q`; `q` moves past it.
    private static func ewah(_ b: UnsafeRawBufferPointer, _ q: inout Int) throws(GitDirectUnsupported) -> [Int] {
        guard q + 8 <= b.count else { throw GitDirectUnsupported("a truncated split index bitmap") }
        let bits = Int(be32(b, q)), words = Int(be32(b, q + 4))
        q += 8
        guard bits <= 1 << 24 else { throw GitDirectUnsupported("a split index bitmap of \(bits) bits") }
        guard words <= (b.count - q) / 8, q + words * 8 + 4 <= b.count else { throw GitDirectUnsupported("a truncated split index bitmap") }
        func word(_ i: Int) -> UInt64 { UInt64(be32(b, q + i * 8)) << 32 | UInt64(be32(b, q + i * 8 + 4)) }
        var set: [Int] = []
        var position = 0, i = 0
        while i < words {
            let marker = word(i)
            let running = Int((marker >> 1) & 0xffff_ffff), literals = Int(marker >> 33)
            if marker & 1 == 1, position < bits { set.append(contentsOf: position..<min(bits, position + running * 64)) }
            position += running * 64
            guard i + 1 + literals <= words else { throw GitDirectUnsupported("a malformed split index bitmap") }
            for l in 0..<literals {
                let w = word(i + 1 + l)
                for bit in 0..<64 where w & (1 << UInt64(bit)) != 0 && position + bit < bits { set.append(position + bit) }
                position += 64
            }
            i += 1 + literals
        }
        q += words * 8 + 4
        return set
    }

    private static func be32(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
        UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
    }

    private mutating func parse(_ b: UnsafeRawBufferPointer, shared: Bool) throws(GitDirectUnsupported) {
        guard b.count >= 12 + 20, b.starts(with: Array("DIRC".utf8)) else { throw GitDirectUnsupported("not an index file") }
        let version = Self.be32(b, 4)
        guard (2...4).contains(version) else { throw GitDirectUnsupported("index version \(version)") }
        let end = b.count - 20
        let digest = Insecure.SHA1.hash(data: UnsafeRawBufferPointer(rebasing: b[..<end]))
        guard digest.elementsEqual(b[end...]) else { throw GitDirectUnsupported("the index's checksum does not match its content") }
        let count = Int(Self.be32(b, 8))
        entries.reserveCapacity(count)
        paths.reserveCapacity(count * 24)
        ids.reserveCapacity(count * 20)
        var p = 12
        var previous: Range<Int> = 0..<0  // the previous entry's path in `paths` (index version 4)
        for _ in 0..<count {
            let start = p
            guard p + 62 <= end else { throw GitDirectUnsupported("index entries run past the end") }
            let mode = Self.be32(b, p + 24)
            let idStart = ids.count
            ids.append(contentsOf: b[(p + 40)..<(p + 60)])
            let flags = UInt16(b[p + 60]) << 8 | UInt16(b[p + 61])
            p += 62
            if flags & 0x4000 != 0 {
                guard version >= 3, p + 2 <= end else { throw GitDirectUnsupported("extended flags in a version \(version) index") }
                let extended = UInt16(b[p]) << 8 | UInt16(b[p + 1])
                // 0x4000 skip-worktree (the staged content is still in the index) is fine;
                // 0x2000 intent-to-add and anything else: libgit2 decides.
                guard extended & ~0x4000 == 0 else { throw GitDirectUnsupported("index entry flags \(extended)") }
                p += 2
            }
            guard flags & 0x3000 == 0 else { throw GitDirectUnsupported("an unmerged entry (a conflict)") }
            // 040000: a sparse directory, `dir/` (checked below with its path and the `sdir` extension).
            guard mode == 0o100644 || mode == 0o100755 || mode == 0o120000 || mode == 0o160000 || mode == 0o040000 else {
                throw GitDirectUnsupported("index entry mode \(String(mode, radix: 8))")
            }
            let pathStart = paths.count
            if version == 4 {
                // The previous path minus N bytes, then this entry's NUL-terminated suffix.
                var c = b[p]; p += 1
                var strip = Int(c & 0x7f)
                while c & 0x80 != 0 {
                    guard p < end, strip < 1 << 32 else { throw GitDirectUnsupported("bad path prefix in a version 4 index") }
                    c = b[p]; p += 1
                    strip = ((strip + 1) << 7) | Int(c & 0x7f)
                }
                guard strip <= previous.count else { throw GitDirectUnsupported("bad path prefix in a version 4 index") }
                paths.append(contentsOf: paths[previous.lowerBound..<(previous.upperBound - strip)])
                guard let nul = b[p..<end].firstIndex(of: 0) else { throw GitDirectUnsupported("unterminated path in the index") }
                paths.append(contentsOf: b[p..<nul])
                p = nul + 1
            } else {
                guard let nul = b[p..<end].firstIndex(of: 0) else { throw GitDirectUnsupported("unterminated path in the index") }
                paths.append(contentsOf: b[p..<nul])
                // Entries are padded with 1 to 8 NULs to a multiple of 8 bytes.
                p = start + ((nul - start + 8) & ~7)
                guard p <= end, b[nul..<p].allSatisfy({ $0 == 0 }) else { throw GitDirectUnsupported("bad index entry padding") }
            }
            // The name length in the flags (0xFFF: that long or longer) must agree with the path.
            guard Int(flags & 0xfff) == min(paths.count - pathStart, 0xfff) else { throw GitDirectUnsupported("an index entry's name length disagrees with its path") }
            let entry = Entry(pathStart: pathStart, pathCount: paths.count - pathStart, mode: mode, idStart: idStart)
            if mode == 0o040000 { sparseDirectories += 1 }
            previous = pathStart..<paths.count
            entries.append(entry)
        }
        // Extensions: a 4-byte signature, a 4-byte size, the data.
        var sparse = false
        while p < end {
            guard p + 8 <= end else { throw GitDirectUnsupported("a truncated index extension") }
            let signature = String(decoding: b[p..<(p + 4)], as: UTF8.self)
            let size = Int(Self.be32(b, p + 4))
            p += 8
            guard size <= end - p else { throw GitDirectUnsupported("index extension \(signature) runs past the end") }
            let body = UnsafeRawBufferPointer(rebasing: b[p..<(p + size)])
            p += size
            if signature == "link" && !shared {
                guard body.count >= 20 else { throw GitDirectUnsupported("a truncated split index link") }
                var q = 20
                let deleted = body.count > 20 ? try Self.ewah(body, &q) : []
                let replaced = body.count > 20 ? try Self.ewah(body, &q) : []
                guard q == body.count else { throw GitDirectUnsupported("a malformed split index link") }
                link = (Array(body[0..<20]), Set(deleted), replaced)
            } else if signature == "sdir" {
                sparse = true  // a sparse index: directory entries allowed
            } else if signature == "TREE" {
                var q = 0
                cacheTree = try Self.cacheTree(body, &q)
                guard q == body.count else { throw GitDirectUnsupported("bad cache-tree extension") }
            } else if let first = signature.utf8.first, first >= UInt8(ascii: "A"), first <= UInt8(ascii: "Z") {
                continue  // optional (REUC, UNTR, FSMN, EOIE, IEOT…): git itself may ignore them
            } else {
                throw GitDirectUnsupported("index extension `\(signature)`")  // `link` in a shared index
            }
        }
        guard sparse || sparseDirectories == 0 else { throw GitDirectUnsupported("directory entries in an index that is not sparse") }
    }

    /// Entry `e`'s blob id.
    func id(_ e: Entry) -> [UInt8] { Array(ids[e.idStart..<(e.idStart + 20)]) }

    /// Whether entry `a`'s path sorts strictly before `b`'s (byte order, as git sorts the index).
    static func less(_ paths: [UInt8], _ a: Entry, _ b: Entry) -> Bool {
        paths.withUnsafeBufferPointer { all in
            let x = UnsafeBufferPointer(rebasing: all[a.pathStart..<(a.pathStart + a.pathCount)])
            let y = UnsafeBufferPointer(rebasing: all[b.pathStart..<(b.pathStart + b.pathCount)])
            let common = min(x.count, y.count)
            let order = memcmp(x.baseAddress!, y.baseAddress!, common)
            return order != 0 ? order < 0 : x.count < y.count
        }
    }

    /// One cache-tree node and its subtrees: `name\0entries subtrees\n[id]`, depth first.
    private static func cacheTree(_ b: UnsafeRawBufferPointer, _ q: inout Int, depth: Int = 0) throws(GitDirectUnsupported) -> CacheTree {
        guard depth < 4096, let nul = b[q...].firstIndex(of: 0), let newline = b[nul...].firstIndex(of: UInt8(ascii: "\n")) else {
            throw GitDirectUnsupported("bad cache-tree extension")
        }
        let numbers = String(decoding: b[(nul + 1)..<newline], as: UTF8.self).split(separator: " ")
        guard numbers.count == 2, let entryCount = Int(numbers[0]), let subtrees = Int(numbers[1]), subtrees >= 0, entryCount >= -1 else {
            throw GitDirectUnsupported("bad cache-tree extension")
        }
        q = newline + 1
        var id: [UInt8]?
        if entryCount >= 0 {
            guard q + 20 <= b.count else { throw GitDirectUnsupported("bad cache-tree extension") }
            id = Array(b[q..<(q + 20)])
            q += 20
        }
        let node = CacheTree(id: id)
        for _ in 0..<subtrees {
            guard q < b.count else { throw GitDirectUnsupported("bad cache-tree extension") }
            let childNameEnd = b[q...].firstIndex(of: 0) ?? b.count
            let name = Array(b[q..<childNameEnd])
            let child = try cacheTree(b, &q, depth: depth + 1)
            guard !name.isEmpty, node.children.updateValue(child, forKey: name) == nil else {
                throw GitDirectUnsupported("bad cache-tree extension")
            }
        }
        return node
    }
}
