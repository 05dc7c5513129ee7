import Foundation
import StepGuardTestSupport
import Testing
import StepGuardSecretsTestSupport

/// `scan --history` on repositories that are incomplete or damaged: what is there is scanned, and
/// what cannot be read is an error (exit 2), never a silently shorter scan.
@Suite struct HistoryIntegrityTests {
    /// A repository whose second commit adds a secret and whose third is clean.
    func source() throws -> TemporaryDirectory {
        let repo = try TemporaryDirectory()
        try repo.initRepo()
        try repo.write("README", "hello\n")
        try repo.git("add", ".")
        try repo.git("commit", "-qm", "init")
        try repo.write("deploy.env", "TOKEN=\(Fake.githubPAT(130))\n")
        try repo.git("add", ".")
        try repo.git("commit", "-qm", "secret")
        try repo.write("README", "hello again\n")
        try repo.git("commit", "-qam", "clean")
        return repo
    }

    /// CI checkouts are shallow (`actions/checkout` fetches one commit): the boundary commit's
    /// parent is missing, and everything in it counts as added, as `git log -p` shows it.
    @Test(arguments: [1, 2])
    func aShallowCloneIsScannedUpToItsBoundary(_ depth: Int) throws {
        let origin = try source(); defer { origin.remove() }
        let top = try TemporaryDirectory(); defer { top.remove() }
        try top.git("clone", "-q", "--depth", String(depth), "file://" + origin.path, "shallow")
        let r = try ProgramRun.run(StepGuardBinary.path, ["scan", "--history", "--format", "json"], in: top.url.appendingPathComponent("shallow"))
        #expect(r.status == 1, "\(r.status) \(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("\"deploy.env\""), "\(r.stdout)")
        #expect(!r.stdout.contains(Fake.githubPAT(130)))
    }

    /// The blob with the secret packed (stepguard reads packs itself before asking libgit2) and
    /// damaged in the middle of its compressed data: an error naming it, not a clean history.
    @Test(arguments: ["ofs", "ref"])
    func aDamagedPackedBlobIsAnError(_ deltas: String) throws {
        let repo = try source(); defer { repo.remove() }
        try repo.git("-c", "repack.useDeltaBaseOffset=\(deltas == "ofs")", "repack", "-adfq")
        let id = try repo.git("rev-parse", "HEAD~1:deploy.env").trimmingCharacters(in: .whitespacesAndNewlines)
        let clean = try ProgramRun.run(StepGuardBinary.path, ["scan", "--history"], in: repo.url)
        #expect(clean.status == 1, "\(clean.status) \(clean.stdout) \(clean.stderr)")
        try PackDamage.damage(id, in: repo)
        let r = try ProgramRun.run(StepGuardBinary.path, ["scan", "--history"], in: repo.url)
        #expect(r.status == 2, "\(r.status) \(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains(id), "\(r.stderr)")
    }

    @Test func anUnreadableBlobInHistoryIsAnError() throws {
        let repo = try source(); defer { repo.remove() }
        let id = try repo.git("rev-parse", "HEAD~1:deploy.env").trimmingCharacters(in: .whitespacesAndNewlines)
        let object = repo.path + "/.git/objects/" + id.prefix(2) + "/" + id.dropFirst(2)
        #expect(unlink(object) == 0)
        let r = try ProgramRun.run(StepGuardBinary.path, ["scan", "--history"], in: repo.url)
        #expect(r.status == 2, "\(r.status) \(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains(id), "\(r.stderr)")
    }
}
