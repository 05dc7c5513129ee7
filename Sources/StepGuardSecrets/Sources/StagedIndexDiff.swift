import FoundationEssentials
import StepGuardCore
import Glibc

/// The files the index stages against HEAD's tree, found without libgit2: directories whose
/// cache-tree entry still names HEAD's subtree are skipped unread, the others are compared entry by
/// entry with HEAD's tree objects. Like libgit2's `git_diff_tree_to_index` (no rename detection),
/// a change of file type counts as a deletion and an addition; links and submodules hold no
/// content of this repository.
struct StagedIndexDiff {
    /// A staged regular or executable file whose content differs from HEAD's.
    struct Change {
        var path: String
        var blob: [UInt8]
        /// A new path (or a new type at that path); false: a modified file.
        var added: Bool
    }

    /// The changes, in path order.
    private(set) var changes: [Change] = []
    /// Whether something in HEAD is gone from the index (the new files may then be renames).
    private(set) var deletes = false
    private let index: GitIndexFile
    private let store: GitObjectStore

    /// Compares `index` with tree `head` (nil: an unborn branch, the empty tree).
    init(index: GitIndexFile, head: [UInt8]?, store: GitObjectStore) throws(GitDirectUnsupported) {
        self.index = index
        self.store = store
        try compare(prefix: 0, index.entries.indices, head: head, cacheTree: index.cacheTree)
    }

    private static func isTree(_ mode: UInt32) -> Bool { mode & 0o170000 == 0o040000 }

    /// Compares the entries in `range`, which all start with the same `prefix` bytes (a directory
    /// and its slash), with tree `head`.
    private mutating func compare(prefix: Int, _ range: Range<Int>, head: [UInt8]?, cacheTree: GitIndexFile.CacheTree?) throws(GitDirectUnsupported) {
        if let head, let written = cacheTree?.id, written == head { return }  // unchanged since HEAD's tree
        let before = try head.map { (id) throws(GitDirectUnsupported) in try treeEntries(id) } ?? []
        let entries = index.entries, paths = index.paths
        var h = 0
        var i = range.lowerBound
        var lastFile: ArraySlice<UInt8>?
        while i < range.upperBound {
            let entry = entries[i]
            let rest = (entry.pathStart + prefix)..<(entry.pathStart + entry.pathCount)
            let slash = paths[rest].firstIndex(of: UInt8(ascii: "/"))
            let name = paths[rest.lowerBound..<(slash ?? rest.upperBound)]
            guard !name.isEmpty else { throw GitDirectUnsupported("an empty path component in the index") }
            var next = i + 1
            if let slash {
                // A directory: every following entry with the same `name/` prefix.
                if lastFile == name { throw GitDirectUnsupported("a file and a directory with the same path in the index") }
                let dirPrefix = paths[entry.pathStart...slash]
                while next < range.upperBound, paths[entries[next].pathStart..<(entries[next].pathStart + entries[next].pathCount)].starts(with: dirPrefix) {
                    next += 1
                }
            } else {
                lastFile = name
            }
            let isTree = slash != nil
            let nameBytes = Array(name)
            while h < before.count, TreeDiff.precedes(before[h].name, Self.isTree(before[h].mode), nameBytes, isTree) {
                deletes = true  // only in HEAD
                h += 1
            }
            var old: (name: [UInt8], mode: UInt32, id: [UInt8])?
            if h < before.count, before[h].name == nameBytes, Self.isTree(before[h].mode) == isTree {
                old = before[h]
                h += 1
            }
            if let slash, entry.mode == 0o040000 {
                // A sparse directory (outside the sparse-checkout cone): one entry naming its tree.
                guard next == i + 1, slash + 1 == entry.pathStart + entry.pathCount else {
                    throw GitDirectUnsupported("a sparse directory with entries under it")
                }
                // Unchanged unless it names another tree than HEAD's: that diff is left to libgit2.
                guard let old, old.id == index.id(entry) else { throw GitDirectUnsupported("a sparse directory that differs from HEAD") }
            } else if let slash {
                try compare(prefix: slash + 1 - entry.pathStart, i..<next, head: old?.id, cacheTree: cacheTree?.children[nameBytes])
            } else {
                if let o = old, o.mode & 0o170000 != entry.mode & 0o170000 {
                    deletes = true  // a type change: libgit2 splits it into a deletion and an addition
                    old = nil
                }
                if entry.mode == 0o100644 || entry.mode == 0o100755 {
                    let id = index.id(entry)
                    if old?.id != id {
                        let path = String(decoding: paths[entry.pathStart..<(entry.pathStart + entry.pathCount)], as: UTF8.self)
                        changes.append(Change(path: path, blob: id, added: old == nil))
                    }
                }
            }
            i = next
        }
        if h < before.count { deletes = true }
    }

    /// The entries of tree object `id`: name, mode, id.
    private func treeEntries(_ id: [UInt8]) throws(GitDirectUnsupported) -> [(name: [UInt8], mode: UInt32, id: [UInt8])] {
        let object = try store.read(id)
        guard object.type == .tree else { throw GitDirectUnsupported("\(Hex.string(id)) is not a tree") }
        let data = object.data
        var out: [(name: [UInt8], mode: UInt32, id: [UInt8])] = []
        var p = 0
        while p < data.count {
            // `mode name\0` and a 20-byte id.
            var mode: UInt32 = 0
            while p < data.count, data[p] != UInt8(ascii: " ") {
                guard data[p] >= UInt8(ascii: "0"), data[p] <= UInt8(ascii: "7"), mode < 0o1000000 else {
                    throw GitDirectUnsupported("bad tree \(Hex.string(id))")
                }
                mode = mode << 3 | UInt32(data[p] - UInt8(ascii: "0"))
                p += 1
            }
            guard let nul = data[p...].firstIndex(of: 0), nul > p + 1, nul + 21 <= data.count else {
                throw GitDirectUnsupported("bad tree \(Hex.string(id))")
            }
            out.append((Array(data[(p + 1)..<nul]), mode, Array(data[(nul + 1)..<(nul + 21)])))
            p = nul + 21
        }
        return out
    }
}

extension SecretScanner {
    /// The result of ``scanStagedDirectly``: a report, or why libgit2 must decide.
    enum StagedDirectScan {
        case scanned(ScanReport)
        case unsupported(String)
        /// Objects damaged so that libgit2 would not stop reading them (``GitDirectUnsupported/damaged``): an error.
        case damaged(String)
    }

    /// `scan --staged` from git's files, without loading libgit2 (8 ms of start-up: its libraries
    /// and mbedTLS reading the CA bundle): the index, HEAD's trees and the staged blobs, loose or
    /// packed. Unsupported — the caller then runs ``scanStagedWithLibgit2`` — whenever anything is
    /// outside what this reader understands (see ``GitLayout``, ``GitIndexFile``,
    /// ``GitObjectStore``: an unreadable or missing index, a sparse directory that differs from HEAD, conflicts, intent-to-add entries, extensions, alternates), and whenever a staged blob has findings
    /// that need a patch or rename detection: a modified file, or a new one while files are
    /// deleted. The findings are then exactly libgit2's: a whole new file where nothing is
    /// deleted is all added lines, and a blob without findings has none on its added lines.
    func scanStagedDirectly(repository path: String, environment: [String: String]) -> StagedDirectScan {
        do throws(GitDirectUnsupported) {
            let layout = try GitLayout.discover(path, environment: environment)
            let indexPath = environment["GIT_INDEX_FILE"].flatMap { $0.isEmpty ? nil : $0 } ?? layout.gitDirectory + "/index"
            guard let bytes = readFile(indexPath) else { throw GitDirectUnsupported("\(indexPath) cannot be read") }
            let index = try GitIndexFile(bytes) { readFile(layout.gitDirectory + "/sharedindex." + $0) }
            let store = GitObjectStore(layout)
            let diff = try StagedIndexDiff(index: index, head: try layout.headTree(store), store: store)
            var report = ScanReport()
            // Its own log of rules that gave up: kept only if this path's report is the answer.
            let incompleteHere = IncompleteScanLog()
            var scanner = bufferScanner
            scanner.incomplete = incompleteHere
            for change in diff.changes {
                if detector.engine.pathAllowed(change.path) { report.skippedAllowedPaths += 1; continue }
                let blob = try store.read(change.blob)
                guard blob.type == .blob else { throw GitDirectUnsupported("\(change.path): the index names a \(blob.type)") }
                if blob.data.count > options.maxFileSize { report.skippedLarge += 1; continue }
                let found: [BufferScanner.Located]? = blob.data.withUnsafeBytes { raw in
                    if Self.looksBinary(raw) { return nil }
                    report.scannedBytes += raw.count
                    return scanner.scan(raw, path: change.path)
                }
                guard let found else { report.skippedBinary += 1; continue }
                report.scannedFiles += 1
                if found.isEmpty { continue }
                guard change.added && !diff.deletes else {
                    throw GitDirectUnsupported("\(change.path) has findings and needs a patch or rename detection")
                }
                for l in found {
                    if l.inlineAllowed { report.suppressed += 1 } else { report.findings.append(l.finding) }
                }
            }
            // A file PCRE2 could not search whole: libgit2's path decides whether its added lines
            // matter (it skips a modified file that only loses lines).
            if let first = incompleteHere.all.first { throw GitDirectUnsupported("\(first.path): a rule could not search it whole") }
            return .scanned(report)
        } catch {
            return error.damaged ? .damaged(error.reason) : .unsupported(error.reason)
        }
    }
}
