import Foundation

/// A fresh private directory under the system temp directory, removed by ``remove()``.
public struct TemporaryDirectory: Sendable {
    public let url: URL
    public var path: String { url.path }

    public init(prefix: String = "stepguard-test") throws {
        var template = Array((NSTemporaryDirectory() + "/\(prefix)-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw TestSupportError.timedOut("mkdtemp", 0) }
        url = URL(fileURLWithPath: String(cString: made), isDirectory: true).resolvingSymlinksInPath()
    }

    /// An existing directory (e.g. a git worktree made inside another one), used with the same
    /// helpers; ``remove()`` removes it.
    public init(existing url: URL) {
        self.url = url
    }

    /// Writes `contents` to `relativePath`, creating parent directories, and returns the full path.
    @discardableResult
    public func write(_ relativePath: String, _ contents: String, mode: Int? = nil) throws -> String {
        let file = url.appendingPathComponent(relativePath)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(contents.utf8).write(to: file)
        if let mode { try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: file.path) }
        return file.path
    }

    /// Writes `bytes` to `relativePath`, creating parent directories.
    public func write(_ relativePath: String, bytes: [UInt8]) throws {
        let file = url.appendingPathComponent(relativePath)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: file)
    }

    /// Runs `git` in this directory with a fixed identity, no signing and no system or user
    /// configuration; throws with its stderr when it fails. Returns stdout.
    @discardableResult
    public func git(_ arguments: String...) throws -> String {
        try git(arguments)
    }

    /// ``git(_:)-(String...)`` with the arguments in an array.
    @discardableResult
    public func git(_ arguments: [String]) throws -> String {
        let fixed = ["git", "-c", "user.name=Test Author", "-c", "user.email=author@test.invalid",
                     "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"]
        let result = try ProgramRun.run("/usr/bin/env", fixed + arguments, in: url)
        guard result.status == 0 else { throw TestSupportError.commandFailed("git \(arguments.joined(separator: " "))", result) }
        return result.stdout
    }

    /// `git init` in this directory (see ``git(_:)`` for the configuration it runs with).
    public func initRepo() throws {
        try git("init", "-q")
    }

    /// Stages everything in the work tree and commits it with `message`.
    public func commitAll(_ message: String) throws {
        try git("add", ".")
        try git("commit", "-qm", message)
    }

    /// Reads a file under the directory as text.
    public func read(_ relativePath: String) throws -> String {
        try String(contentsOf: url.appendingPathComponent(relativePath), encoding: .utf8)
    }

    /// The full path of `relativePath`.
    public func path(_ relativePath: String) -> String { url.appendingPathComponent(relativePath).path }

    public func remove() { try? FileManager.default.removeItem(at: url) }
}

/// A real git repository made by a test through the `git` command line.
public struct GitRepository: Sendable {
    public let directory: TemporaryDirectory
    public var path: String { directory.path }

    /// `git init` in a new temporary directory (see ``TemporaryDirectory/git(_:)-(String...)``
    /// for the identity and configuration git runs with).
    public init() throws {
        directory = try TemporaryDirectory(prefix: "stepguard-repo")
        try directory.initRepo()
    }

    /// Runs `git` in the repository; throws with its stderr when it fails. Returns stdout.
    @discardableResult
    public func git(_ arguments: String...) throws -> String {
        try directory.git(arguments)
    }

    /// Writes a file in the work tree.
    @discardableResult
    public func write(_ relativePath: String, _ contents: String) throws -> String {
        try directory.write(relativePath, contents)
    }

    /// Writes, stages and commits one file; returns the new commit id.
    @discardableResult
    public func commit(_ relativePath: String, _ contents: String, message: String = "change") throws -> String {
        try write(relativePath, contents)
        try git("add", relativePath)
        try git("commit", "-q", "-m", message)
        return try git("rev-parse", "HEAD").trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
