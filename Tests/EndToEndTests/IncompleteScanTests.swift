import Foundation
import StepGuardTestSupport
import StepGuardSecretsTestSupport
import Testing
import StepGuardSecrets

/// A custom rule whose regex backtracks past PCRE2's match limit on a file cannot search that file:
/// the scan says so, naming the rule and the file, and exits 2 — it is not reported clean (or with
/// only the other findings) as if the rule had found nothing there.
@Suite struct IncompleteScanTests {
    /// `(a|aa)+` before a `z` that never follows: Fibonacci-many ways to split 40 `a`s, far past
    /// the match limit. The prefilter lets vectorscan pass every `x a` on to PCRE2.
    static let rules = """
    rules:
      - id: slow-backtracking
        description: a rule that backtracks catastrophically
        regex: 'x (a|aa)+z'
        prefilter: 'x a'
        keywords: ['x a']
    """
    static let slowText = "x " + String(repeating: "a", count: 40) + "!\nz\n"

    @Test func aRuleThatGivesUpMakesTheScanFailWithItsNameAndFile() throws {
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        try dir.write("rules/slow.yaml", Self.rules)
        try dir.write("src/big.txt", Self.slowText)
        let token = Fake.githubPAT(70)
        try dir.write("src/leak.txt", "token=\(token)\n")

        let files = try ProgramRun.run(StepGuardBinary.path, ["scan", "--rules", "rules", "src"], in: dir.url)
        #expect(files.status == 2, "\(files.stdout)\(files.stderr)")
        #expect(files.stderr.contains("rule `slow-backtracking`") && files.stderr.contains("src/big.txt"), "\(files.stderr)")
        #expect(files.stdout.contains("src/leak.txt:1:7: github-pat-classic"), "the other findings are still reported")
        #expect(!files.stdout.contains(token) && !files.stderr.contains(token))

        let stdin = try ProgramRun.run(StepGuardBinary.path, ["scan", "--rules", "rules", "--stdin"], in: dir.url, stdin: Self.slowText)
        #expect(stdin.status == 2, "\(stdin.stderr)")
        #expect(stdin.stderr.contains("rule `slow-backtracking` gave up on -"), "\(stdin.stderr)")

        try dir.initRepo()
        try dir.git("add", "src")
        let staged = try ProgramRun.run(StepGuardBinary.path, ["scan", "--rules", "rules", "--staged"], in: dir.url)
        #expect(staged.status == 2, "\(staged.stderr)")
        #expect(staged.stderr.contains("src/big.txt"), "\(staged.stderr)")
        try dir.git("commit", "-qm", "files")
        let history = try ProgramRun.run(StepGuardBinary.path, ["scan", "--rules", "rules", "--history"], in: dir.url)
        #expect(history.status == 2, "\(history.stderr)")
        // History scans each blob once before knowing its paths: the rule is named, the file is not.
        #expect(history.stderr.contains("rule `slow-backtracking` gave up on a blob of the history"), "\(history.stderr)")

        // Without the slow file the same rules scan completely.
        try FileManager.default.removeItem(at: dir.url.appendingPathComponent("src/big.txt"))
        let complete = try ProgramRun.run(StepGuardBinary.path, ["scan", "--rules", "rules", "src"], in: dir.url)
        #expect(complete.status == 1, "\(complete.stderr)")
    }
}
