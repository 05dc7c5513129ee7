import FoundationEssentials
import StepGuardCore
#if canImport(Glibc)
import Glibc
#endif

/// Why the direct reader of git's files gave up: the caller then uses libgit2, which reads more
/// formats. Never a reason to scan less.
struct GitDirectUnsupported: Error {
    let reason: String
    /// The objects themselves are damaged in a way libgit2 cannot read either, and would not stop
    /// on (a delta chain that loops): the caller reports the object unreadable instead of asking it.
    let damaged: Bool
    init(_ reason: String, damaged: Bool = false) { (self.reason, self.damaged) = (reason, damaged) }
}

/// The files of a repository as git lays them out: the git directory (HEAD, index; a worktree's
/// own) and the common directory (objects, refs, config; the main repository's for a worktree).
/// Found as `git_repository_open_ext(path, 0)` finds them; anything unusual is unsupported.
struct GitLayout {
    /// The git directory, without a trailing slash.
    let gitDirectory: String
    /// The directory with objects, refs and config (the git directory unless it names a `commondir`).
    let commonDirectory: String

    /// Finds the repository containing `path`, searching parent directories like libgit2;
    /// `environment` gives the user's configuration files (`HOME`, `XDG_CONFIG_HOME`).
    static func discover(_ path: String, environment: [String: String]) throws(GitDirectUnsupported) -> GitLayout {
        guard let resolved = realpath(path, nil) else { throw GitDirectUnsupported("\(path) cannot be resolved") }
        var directory = String(cString: resolved)
        free(resolved)
        var device: dev_t?
        // Like libgit2 without GIT_REPOSITORY_OPEN_CROSS_FS: the search stays on one filesystem.
        func sameDevice(_ info: stat) -> Bool {
            if device == nil { device = info.st_dev }
            return device == info.st_dev
        }
        while true {
            let dotGit = directory == "/" ? "/.git" : directory + "/.git"
            var info = stat()
            if stat(dotGit, &info) == 0 {
                guard sameDevice(info) else { throw GitDirectUnsupported("\(dotGit) is on another filesystem") }
                if info.st_mode & S_IFMT == S_IFDIR, isGitDirectory(dotGit) {
                    return try layout(dotGit, workTree: directory, environment: environment)
                }
                if info.st_mode & S_IFMT == S_IFREG {
                    // A worktree or submodule: `.git` is a file naming the git directory.
                    guard let text = readFile(dotGit).map({ String(decoding: $0, as: UTF8.self) }),
                          text.hasPrefix("gitdir: ") else { throw GitDirectUnsupported("\(dotGit) is not a gitdir link") }
                    var target = String(text.dropFirst(8)).trimming(charactersIn: "\n\r")
                    if !target.hasPrefix("/") { target = directory + "/" + target }
                    guard isGitDirectory(target) else { throw GitDirectUnsupported("\(dotGit) names no git directory") }
                    return try layout(target, workTree: directory, environment: environment)
                }
            }
            if stat(directory, &info) == 0, !sameDevice(info) { throw GitDirectUnsupported("\(directory) is on another filesystem") }
            if isGitDirectory(directory) { return try layout(directory, workTree: nil, environment: environment) }
            guard directory != "/", let slash = directory.lastIndex(of: "/") else {
                throw GitDirectUnsupported("no repository above \(path)")
            }
            directory = slash == directory.startIndex ? "/" : String(directory[..<slash])
        }
    }

    /// Whether `path` holds HEAD, objects and refs (objects and refs through `commondir`).
    private static func isGitDirectory(_ path: String) -> Bool {
        let common = commonDirectory(of: path)
        return access(path + "/HEAD", R_OK) == 0 && access(common + "/objects", X_OK) == 0 && access(common + "/refs", X_OK) == 0
    }

    /// The common directory of `gitDirectory`: the one its `commondir` file names, or itself.
    static func commonDirectory(of gitDirectory: String) -> String {
        guard let bytes = readFile(gitDirectory + "/commondir") else { return gitDirectory }
        let named = String(decoding: bytes, as: UTF8.self).trimming(charactersIn: "\n\r")
        return named.hasPrefix("/") ? named : gitDirectory + "/" + named
    }

    private static func layout(_ gitDirectory: String, workTree: String?, environment: [String: String]) throws(GitDirectUnsupported) -> GitLayout {
        let common = commonDirectory(of: gitDirectory)
        // libgit2 refuses repositories another user owns (safe.directory); so does this reader,
        // leaving that decision to libgit2.
        for owned in [gitDirectory, common] + (workTree.map { [$0] } ?? []) {
            var info = stat()
            guard stat(owned, &info) == 0, info.st_uid == geteuid() else { throw GitDirectUnsupported("\(owned) is not owned by this user") }
        }
        // Repository extensions (SHA-256 objects, reftable, per-worktree config, partial clones)
        // and included configuration files: libgit2 decides.
        // Only `extensions.worktreeConfig` (which a sparse index sets) is understood: the reader
        // needs no configuration but what is checked below.
        guard let config = readFile(common + "/config") else { throw GitDirectUnsupported("no readable \(common)/config") }
        let repositoryConfig = String(decoding: config, as: UTF8.self).lowercased()
        var section = ""
        for line in repositoryConfig.split(whereSeparator: \.isNewline) {
            let text = line.trimmingWhitespace()
            if text.hasPrefix("[") {
                section = text
                if section.hasPrefix("[include") { throw GitDirectUnsupported("the repository's config includes other files") }
            } else if section.hasPrefix("[extensions"), !text.isEmpty, !text.hasPrefix("#"), !text.hasPrefix(";") {
                let key = text.split(separator: "=", maxSplits: 1).first.map { $0.trimmingWhitespace() } ?? text
                guard key == "worktreeconfig" else { throw GitDirectUnsupported("the repository uses extensions.\(key)") }
            }
        }
        // Case-insensitive path comparison (at any configuration level libgit2 reads) changes how
        // its diff pairs and orders paths.
        let home = environment["HOME"] ?? ""
        let xdg = environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? home + "/.config"
        let worktreeConfigs = gitDirectory == common ? [common + "/config.worktree"] : [gitDirectory + "/config.worktree", common + "/config.worktree"]
        for file in [common + "/config", home + "/.gitconfig", xdg + "/git/config", "/etc/gitconfig"] + worktreeConfigs {
            guard let text = file == common + "/config" ? repositoryConfig
                    : readFile(file).map({ String(decoding: $0, as: UTF8.self).lowercased() }) else { continue }
            if text.contains("ignorecase") || text.contains("precomposeunicode") {
                throw GitDirectUnsupported("\(file) sets core.ignoreCase or core.precomposeUnicode")
            }
        }
        return GitLayout(gitDirectory: gitDirectory, commonDirectory: common)
    }

    /// The tree of the commit HEAD names; nil when HEAD's branch does not exist yet (an unborn branch).
    func headTree(_ store: GitObjectStore) throws(GitDirectUnsupported) -> [UInt8]? {
        var name = "HEAD"
        for _ in 0..<8 {
            let value: String
            // HEAD and the per-worktree refs live in the git directory, the others in the common one.
            let perWorktree = name == "HEAD" || ["refs/bisect/", "refs/worktree/", "refs/rewritten/"].contains { name.hasPrefix($0) }
            if let bytes = readFile((perWorktree ? gitDirectory : commonDirectory) + "/" + name) {
                value = String(decoding: bytes, as: UTF8.self).trimming(charactersIn: "\n\r ")
            } else if name == "HEAD" {
                throw GitDirectUnsupported("no HEAD")
            } else if let packed = try packedRef(name) {
                value = packed
            } else {
                return nil  // an unborn branch: the first commit
            }
            if value.hasPrefix("ref: ") {
                name = String(value.dropFirst(5))
                guard name.hasPrefix("refs/"), !name.contains("..") else { throw GitDirectUnsupported("HEAD names `\(name)`") }
                continue
            }
            guard let commitID = GitObjectStore.id(hex: value) else { throw GitDirectUnsupported("\(name) holds `\(value.prefix(50))`") }
            let commit = try store.read(commitID)
            guard commit.type == .commit, commit.data.starts(with: Array("tree ".utf8)), commit.data.count >= 45,
                  let tree = GitObjectStore.id(hex: String(decoding: commit.data[5..<45], as: UTF8.self)) else {
                throw GitDirectUnsupported("HEAD is not a commit with a tree")
            }
            return tree
        }
        throw GitDirectUnsupported("HEAD's symbolic references nest too deep")
    }

    private func packedRef(_ name: String) throws(GitDirectUnsupported) -> String? {
        Self.packedRefs(commonDirectory).first { $0.name == name }.map { String($0.id) }
    }

    /// The refs listed in `packed-refs` of common directory `common` (peeled `^` lines left out).
    static func packedRefs(_ common: String) -> [(name: Substring, id: Substring)] {
        guard let bytes = readFile(common + "/packed-refs") else { return [] }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap { line in
            guard !line.hasPrefix("#"), !line.hasPrefix("^") else { return nil }
            let parts = line.split(separator: " ", maxSplits: 1)
            return parts.count == 2 ? (parts[1], parts[0]) : nil
        }
    }

    /// The names of every branch and tag (loose files and `packed-refs`) of common directory `common`.
    static func branchesAndTags(_ common: String) -> [String] {
        var names: [String] = []
        for top in ["refs/heads", "refs/tags"] {
            guard let files = try? FileManager.default.subpathsOfDirectory(atPath: common + "/" + top) else { continue }
            for file in files {
                var isDirectory = false
                if FileManager.default.fileExists(atPath: common + "/" + top + "/" + file, isDirectory: &isDirectory), !isDirectory {
                    names.append(top + "/" + file)
                }
            }
        }
        for ref in packedRefs(common) where ref.name.hasPrefix("refs/heads/") || ref.name.hasPrefix("refs/tags/") {
            names.append(String(ref.name))
        }
        return names
    }
}

/// Reads a whole file; nil when it cannot be opened or read.
func readFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return nil }
    let size = Int(info.st_size)
    var bytes = [UInt8](repeating: 0, count: size)
    var done = 0
    let ok = bytes.withUnsafeMutableBytes { buffer -> Bool in
        while done < size {
            let n = read(fd, buffer.baseAddress! + done, size - done)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            done += n
        }
        return true
    }
    return ok ? bytes : nil
}
