import Foundation
import StepGuardTestSupport
import StepGuardSecretsTestSupport
import Testing
@testable import StepGuardSecrets

@Suite struct FileSourceTests {
    @Test func gitignoreIsHonouredUnlessDisabled() throws {
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        try dir.initRepo()
        try dir.write(".gitignore", "ignored.env\nbuild/\n")
        try dir.write("ignored.env", "k=\(Fake.awsKeyID(20))\n")
        try dir.write("build/out.txt", "k=\(Fake.stripe(21))\n")
        try dir.write("src/main.swift", "let k = \"\(Fake.githubPAT(22))\"\n")
        let report = try scanner().scan(paths: [dir.path])
        #expect(report.findings.map(\.ruleID) == ["github-pat-classic"])
        #expect(report.findings.first?.path == dir.path + "/src/main.swift")
        var all = try scanner()
        all.options.respectGitignore = false
        #expect(Set(try all.scan(paths: [dir.path]).findings.map(\.ruleID)) == ["github-pat-classic", "aws-access-key-id", "stripe-secret-key"])
    }

    @Test func symlinksOutOfTheTreeBinariesAndLargeFilesAreSkippedAndCounted() throws {
        let outside = try TemporaryDirectory(); defer { outside.remove() }
        try outside.write("secret.txt", "k=\(Fake.awsKeyID(23))\n")
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        try dir.write("inside.txt", "k=\(Fake.stripe(24))\n")
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/escape.txt", withDestinationPath: outside.path + "/secret.txt")
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/alias.txt", withDestinationPath: dir.path + "/inside.txt")
        try dir.write("blob.bin", bytes: [0, 1, 2] + Array("k=\(Fake.awsKeyID(25))".utf8))
        try dir.write("big.txt", String(repeating: "x", count: 2048) + "\nk=\(Fake.awsKeyID(26))\n")
        var s = try scanner()
        s.options.maxFileSize = 1024
        let report = try s.scan(paths: [dir.path])
        #expect(report.findings.map(\.ruleID) == ["stripe-secret-key", "stripe-secret-key"])  // inside.txt and its in-tree alias
        #expect(report.skippedSymlinks == 1)
        #expect(report.skippedBinary == 1)
        #expect(report.skippedLarge == 1)
        #expect(Reporter.summary(report).contains("1 over the size limit"))
        #expect(Reporter.summary(report).contains("1 symlinks leading outside the tree"))
    }

    @Test func placeholdersAndLookAlikesStayQuiet() throws {
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        try dir.write("docs.md", """
        aws_access_key_id = AKIAIOSFODNN7EXAMPLE
        aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
        token: ${{ secrets.GITHUB_TOKEN }}
        password = "${DB_PASSWORD}"
        api_key = "your_api_key_here"
        id = "3f1c2a9e-8d4b-4c1e-9f2a-7b6d5e4c3b2a"
        "integrity": "sha512-Q0bE8dZ8h3sVt4mHk9cYq5x2LrJ7uN1pW6aGfD3eKzTnBvC0oIyXsR4lMjPqU+w/E9=="
        commit = "9fceb02d0ae598e95dc970b74767f19372d61af8"
        GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
        """)
        let report = try scanner().scan(paths: [dir.path])
        #expect(report.findings.isEmpty, "\(report.findings.map { "\($0.ruleID) line \($0.line)" })")
    }
}
