import Foundation
import StepGuardTestSupport

/// Repositories with staged changes for the `--staged` tests, shared by the unit tests of the
/// direct reader and the end-to-end tests of the binary's exit codes.
public enum StagedRepositories {
    /// A repository with a committed tree of `files` ordinary files in nested directories.
    public static func committed(_ files: Int = 30) throws -> TemporaryDirectory {
        let repo = try TemporaryDirectory()
        try repo.initRepo()
        for i in 0..<files {
            try repo.write("src/m\(i % 3)/d\(i % 5)/f\(i).txt", "ordinary line \(i)\nsecond line\n")
        }
        try repo.write("top.txt", "top\n")
        try repo.git("add", ".")
        try repo.git("commit", "-qm", "base")
        return repo
    }

    /// A committed repository with `leak.env` (a fake GitHub token) staged.
    public static func leaking() throws -> TemporaryDirectory {
        let repo = try committed()
        try repo.write("leak.env", "T=\(Fake.githubPAT(120))\n")
        try repo.git("add", ".")
        return repo
    }

    /// Damages the staged object of `path`: `huge-size` (a header claiming a size no content backs)
    /// or `garbage` (not zlib at all).
    public static func damageObject(of path: String, in repo: TemporaryDirectory, _ damage: String) throws {
        let id = try repo.git("rev-parse", ":\(path)").trimmingCharacters(in: .whitespacesAndNewlines)
        let object = repo.path + "/.git/objects/" + id.prefix(2) + "/" + id.dropFirst(2)
        let payload = damage == "huge-size" ? "zlib.compress(b'blob 99999999999\\x00T=x\\n')" : "b'not zlib at all'"
        let written = try ProgramRun.run("/usr/bin/env", ["python3", "-c", "import os, zlib; os.chmod('\(object)', 0o644); open('\(object)', 'wb').write(\(payload))"], in: repo.url)
        guard written.status == 0 else { throw TestSupportError.commandFailed("damaging \(object)", written) }
    }

    /// Commits `app.env` as something git diffs as binary (`binary-before`: binary bytes;
    /// `attribute`: a `-diff` attribute), then stages a text version carrying `secret`.
    public static func stageBinaryChange(in repo: TemporaryDirectory, _ how: String, secret: String) throws {
        if how == "attribute" {
            try repo.write(".gitattributes", "*.env -diff\n")
            try repo.write("app.env", "MODE=one\n")
        } else {
            try repo.write("app.env", bytes: [0x4d, 0x00, 0x01, 0x02, 0x0a])
        }
        try repo.git("add", ".")
        try repo.git("commit", "-qm", "before")
        try repo.write("app.env", "MODE=two\nTOKEN=\(secret)\n")
        try repo.git("add", ".")
    }
}
