import CGit2
#if canImport(Glibc)
import Glibc
#endif

/// A file chosen for scanning: where to read it and how to name it in findings.
struct FileEntry: Sendable {
    /// Path to open.
    var openPath: String
    /// Path shown in findings (as the user named it, relative where possible).
    var displayPath: String
}

/// Walks files and directories: honours `.gitignore` inside a git work tree (through libgit2),
/// never descends into `.git`, and never follows a symbolic link out of the scanned tree.
struct FileWalker {
    var respectGitignore = true

    struct Result {
        var files: [FileEntry] = []
        var skippedSymlinks = 0
    }

    /// Lists the files under `paths` (files or directories).
    func walk(_ paths: [String]) throws -> Result {
        var result = Result()
        for path in paths {
            guard let real = realpath(path, nil) else {
                throw SecretsError(.unreadable, "\(path): cannot open (\(String(cString: strerror(errno)))); check the path exists and is readable")
            }
            let root = String(cString: real)
            free(real)
            var st = stat()
            guard stat(root, &st) == 0 else {
                throw SecretsError(.unreadable, "\(path): cannot stat; check permissions")
            }
            let prefix = (path == "." || path == "./") ? "" : (path.hasSuffix("/") ? path : path + "/")
            if (st.st_mode & S_IFMT) == S_IFREG {
                result.files.append(FileEntry(openPath: root, displayPath: path))
                continue
            }
            let ignore = respectGitignore ? try GitIgnoreChecker(directory: root) : nil
            walkDirectory(root: root, relative: "", prefix: prefix, ignore: ignore, into: &result)
        }
        return result
    }

    private func walkDirectory(root: String, relative: String, prefix: String, ignore: GitIgnoreChecker?, into result: inout Result) {
        let dirPath = relative.isEmpty ? root : root + "/" + relative
        guard let dir = opendir(dirPath) else { return }
        defer { closedir(dir) }
        var subdirs: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name == "." || name == ".." || name == ".git" { continue }
            let rel = relative.isEmpty ? name : relative + "/" + name
            let full = root + "/" + rel
            var type = entry.pointee.d_type
            if type == UInt8(DT_UNKNOWN) {
                var st = stat()
                if lstat(full, &st) == 0 {
                    switch st.st_mode & S_IFMT {
                    case S_IFDIR: type = UInt8(DT_DIR)
                    case S_IFREG: type = UInt8(DT_REG)
                    case S_IFLNK: type = UInt8(DT_LNK)
                    default: continue
                    }
                }
            }
            switch Int32(type) {
            case Int32(DT_DIR):
                if let ignore, ignore.isIgnored(rel, directory: true) { continue }
                subdirs.append(rel)
            case Int32(DT_REG):
                if let ignore, ignore.isIgnored(rel, directory: false) { continue }
                result.files.append(FileEntry(openPath: full, displayPath: prefix + rel))
            case Int32(DT_LNK):
                if let ignore, ignore.isIgnored(rel, directory: false) { continue }
                guard let target = realpath(full, nil) else { result.skippedSymlinks += 1; continue }
                let resolved = String(cString: target)
                free(target)
                var st = stat()
                guard resolved.hasPrefix(root + "/"), stat(resolved, &st) == 0 else { result.skippedSymlinks += 1; continue }
                // A link to a file inside the tree is scanned under the link's name; a link to a
                // directory inside the tree is not followed (its target is walked anyway).
                if (st.st_mode & S_IFMT) == S_IFREG {
                    result.files.append(FileEntry(openPath: resolved, displayPath: prefix + rel))
                }
            default:
                continue
            }
        }
        for sub in subdirs {
            walkDirectory(root: root, relative: sub, prefix: prefix, ignore: ignore, into: &result)
        }
    }
}

/// Asks libgit2 whether a path is ignored by the `.gitignore` files (and info/exclude) of the
/// work tree that contains the scanned directory.
final class GitIgnoreChecker {
    private let repo: OpaquePointer
    /// Path of the scanned directory relative to the work tree root ("" or "sub/dir/").
    private let base: String

    /// Nil when `directory` is not inside a git work tree (then libgit2 is not needed, nor loaded);
    /// throws when it is and libgit2 cannot be loaded.
    init?(directory: String) throws(SecretsError) {
        guard Self.hasGitAbove(directory) else { return nil }
        try Git.initialize()
        var repo: OpaquePointer?
        guard git_repository_open_ext(&repo, directory, 0, nil) == 0, let repo else { return nil }
        guard let workdirC = git_repository_workdir(repo) else {
            git_repository_free(repo)
            return nil
        }
        var workdir = String(cString: workdirC)
        if let real = realpath(workdir, nil) {
            workdir = String(cString: real) + "/"
            free(real)
        }
        self.repo = repo
        if directory + "/" == workdir {
            base = ""
        } else if directory.hasPrefix(workdir) {
            base = String(directory.dropFirst(workdir.count)) + "/"
        } else {
            base = ""
        }
    }

    deinit { git_repository_free(repo) }

    /// Whether `directory` or one of its parents holds `.git` (a directory, or a file as in
    /// worktrees and submodules): the only case where there are ignore rules to ask libgit2 about.
    static func hasGitAbove(_ directory: String) -> Bool {
        var path = directory
        while true {
            if access(path + "/.git", F_OK) == 0 { return true }
            guard let slash = path.lastIndex(of: "/"), path != "/" else { return false }
            path = slash == path.startIndex ? "/" : String(path[..<slash])
        }
    }

    func isIgnored(_ relative: String, directory: Bool) -> Bool {
        var ignored: Int32 = 0
        let path = base + relative + (directory ? "/" : "")
        guard git_ignore_path_is_ignored(&ignored, repo, path) == 0 else { return false }
        return ignored != 0
    }
}

/// One-time libgit2 set-up: loads the library (it is not linked, see CGit2) and configures it.
public enum Git {
    private static let loadError: String? = {
        var message: UnsafePointer<CChar>?
        guard sg_git2_load(&message) == 0 else { return message.map { String(cString: $0) } ?? "cannot load libgit2" }
        git_libgit2_init()
        // The scanner only reads: skip re-hashing every object it inflates (collision-detecting
        // SHA-1 is slow). A corrupt object is then scanned as it is instead of failing the read.
        _ = sg_git_opts_int(Int32(GIT_OPT_ENABLE_STRICT_HASH_VERIFICATION.rawValue), 0)
        return nil
    }()

    /// Loads and configures libgit2 once; throws when the library cannot be loaded.
    static func initialize() throws(SecretsError) {
        if let loadError { throw SecretsError(.git, "reading git repositories needs libgit2: \(loadError)") }
    }

    /// The loaded libgit2's soname and version (`libgit2.so.1.5, version 1.5.1`); throws when it
    /// cannot be loaded.
    public static func libraryVersion() throws(SecretsError) -> String {
        try initialize()
        var (major, minor, revision): (Int32, Int32, Int32) = (0, 0, 0)
        git_libgit2_version(&major, &minor, &revision)
        return "libgit2.so.\(major).\(minor), version \(major).\(minor).\(revision)"
    }

    /// The last libgit2 error message, for error reports.
    static func lastError() -> String {
        guard let e = git_error_last(), let m = e.pointee.message else { return "unknown libgit2 error" }
        return String(cString: m)
    }
}
