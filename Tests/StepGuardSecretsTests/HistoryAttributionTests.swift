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
