import Foundation
import StepGuardTestSupport
import StepGuardSecretsTestSupport
import Testing
@testable import StepGuardSecrets

@Suite struct StagedTests {
    @Test func firstCommitWithoutHEADScansNewFiles() throws {
        let repo = try TemporaryDirectory(); defer { repo.remove() }
        try repo.initRepo()
        try repo.write("config/app.env", "NAME=demo\nGITHUB_TOKEN=\(Fake.githubPAT())\n")
        try repo.git("add", ".")
        let report = try scanner().scanStaged(repository: repo.path, environment: [:])
        #expect(report.findings.map(\.ruleID) == ["github-pat-classic"])
        #expect(report.findings.first?.path == "config/app.env")
        #expect(report.findings.first?.line == 2)
        #expect(report.findings.first?.column == 14)
    }

    @Test func onlyAddedLinesAreReported() throws {
        let repo = try TemporaryDirectory(); defer { repo.remove() }
        try repo.initRepo()
        try repo.write("a.txt", "old=\(Fake.awsKeyID(1))\n")
        try repo.commitAll("old secret, already committed")
        try repo.write("a.txt", "old=\(Fake.awsKeyID(1))\nnew=\(Fake.stripe(2))\n")
        try repo.git("add", ".")
        let report = try scanner().scanStaged(repository: repo.path, environment: [:])
        #expect(report.findings.map(\.ruleID) == ["stripe-secret-key"])
        #expect(report.findings.first?.line == 2)
    }

    @Test func partiallyStagedFileIsReadFromTheIndexNotTheWorkTree() throws {
        let repo = try TemporaryDirectory(); defer { repo.remove() }
        try repo.initRepo()
        try repo.write("app.py", "print('hi')\n")
        try repo.commitAll("clean")
        // Staged: one secret. Work tree afterwards: that secret removed, another added (unstaged).
        try repo.write("app.py", "print('hi')\nKEY = '\(Fake.stripe(3))'\n")
        try repo.git("add", "app.py")
        try repo.write("app.py", "print('hi')\nSLACK = '\(Fake.slack(4))'\n")
        let report = try scanner().scanStaged(repository: repo.path, environment: [:])
        #expect(report.findings.map(\.ruleID) == ["stripe-secret-key"])
        #expect(report.findings.first?.secret == Fake.stripe(3))
    }

    @Test func pureRenameReportsNothingAndRenameWithNewSecretReportsNewPath() throws {
        let repo = try TemporaryDirectory(); defer { repo.remove() }
        try repo.initRepo()
        let body = (1...20).map { "line \($0) of ordinary text" }.joined(separator: "\n")
        try repo.write("old.txt", body + "\ntoken=\(Fake.githubPAT(5))\n")
        try repo.commitAll("existing")
        try repo.git("mv", "old.txt", "new.txt")
        #expect(try scanner().scanStaged(repository: repo.path, environment: [:]).findings.isEmpty)
        try repo.write("new.txt", body + "\ntoken=\(Fake.githubPAT(5))\nkey=\(Fake.awsKeyID(6))\n")
        try repo.git("add", "new.txt")
        let report = try scanner().scanStaged(repository: repo.path, environment: [:])
        #expect(report.findings.map(\.ruleID) == ["aws-access-key-id"])
        #expect(report.findings.first?.path == "new.txt")
        #expect(report.findings.first?.line == 22)
    }

    @Test func cleanIndexAndInlineAllowAreQuiet() throws {
        let repo = try TemporaryDirectory(); defer { repo.remove() }
        try repo.initRepo()
        try repo.write("a.md", "Use AKIAIOSFODNN7EXAMPLE in docs.\nkey=\(Fake.awsKeyID(7)) # stepguard:allow\nk2=\(Fake.awsKeyID(8)) // gitleaks:allow\n")
        try repo.git("add", ".")
        let report = try scanner().scanStaged(repository: repo.path, environment: [:])
        #expect(report.findings.isEmpty)
        #expect(report.suppressed == 2)
    }

    @Test func notARepositorySaysSo() throws {
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        do {
            _ = try scanner().scanStaged(repository: dir.path, environment: [:])
            Issue.record("expected an error outside a repository")
        } catch let error as SecretsError {
            #expect(error.kind == .git)
            #expect(error.message.contains(dir.path))
            #expect(error.message.contains("--repo"))
        }
    }
}

@Suite struct HistoryTests {
    @Test func secretAddedThenRemovedIsFoundWithCommitMetadata() throws {
        let repo = try TemporaryDirectory(); defer { repo.remove() }
        try repo.initRepo()
        try repo.write("README", "hello\n")
        try repo.commitAll("init")
        try repo.write("deploy.sh", "#!/bin/sh\nexport SLACK=\(Fake.slack(9))\n")
        try repo.commitAll("add secret")
        let commit = try repo.git("rev-parse", "HEAD").trimmingCharacters(in: .whitespacesAndNewlines)
        try repo.git("rm", "-q", "deploy.sh")
        try repo.git("commit", "-qm", "remove secret")
        let report = try scanner().scanHistory(repository: repo.path)
        #expect(report.commits == 3)
        #expect(report.findings.count == 1)
        let f = try #require(report.findings.first)
        #expect(f.ruleID == "slack-bot-token")
        #expect(f.commit == commit)
        #expect(f.author == "Test Author")
        #expect(f.email == "author@test.invalid")
        #expect(f.date?.hasSuffix("Z") == true)
        #expect(f.path == "deploy.sh")
        #expect(f.line == 2)
    }

    @Test func sameBlobInManyCommitsIsScannedOnceAndReportedPerCommit() throws {
        let repo = try TemporaryDirectory(); defer { repo.remove() }
        try repo.initRepo()
        let content = "key=\(Fake.awsKeyID(10))\n"
        try repo.write("secret.txt", content)
        try repo.commitAll("add")
        try repo.git("rm", "-q", "secret.txt")
        try repo.git("commit", "-qm", "remove")
        try repo.write("secret.txt", content)
        try repo.commitAll("re-add")
        try repo.write("elsewhere/copy.txt", content)
        try repo.commitAll("copy")
        let report = try scanner().scanHistory(repository: repo.path)
        #expect(report.findings.count == 3)
        #expect(Set(report.findings.compactMap(\.commit)).count == 3)
        #expect(report.scannedFiles == 1, "the one distinct blob is scanned once")
        #expect(Set(report.findings.map(\.path)) == ["secret.txt", "elsewhere/copy.txt"])
    }

    @Test func sinceAndRangeLimitTheWalk() throws {
        let repo = try TemporaryDirectory(); defer { repo.remove() }
        try repo.initRepo()
        try repo.write("a.txt", "a=\(Fake.awsKeyID(11))\n")
        try repo.commitAll("one")
        let first = try repo.git("rev-parse", "HEAD").trimmingCharacters(in: .whitespacesAndNewlines)
        try repo.write("b.txt", "b=\(Fake.stripe(12))\n")
        try repo.commitAll("two")
        #expect(try scanner().scanHistory(repository: repo.path, since: first).findings.map(\.ruleID) == ["stripe-secret-key"])
        #expect(try scanner().scanHistory(repository: repo.path, range: "\(first)..HEAD").findings.map(\.ruleID) == ["stripe-secret-key"])
        #expect(throws: SecretsError.self) { try scanner().scanHistory(repository: repo.path, range: "nope..HEAD") }
    }
}
