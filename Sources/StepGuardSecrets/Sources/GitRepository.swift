import FoundationEssentials
import CGit2
import StepGuardCore
import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A libgit2 repository handle. Not shared between threads: each worker opens its own.
final class GitRepository {
    let pointer: OpaquePointer

    /// Opens the repository containing `path` (searching parent directories).
    init(path: String) throws {
        try Git.initialize()
        var repo: OpaquePointer?
        guard git_repository_open_ext(&repo, path, 0, nil) == 0, let repo else {
            throw SecretsError(.git, "\(path): not inside a git repository (\(Git.lastError())); pass --repo DIR or run inside a work tree")
        }
        pointer = repo
    }

    deinit {
        if let odb { git_odb_free(odb) }
        git_repository_free(pointer)
    }

    private var odb: OpaquePointer?

    /// History mode: objects are read from the packs and loose objects directly first
    /// (``enableDirectReads(cacheBudget:)``), through libgit2 only when that reader gives up.
    private var direct: GitObjectStore?

    /// Why the direct reader last found an object damaged (``GitDirectUnsupported/damaged``): the
    /// reason a read returned nil without asking libgit2, for the error message.
    private(set) var damage: String?

    /// Commits are read through libgit2 even with direct reads: the repository whose revision walk
    /// just read every commit has them in libgit2's cache.
    var commitsFromLibgit2Cache = false

    /// Reads objects with ``GitObjectStore`` (the packs `packs` mapped; one zlib stream; the
    /// inflated objects of the last `cacheBudget` bytes kept as delta bases) before libgit2, which
    /// is asked whenever the direct reader cannot decode an object or does not find it — an object
    /// neither can read is missing.
    func enableDirectReads(cacheBudget: Int, packs: GitPacks) {
        direct = GitObjectStore(commonDirectory: GitLayout.commonDirectory(of: gitDirectory), cacheBudget: cacheBudget, packs: packs)
    }

    /// Reads object `id` from the object database without parsing it into a libgit2 object
    /// (history mode reads every commit and changed tree: the parse and the object cache cost more
    /// than the little it needs); nil when it is missing or not of `type`.
    func withRawObject<T>(_ id: git_oid, type: git_object_t, _ body: (UnsafeRawBufferPointer) -> T) -> T? {
        if let direct, !(commitsFromLibgit2Cache && type == GIT_OBJECT_COMMIT) {
            do throws(GitDirectUnsupported) {
                let object = try direct.read(withUnsafeBytes(of: id.id) { Array($0) })
                if object.type.rawValue == Int(type.rawValue) { return object.data.withUnsafeBytes { body($0) } }
            } catch {
                if error.damaged {  // unreadable: libgit2 would loop on it
                    damage = error.reason
                    return nil
                }
            }
        }
        if odb == nil {
            var out: OpaquePointer?
            guard git_repository_odb(&out, pointer) == 0 else { return nil }
            odb = out
        }
        var id = id
        var object: OpaquePointer?
        guard git_odb_read(&object, odb, &id) == 0, let object else { return nil }
        defer { git_odb_object_free(object) }
        guard git_odb_object_type(object) == type else { return nil }
        return body(UnsafeRawBufferPointer(start: git_odb_object_data(object), count: git_odb_object_size(object)))
    }

    /// The `.git` directory path.
    var gitDirectory: String { String(cString: git_repository_path(pointer)) }

    /// The work tree root (with a trailing slash), if not bare.
    var workdir: String? { git_repository_workdir(pointer).map { String(cString: $0) } }

    /// Reads a blob; nil if it is missing (or not a blob).
    func withBlob<T>(_ oid: git_oid, _ body: (UnsafeRawBufferPointer) -> T) -> T? {
        withRawObject(oid, type: GIT_OBJECT_BLOB) { raw in
            body(raw.count == 0 ? UnsafeRawBufferPointer(start: nil, count: 0) : raw)
        }
    }

    func blobSize(_ oid: git_oid) -> Int? {
        var oid = oid
        var blob: OpaquePointer?
        guard git_blob_lookup(&blob, pointer, &oid) == 0, let blob else { return nil }
        defer { git_blob_free(blob) }
        return Int(git_blob_rawsize(blob))
    }
}

/// A changed file in a diff: its new path and blob, and the lines it adds.
struct GitDelta: @unchecked Sendable {  // git_oid is a plain 20-byte value
    var path: String
    var blob: git_oid
    /// Ranges of added lines (new side); nil when the whole file is new.
    var addedLines: [ClosedRange<Int>]?
    var binary: Bool
    /// History mode: the added lines are still to be computed (a modified file, or a new file
    /// that may be a renamed one); ``addedLines`` is meaningless until then.
    var pending = false
    /// History mode: the blob this one replaces at the same path (a modified file).
    var oldBlob: git_oid? = nil

    /// Whether any line of `first...last` was added.
    func adds(_ first: Int, _ last: Int) -> Bool {
        guard let addedLines else { return true }
        return addedLines.contains { $0.overlaps(first...max(first, last)) }
    }
}

extension git_oid {
    var hex: String {
        var copy = self
        var buffer = [CChar](repeating: 0, count: 41)
        git_oid_tostr(&buffer, 41, &copy)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The id as a dictionary key (no allocation).
    var key: ObjectKey {
        withUnsafeBytes(of: id) { raw in
            ObjectKey(a: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self), b: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                      c: raw.loadUnaligned(fromByteOffset: 16, as: UInt32.self))
        }
    }
}

enum GitDiff {
    /// Deltas of `diff` that add content, with their added line numbers (new side). Without
    /// `patches` (history mode, diffs without rename detection), every delta is ``GitDelta/pending``
    /// except new files in commits that delete none (they cannot be renames): building a patch and
    /// finding renames read and compare blobs, which history mode only needs for the few blobs with
    /// findings.
    static func deltas(_ diff: OpaquePointer, patches: Bool = true) -> [GitDelta] {
        var out: [GitDelta] = []
        let count = git_diff_num_deltas(diff)
        let deletes = (0..<count).contains { git_diff_get_delta(diff, $0)?.pointee.status == GIT_DELTA_DELETED }
        for i in 0..<count {
            guard let delta = git_diff_get_delta(diff, i) else { continue }
            let status = delta.pointee.status
            guard status == GIT_DELTA_ADDED || status == GIT_DELTA_MODIFIED || status == GIT_DELTA_RENAMED
                || status == GIT_DELTA_COPIED || status == GIT_DELTA_TYPECHANGE else { continue }
            let newFile = delta.pointee.new_file
            if newFile.mode == UInt16(GIT_FILEMODE_COMMIT.rawValue) || newFile.mode == UInt16(GIT_FILEMODE_LINK.rawValue) { continue }
            let path = newFile.path.map { String(cString: $0) } ?? ""
            if status == GIT_DELTA_ADDED {
                // A new file: every line is added, no need to build its patch (unless, in a diff
                // without rename detection, it may be the new name of a deleted file).
                out.append(GitDelta(path: path, blob: newFile.id, addedLines: nil, binary: false, pending: !patches && deletes))
                continue
            }
            if delta.pointee.old_file.id.key == newFile.id.key { continue }  // a pure rename or mode change adds nothing
            guard patches else {
                let sameFile = status == GIT_DELTA_MODIFIED
                out.append(GitDelta(path: path, blob: newFile.id, addedLines: [], binary: false, pending: true,
                                    oldBlob: sameFile ? delta.pointee.old_file.id : nil))
                continue
            }
            guard let (added, binary) = addedLines(diff, i) else { continue }
            if added.isEmpty && !binary { continue }
            out.append(GitDelta(path: path, blob: newFile.id, addedLines: added, binary: binary))
        }
        return out
    }

    /// The added line ranges (new side) of delta `index` of `diff`, and whether git sees it as binary.
    static func addedLines(_ diff: OpaquePointer, _ index: Int) -> ([ClosedRange<Int>], Bool)? {
        var patch: OpaquePointer?
        guard git_patch_from_diff(&patch, diff, index) == 0, let patch else { return nil }
        defer { git_patch_free(patch) }
        return addedLines(patch)
    }

    /// The added line ranges (new side) from blob `old` to blob `new` of `path`, and whether git
    /// sees them as binary. With `spans` (the line hashes of each finding of `new`, see
    /// ``LineHashes``): `nil` ranges — everything counts — without a patch when every finding has
    /// a line `old` does not have.
    static func addedLines(_ repo: GitRepository, from old: git_oid, to new: git_oid, path: String,
                           unlessEveryFindingIsNew spans: [[UInt64]]? = nil) -> (added: [ClosedRange<Int>]?, binary: Bool)? {
        var oldID = old, newID = new
        var oldBlob: OpaquePointer?, newBlob: OpaquePointer?
        guard git_blob_lookup(&oldBlob, repo.pointer, &oldID) == 0, let oldBlob else { return nil }
        defer { git_blob_free(oldBlob) }
        if let spans {
            let raw = UnsafeRawBufferPointer(start: git_blob_rawcontent(oldBlob), count: Int(git_blob_rawsize(oldBlob)))
            if LineHashes.everySpanHasALineNotIn(LineHashes.lines(of: raw), spans) { return (nil, false) }
        }
        guard git_blob_lookup(&newBlob, repo.pointer, &newID) == 0, let newBlob else { return nil }
        defer { git_blob_free(newBlob) }
        var opts = options()
        var patch: OpaquePointer?
        guard git_patch_from_blobs(&patch, oldBlob, path, newBlob, path, &opts) == 0, let patch else { return nil }
        defer { git_patch_free(patch) }
        let (added, binary) = addedLines(patch)
        return (added, binary)
    }

    /// The added line ranges (new side) of `patch`, and whether git sees it as binary.
    static func addedLines(_ patch: OpaquePointer) -> ([ClosedRange<Int>], Bool) {
        let binary = (git_patch_get_delta(patch).pointee.flags & UInt32(GIT_DIFF_FLAG_BINARY.rawValue)) != 0
        // With zero context lines, the new side of every hunk consists of added lines only.
        var added: [ClosedRange<Int>] = []
        let hunks = git_patch_num_hunks(patch)
        for h in 0..<hunks {
            var hunk: UnsafePointer<git_diff_hunk>?
            guard git_patch_get_hunk(&hunk, nil, patch, h) == 0, let hunk else { continue }
            let start = Int(hunk.pointee.new_start), count = Int(hunk.pointee.new_lines)
            if count > 0 { added.append(start...(start + count - 1)) }
        }
        return (added, binary)
    }

    static func options() -> git_diff_options {
        var opts = git_diff_options()
        git_diff_options_init(&opts, UInt32(GIT_DIFF_OPTIONS_VERSION))
        opts.context_lines = 0
        opts.interhunk_lines = 0
        opts.flags |= UInt32(GIT_DIFF_IGNORE_SUBMODULES.rawValue)
        return opts
    }

    static func findRenames(_ diff: OpaquePointer) {
        var find = git_diff_find_options()
        git_diff_find_options_init(&find, UInt32(GIT_DIFF_FIND_OPTIONS_VERSION))
        find.flags = UInt32(GIT_DIFF_FIND_RENAMES.rawValue)
        _ = git_diff_find_similar(diff, &find)
    }
}
