import Foundation
import StepGuardSecrets
import StepGuardSecretsTestSupport
import StepGuardTestSupport
import Testing

/// `scan --staged` through the built binary when what it reads is damaged, foreign or binary to
/// git: an error (exit 2) or a finding, never a clean exit (issue #22; the direct reader's unit
/// tests are StagedDirectTests).
@Suite struct StagedIntegrityTests {
    @Test(arguments: ["flip", "truncate", "mandatory-extension", "empty"])
    func anIndexThatCannotBeReadIsAnErrorNeverClean(_ damage: String) throws {
        let repo = try StagedRepositories.leaking(); defer { repo.remove() }
        let indexPath = repo.path + "/.git/index"
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: indexPath)))
        switch damage {
        case "flip": bytes[40] ^= 0x55  // inside the first entry: the checksum no longer matches
        case "truncate": bytes.removeLast(bytes.count / 2)
        case "empty": bytes = []
        default:
            // A required extension (lower-case signature) neither reader knows, with a valid checksum.
            bytes.removeLast(20)
            bytes += Array("zzzz".utf8) + [0, 0, 0, 0]
            let tmp = repo.path + "/.git/index.body"
            try Data(bytes).write(to: URL(fileURLWithPath: tmp))
            let sum = try ProgramRun.run("/usr/bin/env", ["python3", "-c", "import hashlib; print(hashlib.sha1(open('\(tmp)','rb').read()).hexdigest(), end='')"], in: repo.url)
            let hex = Array(sum.stdout.utf8)
            bytes += stride(from: 0, to: hex.count - 1, by: 2).compactMap { UInt8(String(decoding: hex[$0...$0 + 1], as: UTF8.self), radix: 16) }
        }
        try Data(bytes).write(to: URL(fileURLWithPath: indexPath))
        let r = try ProgramRun.run(StepGuardBinary.path, ["scan", "--staged"], in: repo.url)
        #expect(r.status == 2, "\(damage): \(r.status) \(r.stdout) \(r.stderr)")
    }

    /// A staged blob whose object is damaged (a size no content backs, or garbage): an error that names the file.
    @Test(arguments: ["huge-size", "garbage"])
    func aDamagedStagedObjectIsAnErrorNeverClean(_ damage: String) throws {
        let repo = try StagedRepositories.leaking(); defer { repo.remove() }
        try StagedRepositories.damageObject(of: "leak.env", in: repo, damage)
        let r = try ProgramRun.run(StepGuardBinary.path, ["scan", "--staged"], in: repo.url)
        #expect(r.status == 2, "\(damage): \(r.status) \(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("leak.env"), "\(r.stderr)")
    }

    /// As `nobody`: another user's repository is refused as libgit2 refuses it (safe.directory),
    /// never read directly; the user's own repository is read and its secret found.
    @Test(.enabled(if: geteuid() == 0, "needs root to switch to nobody"))
    func asAnotherUserTheRepositoryOwnerDecides() throws {
        let repo = try StagedRepositories.leaking(); defer { repo.remove() }
        chmod(repo.path, 0o755)
        let asNobody = StepGuardBinary.asNobody + ["/usr/bin/env", "HOME=/nonexistent", StepGuardBinary.path, "scan", "--staged", "--repo", repo.path]
        let refused = try ProgramRun.run("/usr/bin/setpriv", asNobody, in: repo.url)
        #expect(refused.status == 2, "\(refused.status) \(refused.stdout) \(refused.stderr)")
        #expect(try ProgramRun.run("/usr/bin/chown", ["-R", "nobody:nogroup", repo.path], in: repo.url).status == 0)
        let own = try ProgramRun.run("/usr/bin/setpriv", asNobody, in: repo.url)
        #expect(own.status == 1, "\(own.status) \(own.stdout) \(own.stderr)")
        #expect(own.stdout.contains("github-pat-classic"), "\(own.stdout)")
    }

    /// A text file replacing a binary one, and a text file git is told to diff as binary: the new
    /// content counts whole, it is not skipped.
    @Test(arguments: ["binary-before", "attribute"])
    func aChangeGitCallsBinaryIsStillScanned(_ how: String) throws {
        let repo = try StagedRepositories.committed(); defer { repo.remove() }
        try StagedRepositories.stageBinaryChange(in: repo, how, secret: Fake.githubPAT(121))
        let r = try ProgramRun.run(StepGuardBinary.path, ["scan", "--staged"], in: repo.url)
        #expect(r.status == 1, "\(how): \(r.status) \(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("github-pat-classic"), "\(r.stdout)")
    }
}
