import CGit2
import Foundation
import StepGuardTestSupport
import StepGuardSecretsTestSupport
import Testing
@testable import StepGuardSecrets

/// History mode reads objects from git's packs itself (``GitObjectStore``: `.idx` lookup, zlib or
/// libdeflate, offset and reference deltas, a delta-base cache) and asks libgit2 only when that
/// reader gives up. Made-up histories are stored every way git stores objects — loose, one pack
/// with offset deltas, one with reference deltas, a thin pack completed by `index-pack --fix-thin`
/// beside an older pack, a pack with newer loose objects — and every object must read the same as
/// through libgit2, and the history scan must find the same.
@Suite struct HistoryDirectReadTests {
    static let layouts = ["loose", "ofs-deltas", "ref-deltas", "thin-pack", "pack-and-loose"]

    /// A history with a file edited many times (long delta chains), a random history beside it
    /// (HistoryShortcutTests' generator: secrets added, moved, renamed, deleted, merged), stored as
    /// `layout` says.
    func repository(_ layout: String) throws -> TemporaryDirectory {
        let repo = try TemporaryDirectory()
        try HistoryShortcutTests().makeHistory(repo, seed: 22, steps: 25)
        var lines = (1...400).map { "line \($0) of a long changelog, long enough to be worth a delta" }
        func editChangelog(_ n: Int) throws {
            lines.insert("release \(n): GITHUB_TOKEN=\(Fake.githubPAT(UInt64(9000 + n)))", at: n % 7)
            lines[(n * 37) % lines.count] = "edited in release \(n)"
            try repo.write("History.md", lines.joined(separator: "\n") + "\n")
            try repo.commitAll("changelog \(n)")
        }
        for n in 0..<30 { try editChangelog(n) }
        switch layout {
        case "loose":
            break
        case "ofs-deltas":
            try repo.git("repack", "-adfq", "--depth=50", "--window=50")
        case "ref-deltas":
            try repo.git("-c", "repack.useDeltaBaseOffset=false", "repack", "-adfq", "--depth=50", "--window=50")
        case "thin-pack":
            // The older history in one pack; the newer commits as a thin pack (deltas against
            // objects of the older pack, by id), which `index-pack --fix-thin` completes by
            // appending the bases it needs: reference deltas whose base comes after them.
            try repo.git("repack", "-adq")
            let old = try repo.git("rev-parse", "HEAD").trimmingCharacters(in: .whitespacesAndNewlines)
            for n in 30..<45 { try editChangelog(n) }
            let made = try ProgramRun.run("/bin/sh", ["-c", "printf 'HEAD\\n^\(old)\\n' | git pack-objects -q --revs --thin --stdout > thin.pack && git index-pack --fix-thin --stdin < thin.pack > /dev/null && rm thin.pack && git prune-packed"], in: repo.url)
            guard made.status == 0 else { throw TestSupportError.commandFailed("thin pack", made) }
        default:  // pack-and-loose
            try repo.git("repack", "-adq")
            for n in 30..<40 { try editChangelog(n) }
        }
        return repo
    }

    /// Every object id in the repository (packed or loose).
    func objects(_ repo: TemporaryDirectory) throws -> [String] {
        try repo.git("cat-file", "--batch-all-objects", "--batch-check=%(objectname)").split(separator: "\n").map(String.init)
    }

    @Test(arguments: layouts)
    func everyObjectReadsAsThroughLibgit2(_ layout: String) throws {
        let repo = try repository(layout); defer { repo.remove() }
        let ids = try objects(repo)
        #expect(ids.count > 100)
        if layout != "loose" {
            // Deltas are there to resolve: git reports chains.
            let packs = try FileManager.default.contentsOfDirectory(atPath: repo.path + "/.git/objects/pack").filter { $0.hasSuffix(".idx") }
            let verified = try packs.map { try repo.git("verify-pack", "-v", ".git/objects/pack/" + $0) }.joined()
            #expect(verified.contains("chain length = 5"), "\(layout): no delta chains in \(verified.suffix(300))")
            if layout == "thin-pack" { #expect(packs.count == 2) }
        }
        let libgit2 = try GitRepository(path: repo.path)
        let gitDirectory = repo.path + "/.git"
        // libdeflate (when the system has it) and zlib; a cache large enough for every base, and none.
        let stores = [GitObjectStore(commonDirectory: gitDirectory, cacheBudget: 32 << 20),
                      GitObjectStore(commonDirectory: gitDirectory, cacheBudget: 0, libdeflate: false)]
        for hex in ids {
            let id = try #require(GitObjectStore.id(hex: hex))
            var oid = git_oid()
            withUnsafeMutableBytes(of: &oid.id) { $0.copyBytes(from: id) }
            var expected: (type: Int, data: [UInt8])?
            for type in [GIT_OBJECT_COMMIT, GIT_OBJECT_TREE, GIT_OBJECT_BLOB, GIT_OBJECT_TAG] where expected == nil {
                if let data = libgit2.withRawObject(oid, type: type, { Array($0) }) { expected = (Int(type.rawValue), data) }
            }
            for store in stores {
                let direct = try store.read(id)
                #expect(direct.type.rawValue == expected?.type && direct.data == expected?.data, "\(layout): \(hex) reads differently")
            }
        }
    }

    /// The same history scanned with direct reads and with libgit2's: same findings, same blobs.
    @Test(arguments: layouts)
    func historyFindsTheSameEitherWay(_ layout: String) throws {
        let repo = try repository(layout); defer { repo.remove() }
        var throughLibgit2 = try scanner()
        throughLibgit2.options.directObjectReads = false
        let before = try throughLibgit2.scanHistory(repository: repo.path)
        let after = try scanner().scanHistory(repository: repo.path)
        func seen(_ r: ScanReport) -> [String] { r.findings.map { "\($0.ruleID) \($0.path):\($0.line)-\($0.endLine) \($0.commit ?? "") \($0.fingerprint)" }.sorted() }
        #expect(before.findings.count > 30)
        #expect(seen(after) == seen(before))
        #expect(after.suppressed == before.suppressed)
        #expect(after.scannedFiles == before.scannedFiles && after.scannedBytes == before.scannedBytes)
    }

    /// What the direct reader cannot find or decode is read by libgit2: objects in an alternate
    /// store (`clone --shared`), a loose object that is not zlib; an object neither can read is
    /// an error, never a skipped blob.
    @Test func whatTheDirectReaderCannotReadGoesToLibgit2OrFails() throws {
        let origin = try repository("ofs-deltas"); defer { origin.remove() }
        let top = try TemporaryDirectory(); defer { top.remove() }
        try top.git("clone", "-q", "--shared", origin.path, "shared")
        let shared = TemporaryDirectory(existing: top.url.appendingPathComponent("shared"))
        let expected = try scanner().scanHistory(repository: origin.path).findings.count
        #expect(try scanner().scanHistory(repository: shared.path).findings.count == expected)

        // A packed blob with a secret, damaged in the middle of its compressed data.
        let id = try origin.git("rev-parse", "HEAD:History.md").trimmingCharacters(in: .whitespacesAndNewlines)
        try PackDamage.damage(id, in: origin)
        #expect(throws: SecretsError.self) { try scanner().scanHistory(repository: origin.path) }
        var throughLibgit2 = try scanner()
        throughLibgit2.options.directObjectReads = false
        #expect(throws: SecretsError.self) { try throughLibgit2.scanHistory(repository: origin.path) }
    }

    /// libdeflate and zlib agree on a stream, and both refuse one that is longer or shorter than
    /// announced or whose checksum is wrong.
    @Test func bothInflatersCheckSizeAndChecksum() throws {
        let repo = try repository("loose"); defer { repo.remove() }
        let gitDirectory = repo.path + "/.git"
        let withLibdeflate = GitObjectStore(commonDirectory: gitDirectory, cacheBudget: 0)
        let withZlib = GitObjectStore(commonDirectory: gitDirectory, cacheBudget: 0, libdeflate: false)
        #expect(!withZlib.usesLibdeflate)
        let text = Array(String(repeating: "stepguard reads packs\n", count: 50).utf8)
        let compressed = try ProgramRun.run("/usr/bin/env", ["python3", "-c", "import sys, zlib; print(zlib.compress(sys.stdin.read().encode()).hex())"],
                                            in: repo.url, stdin: String(decoding: text, as: UTF8.self))
        var hex = Array(compressed.stdout.trimmingCharacters(in: .whitespacesAndNewlines).utf8)
        #expect(compressed.status == 0 && hex.count > 8)
        var stream: [UInt8] = []
        while hex.count >= 2 {
            stream.append(UInt8(String(decoding: hex[0..<2], as: UTF8.self), radix: 16)!)
            hex.removeFirst(2)
        }
        var corrupt = stream
        corrupt[corrupt.count - 1] ^= 1  // the Adler-32 trailer
        for store in [withLibdeflate, withZlib] {
            stream.withUnsafeBytes { raw in
                #expect(store.inflateExactly(raw, size: text.count) == text)
                #expect(store.inflateExactly(raw, size: text.count - 1) == nil)
                #expect(store.inflateExactly(raw, size: text.count + 1) == nil)
            }
            corrupt.withUnsafeBytes { raw in #expect(store.inflateExactly(raw, size: text.count) == nil) }
        }
    }
}
