import Foundation
import StepGuardTestSupport
import StepGuardSecretsTestSupport
import Testing
import StepGuardSecrets

/// `scan --staged` as git's pre-commit hook, with the commands that record a temporary index
/// (`GIT_INDEX_FILE`) instead of `.git/index`: `git commit -a` and `git commit FILE`.
@Suite struct StagedHookTests {
    /// A repository with one clean commit and stepguard as its pre-commit hook.
    func repository() throws -> TemporaryDirectory {
        let repo = try TemporaryDirectory()
        try repo.initRepo()
        try repo.write("app.env", "MODE=clean\n")
        try repo.commitAll("clean")
        try repo.write(".git/hooks/pre-commit", "#!/bin/sh\nexec '\(StepGuardBinary.path)' scan --staged\n")
        chmod(repo.path + "/.git/hooks/pre-commit", 0o755)
        return repo
    }

    func commits(_ repo: TemporaryDirectory) throws -> Int? {
        Int(try repo.git("rev-list", "--count", "HEAD").trimmingCharacters(in: .whitespacesAndNewlines))
    }

    @Test(arguments: [["commit", "-m", "leak", "app.env"], ["commit", "-a", "-m", "leak"], ["commit", "-m", "leak", "--include", "app.env"]])
    func aSecretCommittedThroughATemporaryIndexIsRefused(_ command: [String]) throws {
        let repo = try repository(); defer { repo.remove() }
        let secret = Fake.githubPAT(91)
        try repo.write("app.env", "MODE=clean\nTOKEN=\(secret)\n")  // in the work tree only: .git/index is clean
        let result = try ProgramRun.run("/usr/bin/env", ["git", "-c", "user.name=T", "-c", "user.email=t@test.invalid"] + command, in: repo.url)
        #expect(result.status != 0, "the commit went through: \(result.stdout) \(result.stderr)")
        #expect(result.stderr.contains("github-pat-classic") || result.stdout.contains("github-pat-classic"), "\(result.stdout) \(result.stderr)")
        #expect(!(result.stdout + result.stderr).contains(secret))
        #expect(try commits(repo) == 1)
    }

    @Test func aGitIndexFileThatIsNotThereIsAnError() throws {
        let repo = try repository(); defer { repo.remove() }
        let r = try ProgramRun.run(StepGuardBinary.path, ["scan", "--staged"], in: repo.url, environment: ["GIT_INDEX_FILE": repo.path + "/.git/no-such-index"])
        #expect(r.status == 2, "\(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("GIT_INDEX_FILE"))
    }

    /// `git --git-dir=REPO --work-tree=DIR commit`: the hook runs in DIR, which has no .git; git
    /// names the repository in GIT_DIR.
    @Test func aSeparateGitDirectoryIsFollowed() throws {
        let top = try TemporaryDirectory(); defer { top.remove() }
        let gitDir = top.path + "/cfg.git"
        try top.git("init", "-q", "--bare", gitDir)
        try top.write("wt/.keep", "")
        let git = ["git", "--git-dir=" + gitDir, "--work-tree=" + top.path + "/wt", "-c", "user.name=T", "-c", "user.email=t@test.invalid"]
        #expect(try ProgramRun.run("/usr/bin/env", git + ["commit", "-q", "--allow-empty", "-m", "init"], in: top.url).status == 0)
        try top.write("cfg.git/hooks/pre-commit", "#!/bin/sh\nexec '\(StepGuardBinary.path)' scan --staged\n")
        chmod(gitDir + "/hooks/pre-commit", 0o755)
        let secret = Fake.githubPAT(92)
        try top.write("wt/app.env", "TOKEN=\(secret)\n")
        #expect(try ProgramRun.run("/usr/bin/env", git + ["add", "app.env"], in: top.url).status == 0)
        let result = try ProgramRun.run("/usr/bin/env", git + ["commit", "-m", "leak"], in: top.url)
        #expect(result.status != 0, "the commit went through: \(result.stdout) \(result.stderr)")
        #expect((result.stdout + result.stderr).contains("github-pat-classic"), "\(result.stdout) \(result.stderr)")
        #expect(!(result.stdout + result.stderr).contains(secret))
    }
}
