import Foundation
import StepGuardTestSupport
import StepGuardSecretsTestSupport
import Testing
@testable import StepGuardSecrets

/// History mode finds added lines only for the files with findings, after the fact (blob-to-blob
/// patches, renames found by diffing the commit again): each secret is reported once, in the
/// commit that added it, through renames, edits beside it and replaced files.
@Suite struct HistoryAttributionTests {
    @Test func renamesAndEditsReportEachSecretOnceWhereItWasAdded() throws {
        let repo = try TemporaryDirectory(); defer { repo.remove() }
        try repo.initRepo()
        let a = Fake.githubPAT(81), b = Fake.stripe(82), c = Fake.slack(83)
        let filler = (1...30).map { "setting_\($0) = value number \($0)" }.joined(separator: "\n")
        try repo.write("creds.env", "A=\(a)\n\(filler)\n")
        try repo.write("unrelated.txt", "x\n")
        try repo.commitAll("one")
        // Renamed and edited (a new secret appended): only B is new.
        try repo.git("mv", "creds.env", "creds-renamed.env")
        try repo.write("creds-renamed.env", "A=\(a)\n\(filler)\nB=\(b)\n")
        try repo.commitAll("two")
        // Renamed unchanged: nothing new.
        try repo.git("mv", "creds-renamed.env", "moved.env")
        try repo.git("commit", "-qm", "three")
        // Edited in a commit that also deletes a file: only C is new.
        try repo.write("moved.env", "C=\(c)\nA=\(a)\n\(filler)\nB=\(b)\n")
        try repo.git("rm", "-q", "unrelated.txt")
        try repo.commitAll("four")
        let log = try repo.git("log", "--format=%H %s").split(separator: "\n").map { $0.split(separator: " ") }
        let commit = Dictionary(uniqueKeysWithValues: log.map { (String($0[1]), String($0[0])) })

        let report = try scanner().scanHistory(repository: repo.path)
        let seen = report.findings.map { "\($0.ruleID) \($0.path):\($0.line) \($0.commit ?? "")" }.sorted()
        #expect(seen == [
            "github-pat-classic creds.env:1 \(commit["one"]!)",
            "slack-bot-token moved.env:1 \(commit["four"]!)",
            "stripe-secret-key creds-renamed.env:32 \(commit["two"]!)",
        ].sorted(), "\(seen)")
    }

    /// A file that replaces a deleted one under a new name with different content is new: all of it counts.
    @Test func aNewFileInACommitThatDeletesAnotherCountsWhole() throws {
        let repo = try TemporaryDirectory(); defer { repo.remove() }
        try repo.initRepo()
        try repo.write("old.txt", (1...20).map { "old line \($0)" }.joined(separator: "\n") + "\n")
        try repo.commitAll("one")
        let secret = Fake.githubPAT(84)
        try repo.git("rm", "-q", "old.txt")
        try repo.write("new.env", "TOKEN=\(secret)\nsomething else entirely\n")
        try repo.commitAll("two")
        let report = try scanner().scanHistory(repository: repo.path)
        #expect(report.findings.map { "\($0.path):\($0.line)" } == ["new.env:1"])
    }
}

/// History mode skips a patch or a rename re-diff when every finding of a blob has a line its
/// possible sources lack (``LineHashes``). Random histories with edits, moved and duplicated
/// secret lines, renames (edited or not, beside deletions), deletions, reverts and merges are
/// scanned with and without that shortcut: the findings (rule, path, line, commit) and the count
/// of suppressed ones must be the same.
@Suite struct HistoryShortcutTests {
    /// A small deterministic generator (SplitMix64).
    struct Random {
        var state: UInt64
        mutating func next(_ bound: Int) -> Int {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Int((z ^ (z >> 31)) % UInt64(bound))
        }
    }

    func files(_ repo: TemporaryDirectory) throws -> [String: [String]] {
        var out: [String: [String]] = [:]
        for path in try repo.git("ls-files").split(separator: "\n").map(String.init) {
            let text = try String(contentsOfFile: repo.path + "/" + path, encoding: .utf8)
            out[path] = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).dropLast()
        }
        return out
    }

    func write(_ repo: TemporaryDirectory, _ path: String, _ lines: [String]) throws {
        try repo.write(path, lines.map { $0 + "\n" }.joined())
    }

    /// One random history of about `steps` commits.
    func makeHistory(_ repo: TemporaryDirectory, seed: UInt64, steps: Int) throws {
        var random = Random(state: seed)
        var secretSeed: UInt64 = seed * 1000
        func secretLine() -> String {
            secretSeed += 1
            switch random.next(4) {
            case 0: return "GITHUB_TOKEN=\(Fake.githubPAT(secretSeed))"
            case 1: return "stripe = \"\(Fake.stripe(secretSeed))\""
            case 2: return "slack: \(Fake.slack(secretSeed)) # stepguard:allow"
            default: return "K=\(Fake.githubPAT(secretSeed)) \(Fake.stripe(secretSeed))"
            }
        }
        func filler() -> String { ["x = 1", "}", "", "// the same line again", "value = \(random.next(50))"][random.next(5)] }
        func content() -> [String] { (0..<(2 + random.next(12))).map { _ in random.next(4) == 0 ? secretLine() : filler() } }
        try repo.initRepo()
        try write(repo, "a/one.env", content())
        try write(repo, "two.txt", content())
        try repo.commitAll("first")
        var branch = 0
        for step in 0..<steps {
            var state = try files(repo)
            let paths = state.keys.sorted()
            let path = paths[random.next(paths.count)]
            switch random.next(9) {
            case 0:  // a new file
                try write(repo, "d\(random.next(3))/new\(step).env", content())
            case 1, 2:  // edits: insert, delete, duplicate or move a line
                var lines = state[path]!
                for _ in 0..<(1 + random.next(3)) {
                    let at = random.next(lines.count + 1)
                    switch random.next(4) {
                    case 0: lines.insert(secretLine(), at: at)
                    case 1: if !lines.isEmpty { lines.remove(at: random.next(lines.count)) }
                    case 2: if !lines.isEmpty { lines.insert(lines[random.next(lines.count)], at: at) }
                    default:
                        if !lines.isEmpty { let line = lines.remove(at: random.next(lines.count)); lines.insert(line, at: min(at, lines.count)) }
                    }
                }
                try write(repo, path, lines)
            case 3:  // a rename, edited or not, sometimes beside a deletion
                let target = "r\(step)/" + (path.split(separator: "/").last.map(String.init) ?? path)
                try FileManager.default.createDirectory(atPath: repo.path + "/r\(step)", withIntermediateDirectories: true)
                try repo.git("mv", path, target)
                if random.next(2) == 0 {
                    var lines = state[path]!
                    lines.insert(random.next(2) == 0 ? secretLine() : filler(), at: random.next(lines.count + 1))
                    try write(repo, target, lines)
                }
                state[path] = nil
                if let other = state.keys.sorted().first, random.next(2) == 0, state.count > 1 { try repo.git("rm", "-q", other) }
            case 4:  // a new file made of a deleted file's lines (and one more), in the same commit
                if paths.count > 1 {
                    try repo.git("rm", "-q", path)
                    try write(repo, "moved\(step).env", state[path]!.shuffledDeterministically(&random) + [random.next(2) == 0 ? secretLine() : filler()])
                }
            case 5:
                if paths.count > 1 { try repo.git("rm", "-q", path) }
            case 6:  // revert the last commit
                if (try? repo.git("revert", "--no-edit", "HEAD")) != nil { continue }
            case 7:  // a branch with its own new file, merged back after a commit on main
                branch += 1
                try repo.git("checkout", "-q", "-b", "b\(branch)")
                try write(repo, "branch\(branch).env", content())
                try repo.commitAll("on branch \(branch)")
                try repo.git("checkout", "-q", "main")
                var lines = state[path]!
                lines.append(secretLine())
                try write(repo, path, lines)
                try repo.commitAll("main beside branch \(branch)")
                try repo.git("merge", "-q", "--no-ff", "-m", "merge \(branch)", "b\(branch)")
                continue
            default:  // the same content back under the old name (a rename back)
                if let renamed = state.keys.sorted().first(where: { $0.hasPrefix("r") }) {
                    try repo.git("mv", renamed, "back\(step).env")
                }
            }
            try repo.git("add", "-A")
            _ = try? repo.git("commit", "-qm", "step \(step)")
        }
    }

    @Test(arguments: [1, 2, 3, 4, 5, 6] as [UInt64])
    func shortcutsChangeNoFinding(seed: UInt64) throws {
        let repo = try TemporaryDirectory(); defer { repo.remove() }
        try makeHistory(repo, seed: seed, steps: 40)
        var exact = try scanner()
        exact.options.attributionShortcuts = false
        let fast = try scanner()
        let before = try exact.scanHistory(repository: repo.path)
        let after = try fast.scanHistory(repository: repo.path)
        func seen(_ r: ScanReport) -> [String] { r.findings.map { "\($0.ruleID) \($0.path):\($0.line)-\($0.endLine) \($0.commit ?? "") \($0.fingerprint)" }.sorted() }
        #expect(!before.findings.isEmpty)
        #expect(seen(after) == seen(before))
        #expect(after.suppressed == before.suppressed)
    }
}

extension Array {
    /// The elements in an order drawn from `random` (reproducible).
    func shuffledDeterministically(_ random: inout HistoryShortcutTests.Random) -> [Element] {
        var copy = self
        for i in stride(from: copy.count - 1, to: 0, by: -1) { copy.swapAt(i, random.next(i + 1)) }
        return copy
    }
}
