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

    /// One tree entry: its id and mode.
    struct Entry {
        var id: git_oid
        var mode: UInt32
        var isTree: Bool { mode == UInt32(GIT_FILEMODE_TREE.rawValue) }
        var isFile: Bool { mode == UInt32(GIT_FILEMODE_BLOB.rawValue) || mode == UInt32(GIT_FILEMODE_BLOB_EXECUTABLE.rawValue) }
    }

    /// Compares tree `old` (nil: the empty tree) with tree `new` under `prefix`; false when a tree
    /// cannot be read (the caller falls back to libgit2's diff).
    mutating func compare(_ old: git_oid?, _ new: git_oid, prefix: String = "") -> Bool {
        if let old, old.key == new.key { return true }
        guard let newEntries = entries(new) else { return false }
        var oldEntries: [([UInt8], Entry)] = []
        if let old {
            guard let list = entries(old) else { return false }
            oldEntries = list
        }
        // Both lists are in git's tree order (a directory sorts as if its name ended in "/"):
        // walk them side by side.
        var o = 0
        for (name, entry) in newEntries {
            while o < oldEntries.count && Self.precedes(oldEntries[o].0, oldEntries[o].1.isTree, name, entry.isTree) {
                deletes = true  // only in the old tree
                o += 1
            }
            var before: Entry?
            if o < oldEntries.count && oldEntries[o].0 == name && oldEntries[o].1.isTree == entry.isTree {
                before = oldEntries[o].1
                o += 1
            }
            if entry.isTree {
                guard compare(before?.id, entry.id, prefix: prefix + String(decoding: name, as: UTF8.self) + "/") else { return false }
            } else if entry.isFile {
                if let before, before.isFile {
                    if before.id.key == entry.id.key { continue }  // a mode change adds nothing
                    deltas.append(GitDelta(path: prefix + String(decoding: name, as: UTF8.self), blob: entry.id, addedLines: [],
                                           binary: false, pending: true, oldBlob: before.id))
                } else {
                    if before != nil { deletes = true }  // a link or submodule replaced by a file
                    deltas.append(GitDelta(path: prefix + String(decoding: name, as: UTF8.self), blob: entry.id, addedLines: nil,
                                           binary: false, pending: false))
                }
            }  // links and submodules hold no content of this repository
        }
        if o < oldEntries.count { deletes = true }
        return true
    }

    /// Whether entry `a` sorts before entry `b` in git's tree order.
    static func precedes(_ a: [UInt8], _ aIsTree: Bool, _ b: [UInt8], _ bIsTree: Bool) -> Bool {
        let common = min(a.count, b.count)
        for i in 0..<common where a[i] != b[i] { return a[i] < b[i] }
        let ca: UInt8 = a.count > common ? a[common] : (aIsTree ? UInt8(ascii: "/") : 0)
        let cb: UInt8 = b.count > common ? b[common] : (bIsTree ? UInt8(ascii: "/") : 0)
        return ca < cb
    }

    /// The entries of tree `id` (name bytes, entry); nil when it cannot be read.
    private func entries(_ id: git_oid) -> [([UInt8], Entry)]? {
        let key = id.key
        if let cached = cache.trees[key] { return cached }
        guard let read = read(id) else { return nil }
        if cache.trees.count >= TreeCache.capacity { cache.trees.removeAll(keepingCapacity: true) }
        cache.trees[key] = read
        return read
    }

    private func read(_ id: git_oid) -> [([UInt8], Entry)]? {
        var id = id
        var tree: OpaquePointer?
        guard git_tree_lookup(&tree, repo.pointer, &id) == 0, let tree else { return nil }
        defer { git_tree_free(tree) }
        let count = git_tree_entrycount(tree)
        var out: [([UInt8], Entry)] = []
        out.reserveCapacity(count)
        for i in 0..<count {
            guard let entry = git_tree_entry_byindex(tree, i), let name = git_tree_entry_name(entry),
                  let oid = git_tree_entry_id(entry) else { return nil }
            let bytes = Array(UnsafeRawBufferPointer(start: name, count: strlen(name)))
            out.append((bytes, Entry(id: oid.pointee, mode: git_tree_entry_filemode(entry).rawValue)))
        }
        return out
    }
}

/// The trees one worker read recently, by id (a bounded map, emptied when full).
final class TreeCache {
    static let capacity = 4096
    var trees: [[UInt8]: [([UInt8], TreeDiff.Entry)]] = [:]
}
