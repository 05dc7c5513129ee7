import Foundation
import StepGuardCore
import StepGuardSecretsTestSupport
import StepGuardTestSupport
import Testing
@testable import StepGuardSecrets

/// `scan --staged` read from git's files directly (``SecretScanner/scanStagedDirectly``) against
/// the libgit2 path, over repositories made up for each shape: the findings must be the same, and
/// whatever the direct reader does not handle must go to libgit2.
@Suite struct StagedDirectTests {
    /// Scans `repo` staged both ways and compares; `direct` says whether the direct reader is
    /// expected to answer (true), to hand over to libgit2 (false), or either (nil). Returns the findings.
    @discardableResult
    func bothPaths(_ repo: TemporaryDirectory, at path: String? = nil, environment: [String: String] = [:], direct: Bool?,
                   sourceLocation: SourceLocation = #_sourceLocation) throws -> [Finding] {
        let s = try scanner()
        let at = path ?? repo.path
        let viaLibgit2 = try s.scanStagedWithLibgit2(repository: at, environment: environment)
        switch s.scanStagedDirectly(repository: at, environment: environment) {
        case .scanned(let report):
            #expect(direct != false, "read directly where libgit2 was expected", sourceLocation: sourceLocation)
            #expect(report.findings == viaLibgit2.findings, sourceLocation: sourceLocation)
            #expect(report.suppressed == viaLibgit2.suppressed, sourceLocation: sourceLocation)
        case .unsupported(let reason):
            #expect(direct != true, "handed to libgit2: \(reason)", sourceLocation: sourceLocation)
        case .damaged(let reason):
            Issue.record("damaged: \(reason)", sourceLocation: sourceLocation)
        }
        let combined = try s.scanStaged(repository: at, environment: environment)
        #expect(combined.findings == viaLibgit2.findings, sourceLocation: sourceLocation)
        #expect(s.incomplete.all.isEmpty, sourceLocation: sourceLocation)
        return viaLibgit2.findings
    }

    /// A repository with a committed tree of `files` ordinary files in nested directories.
    func committed(_ files: Int = 30) throws -> TemporaryDirectory { try StagedRepositories.committed(files) }

    @Test func newFilesInAnUnbornBranchAreReadDirectly() throws {
        let repo = try TemporaryDirectory(); defer { repo.remove() }
        try repo.initRepo()
        try repo.write("a/b/app.env", "TOKEN=\(Fake.githubPAT(101))\n")
        try repo.write("clean.txt", "nothing\n")
        try repo.git("add", ".")
        #expect(try bothPaths(repo, direct: true).map(\.ruleID) == ["github-pat-classic"])
    }

    @Test(arguments: [false, true])
    func aNewFileWithASecretLooseOrPacked(_ packed: Bool) throws {
        let repo = try committed(); defer { repo.remove() }
        if packed { try repo.git("gc", "-q", "--aggressive") }
        try repo.write("src/m1/d2/new.env", "KEY=\(Fake.awsKeyID(102))\n")
        try repo.write("src/m2/d0/f0.txt", "ordinary line 0\nsecond line\nthird line\n")  // modified, clean
        try repo.git("add", ".")
        let findings = try bothPaths(repo, direct: true)
        #expect(findings.map(\.path) == ["src/m1/d2/new.env"])
    }

    @Test func deltifiedTreesInAPackAreResolved() throws {
        // Many versions of the same directories, packed with deltas.
        let repo = try committed(60); defer { repo.remove() }
        for n in 0..<12 {
            try repo.write("src/m\(n % 3)/d\(n % 5)/f\(n).txt", "version \(n)\n")
            try repo.git("commit", "-qam", "edit \(n)")
        }
        try repo.git("repack", "-adfq", "--depth=50", "--window=50")
        try repo.write("src/m0/d0/leak.py", "k = '\(Fake.stripe(103))'\n")
        try repo.git("add", ".")
        #expect(try bothPaths(repo, direct: true).map(\.ruleID) == ["stripe-secret-key"])
    }

    @Test func aModifiedFileWithANewSecretGoesThroughLibgit2ForItsAddedLines() throws {
        let repo = try committed(); defer { repo.remove() }
        try repo.write("top.txt", "top\nold=\(Fake.awsKeyID(104))\n")
        try repo.git("commit", "-qam", "old secret")
        try repo.write("top.txt", "top\nold=\(Fake.awsKeyID(104))\nnew=\(Fake.slack(105))\n")
        try repo.git("add", ".")
        #expect(try bothPaths(repo, direct: false).map(\.ruleID) == ["slack-bot-token"])
    }

    @Test func renamesAndDeletions() throws {
        let repo = try committed(); defer { repo.remove() }
        try repo.write("keys.txt", (1...20).map { "line \($0)" }.joined(separator: "\n") + "\nk=\(Fake.githubPAT(106))\n")
        try repo.git("add", ".")
        try repo.git("commit", "-qm", "keys")
        try repo.git("mv", "keys.txt", "src/moved.txt")
        #expect(try bothPaths(repo, direct: false).isEmpty, "a pure rename adds nothing")
        try repo.git("rm", "-q", "src/m0/d0/f0.txt")
        try repo.write("src/brand-new.txt", "clean\n")
        try repo.git("add", ".")
        try bothPaths(repo, direct: false)
        try repo.git("reset", "-q", "--hard")
        try repo.git("rm", "-q", "top.txt")
        try repo.write("other.env", "T=\(Fake.slack(107))\n")
        try repo.git("add", ".")
        #expect(try bothPaths(repo, direct: false).map(\.ruleID) == ["slack-bot-token"])
    }

    @Test func modeChangesLinksAndSubmodules() throws {
        let repo = try committed(); defer { repo.remove() }
        chmod(repo.path + "/top.txt", 0o755)
        #expect(symlink(Fake.githubPAT(108), repo.path + "/link") == 0)
        try repo.git("add", ".")
        let head = try repo.git("rev-parse", "HEAD").trimmingCharacters(in: .whitespacesAndNewlines)
        try repo.git("update-index", "--add", "--cacheinfo", "160000,\(head),vendor/sub")
        #expect(try bothPaths(repo, direct: true).isEmpty)
        try repo.git("commit", "-qm", "link and submodule")
        // A link replaced by a file: a deletion and an addition for libgit2.
        try FileManager.default.removeItem(atPath: repo.path + "/link")
        try repo.write("link", "T=\(Fake.githubPAT(109))\n")
        try repo.git("add", ".")
        #expect(try bothPaths(repo, direct: false).map(\.path) == ["link"])
    }

    @Test func stagedContentCountsNotTheWorkTree() throws {
        let repo = try committed(); defer { repo.remove() }
        try repo.write("cfg/a.env", "A=\(Fake.stripe(110))\n")
        try repo.git("add", ".")
        try repo.write("cfg/a.env", "A=clean\nB=\(Fake.slack(111))\n")
        let findings = try bothPaths(repo, direct: true)
        #expect(findings.map(\.secret) == [Fake.stripe(110)])
    }

    @Test(arguments: [2, 3, 4])
    func indexVersions(_ version: Int) throws {
        let repo = try committed(); defer { repo.remove() }
        try repo.write("src/m0/deep/er/new.txt", "T=\(Fake.githubPAT(112))\n")
        try repo.git("add", ".")
        try repo.git("update-index", "--index-version", String(version))
        if version == 3 { try repo.git("update-index", "--skip-worktree", "top.txt") }  // extended flags
        #expect(try bothPaths(repo, direct: true).map(\.path) == ["src/m0/deep/er/new.txt"])
    }

    @Test func intentToAddEntriesGoThroughLibgit2() throws {
        let repo = try committed(); defer { repo.remove() }
        try repo.write("later.env", "T=\(Fake.githubPAT(113))\n")
        try repo.git("add", "-N", "later.env")
        try bothPaths(repo, direct: false)
    }

    /// A split index (libgit2 1.5 cannot read one): its entries over the shared index's are those
    /// of the same index unsplit, and the findings are libgit2's on that one; a finding that needs
    /// libgit2 is an error.
    @Test func aSplitIndexIsReadDirectly() throws {
        let repo = try committed(); defer { repo.remove() }
        try repo.git("update-index", "--split-index")
        try repo.write("new.env", "T=\(Fake.githubPAT(114))\n")  // added
        try repo.write("src/m1/d1/f1.txt", "changed\n")  // replaced
        try repo.git("add", "new.env", "src/m1/d1/f1.txt")
        func entries() throws -> [String] {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: repo.path + "/.git/index")))
            let index = try GitIndexFile(bytes) { name in
                (try? Data(contentsOf: URL(fileURLWithPath: repo.path + "/.git/sharedindex." + name))).map { [UInt8]($0) }
            }
            return index.entries.map { e in
                String(decoding: index.paths[e.pathStart..<(e.pathStart + e.pathCount)], as: UTF8.self) + " \(e.mode) " + Hex.string(index.id(e))
            }
        }
        let s = try scanner()
        let outcome = s.scanStagedDirectly(repository: repo.path, environment: [:])
        guard case .scanned(let report) = outcome else { Issue.record("the split index was not read directly: \(outcome)"); return }
        #expect(report.findings.map(\.path) == ["new.env"])
        // Deletions too: the merged entries equal the unsplit index's.
        try repo.git("rm", "-q", "--cached", "src/m2/d2/f2.txt", "top.txt")
        let split = try entries()
        #expect(split.count == 30)
        try repo.git("update-index", "--no-split-index")
        #expect(try entries() == split)
        try repo.git("reset", "-q", "--", "src/m2/d2/f2.txt", "top.txt")
        #expect(try s.scanStagedWithLibgit2(repository: repo.path, environment: [:]).findings == report.findings)
        try repo.git("update-index", "--split-index")
        try repo.write("src/m1/d1/f1.txt", "changed\nU=\(Fake.stripe(119))\n")
        try repo.git("add", "src/m1/d1/f1.txt")
        #expect(throws: SecretsError.self) { try s.scanStaged(repository: repo.path, environment: [:]) }
    }

    /// A sparse index (libgit2 1.5 cannot read one): read directly when its directory entries
    /// match HEAD, with the findings libgit2 gives on the same index made full; otherwise an error.
    @Test func aSparseIndexIsReadDirectly() throws {
        let repo = try committed(); defer { repo.remove() }
        try repo.git("sparse-checkout", "set", "--cone", "--sparse-index", "src/m0")
        #expect(try repo.git("ls-files", "--sparse", "-s").contains("040000"), "no sparse directory entry")
        try repo.write("src/m0/new.env", "T=\(Fake.githubPAT(114))\n")
        try repo.git("add", "src/m0/new.env")
        let s = try scanner()
        let outcome = s.scanStagedDirectly(repository: repo.path, environment: [:])
        guard case .scanned(let report) = outcome else {
            Issue.record("the sparse index was not read directly: \(outcome)"); return
        }
        #expect(report.findings.map(\.path) == ["src/m0/new.env"])
        #expect(try s.scanStaged(repository: repo.path, environment: [:]).findings == report.findings)
        // The same staged change in a full index, through libgit2.
        try repo.git("sparse-checkout", "disable")
        #expect(try s.scanStagedWithLibgit2(repository: repo.path, environment: [:]).findings == report.findings)
        // A finding that needs libgit2's patch in a sparse index: an error, never clean.
        try repo.git("commit", "-qm", "new")
        try repo.git("sparse-checkout", "set", "--cone", "--sparse-index", "src/m0")
        try repo.write("src/m0/new.env", "T=\(Fake.githubPAT(114))\nU=\(Fake.stripe(118))\n")
        try repo.git("add", "src/m0/new.env")
        #expect(throws: SecretsError.self) { try s.scanStaged(repository: repo.path, environment: [:]) }
    }

    @Test func caseInsensitiveRepositoriesGoThroughLibgit2() throws {
        let repo = try committed(); defer { repo.remove() }
        try repo.git("config", "core.ignoreCase", "true")
        try repo.write("New.env", "T=\(Fake.githubPAT(117))\n")
        try repo.git("add", ".")
        #expect(try bothPaths(repo, direct: false).map(\.path) == ["New.env"])
    }

    @Test func gitIndexFileGitDirAndWorktrees() throws {
        let repo = try committed(); defer { repo.remove() }
        // A temporary index, as `git commit -a` gives its hook.
        let temporary = repo.path + "/.git/tmp-index"
        try FileManager.default.copyItem(atPath: repo.path + "/.git/index", toPath: temporary)
        try repo.write("top.txt", "top\n")
        try repo.write("tmp.env", "T=\(Fake.githubPAT(115))\n")
        let add = try ProgramRun.run("/usr/bin/env", ["GIT_INDEX_FILE=" + temporary, "git", "add", "tmp.env"], in: repo.url)
        #expect(add.status == 0, "\(add.stderr)")
        #expect(try bothPaths(repo, direct: true).isEmpty, ".git/index stages nothing")
        #expect(try bothPaths(repo, environment: ["GIT_INDEX_FILE": temporary], direct: true).map(\.path) == ["tmp.env"])
        // The git directory itself, as `--repo` or GIT_DIR names it.
        try repo.git("add", "tmp.env")
        #expect(try bothPaths(repo, at: repo.path + "/.git", direct: true).map(\.path) == ["tmp.env"])
        // A subdirectory of the work tree.
        #expect(try bothPaths(repo, at: repo.path + "/src/m1", direct: true).map(\.path) == ["tmp.env"])
        // A linked worktree: its own HEAD and index, the main repository's objects.
        try repo.git("reset", "-q")
        try repo.git("worktree", "add", "-q", "-b", "side", repo.path + "/wt")
        try repo.write("wt/side.env", "S=\(Fake.stripe(116))\n")
        let wt = TemporaryDirectory(existing: URL(fileURLWithPath: repo.path + "/wt"))
        try wt.git("add", "side.env")
        #expect(try bothPaths(repo, at: repo.path + "/wt", direct: true).map(\.path) == ["side.env"])
        #expect(try bothPaths(repo, direct: true).isEmpty, "the main work tree stages nothing")
    }

    /// Made-up repositories with random histories and staged changes (seeded, so a failure repeats).
    @Test func randomRepositoriesGiveTheSameFindingsBothWays() throws {
        var rng = SeededRandom(seed: 22)
        var directCount = 0
        for round in 0..<24 {
            let repo = try TemporaryDirectory(); defer { repo.remove() }
            try repo.initRepo()
            var files: [String] = []
            func content(_ n: Int) -> String {
                var lines = (0..<rng.next(8)).map { "line \($0) of \(n)" }
                switch rng.next(6) {
                case 0: lines.append("GITHUB_TOKEN=\(Fake.githubPAT(UInt64(1000 + n)))")
                case 1: lines.append("aws = \(Fake.awsKeyID(UInt64(2000 + n)))  # stepguard:allow")
                default: break
                }
                return lines.joined(separator: "\n") + "\n"
            }
            let dirs = ["", "a/", "a/b/", "a/b-c/", "a.d/", "z/y/x/"]
            for i in 0..<(5 + rng.next(20)) {
                let path = dirs[rng.next(dirs.count)] + "f\(i)" + [".txt", ".env", "", "-x"][rng.next(4)]
                try repo.write(path, content(round * 100 + i))
                files.append(path)
            }
            let commits = rng.next(3)
            try repo.git("add", ".")
            if commits > 0 {
                try repo.git("commit", "-qm", "base")
                for c in 1..<commits {
                    try repo.write(files[rng.next(files.count)], content(round * 100 + 50 + c))
                    try repo.git("commit", "-qam", "c\(c)")
                }
                if rng.next(2) == 0 { try repo.git("gc", "-q") }
            }
            for k in 0..<(1 + rng.next(4)) {
                let path = files[rng.next(files.count)]
                switch rng.next(6) {
                case 0: try repo.write(dirs[rng.next(dirs.count)] + "n\(k).cfg", content(round * 100 + 80 + k))
                case 1: try repo.write(path, content(round * 100 + 90 + k))
                case 2: _ = try? repo.git("rm", "-q", "--cached", path)
                case 3: _ = try? repo.git("mv", path, dirs[rng.next(dirs.count)] + "moved\(k)")
                case 4: chmod(repo.path + "/" + path, 0o755)
                default: try repo.write(path, "")
                }
            }
            try repo.git("add", "-A")
            if rng.next(3) == 0 { try repo.git("update-index", "--index-version", "4") }
            if case .scanned = try scanner().scanStagedDirectly(repository: repo.path, environment: [:]) { directCount += 1 }
            try bothPaths(repo, direct: nil)
        }
        #expect(directCount >= 8, "the direct reader answered only \(directCount) of 24")
    }

    // MARK: Fail closed (the built binary's exit codes: EndToEndTests/StagedIntegrityTests)

    /// A committed repository with a secret staged.
    func leaking() throws -> TemporaryDirectory { try StagedRepositories.leaking() }

    /// A staged blob whose object is damaged: the direct reader hands over without allocating what
    /// the header claims (the scan is then an error: StagedIntegrityTests).
    @Test(arguments: ["huge-size", "garbage"])
    func aDamagedStagedObjectIsNotReadDirectly(_ damage: String) throws {
        let repo = try leaking(); defer { repo.remove() }
        try StagedRepositories.damageObject(of: "leak.env", in: repo, damage)
        if case .scanned = try scanner().scanStagedDirectly(repository: repo.path, environment: [:]) {
            Issue.record("a damaged object was read directly")
        }
    }

    /// A text file replacing a binary one, and a text file git is told to diff as binary: both paths
    /// find the secret in the new content.
    @Test(arguments: ["binary-before", "attribute"])
    func aChangeGitCallsBinaryIsScannedByBothPaths(_ how: String) throws {
        let repo = try committed(); defer { repo.remove() }
        try StagedRepositories.stageBinaryChange(in: repo, how, secret: Fake.githubPAT(121))
        #expect(try bothPaths(repo, direct: false).map(\.ruleID) == ["github-pat-classic"])
    }
}

/// A small deterministic generator (SplitMix64) for made-up repositories.
struct SeededRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    /// A number in `0..<bound`.
    mutating func next(_ bound: Int) -> Int {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Int((z ^ (z >> 31)) % UInt64(max(1, bound)))
    }
}
