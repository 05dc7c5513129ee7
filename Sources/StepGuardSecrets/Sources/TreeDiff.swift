import CGit2
#if canImport(Glibc)
import Glibc
#endif

/// The files a commit adds or changes, found by comparing its tree with its parent's directly:
/// subtrees with the same id are skipped without being read, and nothing else is computed
/// (libgit2's diff builds a delta list, path vectors and iterators per commit, three times the
/// cost on a long history). History mode's first phase; patches and renames come later, for the
/// few files with findings.
struct TreeDiff {
    let repo: GitRepository
    /// Trees already read by this worker (a commit's tree is its child's parent tree).
    let cache: TreeCache
    /// Changed or added files (regular and executable blobs), in tree order.
    var deltas: [GitDelta] = []
    /// Whether a file (or a directory) was deleted or replaced: new files may then be renames.
    var deletes = false
    /// Every entry (file, link or directory) the commit deleted or replaced by another kind of
    /// entry: under them are the only sources a new file can be renamed from (the rename
    /// detection of history mode looks for renames, not copies). ``blobs(under:limit:)`` lists
    /// their blobs when they are needed.
    var deleted: [Entry] = []

    /// One tree entry: its id and mode, and where its name is in its tree's ``Tree/names``.
    struct Entry {
        var id: git_oid
        var mode: UInt32
        var nameStart: Int32
        var nameCount: Int32
        var isTree: Bool { mode == UInt32(GIT_FILEMODE_TREE.rawValue) }
        var isFile: Bool { mode == UInt32(GIT_FILEMODE_BLOB.rawValue) || mode == UInt32(GIT_FILEMODE_BLOB_EXECUTABLE.rawValue) }
        var isBlob: Bool { isFile || mode == UInt32(GIT_FILEMODE_LINK.rawValue) }
    }

    /// A tree read once: its entries, their names in one buffer (one allocation per tree, not per entry).
    final class Tree {
        let entries: [Entry]
        let names: [UInt8]
        init(entries: [Entry], names: [UInt8]) {
            self.entries = entries
            self.names = names
        }

        func name(_ entry: Entry) -> String {
            names.withUnsafeBufferPointer { String(decoding: UnsafeBufferPointer(rebasing: $0[Int(entry.nameStart)..<Int(entry.nameStart + entry.nameCount)]), as: UTF8.self) }
        }
    }

    /// Compares tree `old` (nil: the empty tree) with tree `new` under `prefix`; false when a tree
    /// cannot be read (the caller falls back to libgit2's diff).
    mutating func compare(_ old: git_oid?, _ new: git_oid, prefix: String = "") -> Bool {
        if let old, old.key == new.key { return true }
        guard let newTree = entries(new) else { return false }
        var oldTree: Tree?
        if let old {
            guard let tree = entries(old) else { return false }
            oldTree = tree
        }
        let oldEntries = oldTree?.entries ?? []
        // Both lists are in git's tree order (a directory sorts as if its name ended in "/"):
        // walk them side by side.
        var o = 0
        for entry in newTree.entries {
            while o < oldEntries.count && Self.precedes(oldTree!, oldEntries[o], newTree, entry) {
                removed(oldEntries[o])  // only in the old tree
                o += 1
            }
            var before: Entry?
            if o < oldEntries.count && oldEntries[o].isTree == entry.isTree && Self.sameName(oldTree!, oldEntries[o], newTree, entry) {
                before = oldEntries[o]
                o += 1
            }
            if entry.isTree {
                guard compare(before?.id, entry.id, prefix: prefix + newTree.name(entry) + "/") else { return false }
            } else if entry.isFile {
                if let before, before.isFile {
                    if before.id.key == entry.id.key { continue }  // a mode change adds nothing
                    deltas.append(GitDelta(path: prefix + newTree.name(entry), blob: entry.id, addedLines: [],
                                           binary: false, pending: true, oldBlob: before.id))
                } else {
                    if let before { removed(before) }  // a link or submodule replaced by a file
                    deltas.append(GitDelta(path: prefix + newTree.name(entry), blob: entry.id, addedLines: nil,
                                           binary: false, pending: false))
                }
            } else if let before, before.isBlob, before.id.key != entry.id.key {
                removed(before)  // a file replaced by a link (or a submodule)
            }  // links and submodules hold no content of this repository
        }
        while o < oldEntries.count {
            removed(oldEntries[o])
            o += 1
        }
        return true
    }

    /// Records `entry` of the old tree as deleted.
    private mutating func removed(_ entry: Entry) {
        deletes = true
        if entry.isBlob || entry.isTree { deleted.append(entry) }
    }

    /// The blobs of `entries` and of every directory among them, read through `repo`; nil when a
    /// tree cannot be read or there are more than `limit`.
    static func blobs(under entries: [Entry], _ repo: GitRepository, limit: Int) -> [git_oid]? {
        var out: [git_oid] = []
        var pending = entries
        while let entry = pending.popLast() {
            if entry.isBlob {
                out.append(entry.id)
                if out.count > limit { return nil }
            } else if entry.isTree {
                guard let tree = repo.withRawObject(entry.id, type: GIT_OBJECT_TREE, parse) ?? nil else { return nil }
                pending.append(contentsOf: tree.entries)
            }
        }
        return out
    }

    /// Whether entry `a` of tree `ta` sorts before entry `b` of tree `tb` in git's tree order.
    static func precedes(_ ta: Tree, _ a: Entry, _ tb: Tree, _ b: Entry) -> Bool {
        ta.names.withUnsafeBufferPointer { an in
            tb.names.withUnsafeBufferPointer { bn in
                let ac = Int(a.nameCount), bc = Int(b.nameCount)
                let common = min(ac, bc)
                let order = memcmp(an.baseAddress! + Int(a.nameStart), bn.baseAddress! + Int(b.nameStart), common)
                if order != 0 { return order < 0 }
                let ca: UInt8 = ac > common ? an[Int(a.nameStart) + common] : (a.isTree ? UInt8(ascii: "/") : 0)
                let cb: UInt8 = bc > common ? bn[Int(b.nameStart) + common] : (b.isTree ? UInt8(ascii: "/") : 0)
                return ca < cb
            }
        }
    }

    /// Whether entry name `a` sorts before entry name `b` in git's tree order.
    static func precedes(_ a: [UInt8], _ aIsTree: Bool, _ b: [UInt8], _ bIsTree: Bool) -> Bool {
        let common = min(a.count, b.count)
        for i in 0..<common where a[i] != b[i] { return a[i] < b[i] }
        let ca: UInt8 = a.count > common ? a[common] : (aIsTree ? UInt8(ascii: "/") : 0)
        let cb: UInt8 = b.count > common ? b[common] : (bIsTree ? UInt8(ascii: "/") : 0)
        return ca < cb
    }

    /// Whether the two entries have the same name.
    static func sameName(_ ta: Tree, _ a: Entry, _ tb: Tree, _ b: Entry) -> Bool {
        a.nameCount == b.nameCount && ta.names.withUnsafeBufferPointer { an in
            tb.names.withUnsafeBufferPointer { bn in
                memcmp(an.baseAddress! + Int(a.nameStart), bn.baseAddress! + Int(b.nameStart), Int(a.nameCount)) == 0
            }
        }
    }

    /// The entries of tree `id`; nil when it cannot be read.
    private func entries(_ id: git_oid) -> Tree? {
        let key = id.key
        if let cached = cache.trees[key] { return cached }
        guard let read = read(id) else { return nil }
        if cache.trees.count >= TreeCache.capacity { cache.trees.removeAll(keepingCapacity: true) }
        cache.trees[key] = read
        return read
    }

    /// Reads and parses tree `id` (`MODE SP NAME NUL ID` entries); nil when it is missing or
    /// malformed (the caller then falls back to libgit2's diff, which says what is wrong).
    private func read(_ id: git_oid) -> Tree? {
        repo.withRawObject(id, type: GIT_OBJECT_TREE) { raw -> Tree? in
            Self.parse(raw)
        } ?? nil
    }

    static func parse(_ raw: UnsafeRawBufferPointer) -> Tree? {
        var entries: [Entry] = []
        entries.reserveCapacity(raw.count / 40)
        var names: [UInt8] = []
        names.reserveCapacity(raw.count / 2)
        var i = 0
        while i < raw.count {
            var mode: UInt32 = 0
            var digits = 0
            while i < raw.count, raw[i] != UInt8(ascii: " ") {
                let d = raw[i] &- UInt8(ascii: "0")
                guard d < 8, digits < 7 else { return nil }
                mode = mode << 3 | UInt32(d)
                digits += 1
                i += 1
            }
            guard digits > 0, i < raw.count else { return nil }
            i += 1
            let nameStart = i
            guard let nul = memchr(raw.baseAddress! + i, 0, raw.count - i) else { return nil }
            let nameEnd = raw.baseAddress!.distance(to: UnsafeRawPointer(nul))
            guard nameEnd > nameStart, nameEnd + 21 <= raw.count else { return nil }
            var oid = git_oid()
            withUnsafeMutableBytes(of: &oid.id) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[(nameEnd + 1)..<(nameEnd + 21)])) }
            let start = names.count
            names.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[nameStart..<nameEnd]))
            entries.append(Entry(id: oid, mode: mode, nameStart: Int32(start), nameCount: Int32(nameEnd - nameStart)))
            i = nameEnd + 21
        }
        return Tree(entries: entries, names: names)
    }
}

/// The trees and commits one worker read recently, by id (bounded maps, emptied when full).
final class TreeCache {
    static let capacity = 4096
    var trees: [ObjectKey: TreeDiff.Tree] = [:]
    var commits: [ObjectKey: (tree: git_oid, parents: [git_oid])] = [:]

    /// The tree and parents of commit `id`, read from its header; nil when it cannot be read.
    func commit(_ id: git_oid, _ repo: GitRepository) -> (tree: git_oid, parents: [git_oid])? {
        let key = id.key
        if let known = commits[key] { return known }
        guard let parsed = repo.withRawObject(id, type: GIT_OBJECT_COMMIT, Self.parseCommit) ?? nil else { return nil }
        if commits.count >= Self.capacity { commits.removeAll(keepingCapacity: true) }
        commits[key] = parsed
        return parsed
    }

    /// `tree HEX` and the `parent HEX` lines that follow it at the start of a commit.
    static func parseCommit(_ raw: UnsafeRawBufferPointer) -> (tree: git_oid, parents: [git_oid])? {
        func id(after prefix: String, at offset: Int) -> git_oid? {
            let p = Array(prefix.utf8)
            guard offset + p.count + 41 <= raw.count, raw[offset + 40 + p.count] == UInt8(ascii: "\n") else { return nil }
            for (k, c) in p.enumerated() where raw[offset + k] != c { return nil }
            var oid = git_oid()
            let ok = raw.baseAddress!.advanced(by: offset + p.count).withMemoryRebound(to: CChar.self, capacity: 40) { git_oid_fromstrn(&oid, $0, 40) == 0 }
            return ok ? oid : nil
        }
        guard let tree = id(after: "tree ", at: 0) else { return nil }
        var parents: [git_oid] = []
        var offset = 46
        while let parent = id(after: "parent ", at: offset) {
            parents.append(parent)
            offset += 48
        }
        return (tree, parents)
    }
}

/// A git object id as a dictionary key: its 20 bytes as plain integers (no allocation).
struct ObjectKey: Hashable, Sendable {
    let a: UInt64, b: UInt64, c: UInt32
}
