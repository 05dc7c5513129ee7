import Foundation
import Testing
@testable import StepGuardSecrets

/// Drives the built `stepguard` binary (run `swift build` first).
@Suite struct EndToEndScanTests {
    @Test func exitCodesAreZeroCleanOneFoundTwoOnError() throws {
        let dir = try TempDir(); defer { dir.cleanup() }
        try dir.write("clean.txt", "nothing to see\n")
        let clean = try run(stepguardBinary, ["scan", "clean.txt"], cwd: dir.url)
        #expect(clean.status == 0, "\(clean.stderr)")
        #expect(clean.stderr.contains("0 secrets found"))

        let secret = Fake.githubPAT(50)
        try dir.write("leak.txt", "token=\(secret)\n")
        let found = try run(stepguardBinary, ["scan", "."], cwd: dir.url)
        #expect(found.status == 1)
        #expect(found.stdout.contains("leak.txt:1:7: github-pat-classic"))
        #expect(!found.stdout.contains(secret) && !found.stderr.contains(secret))

        let missing = try run(stepguardBinary, ["scan", "does-not-exist"], cwd: dir.url)
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("does-not-exist"))

        let notRepo = try run(stepguardBinary, ["scan", "--staged"], cwd: dir.url)
        #expect(notRepo.status == 2)
        #expect(notRepo.stderr.contains("not inside a git repository"))

        try dir.write("rules/bad.yaml", "rules:\n  - {id: x, description: y, regex: '(oops'}\n")
        let badRules = try run(stepguardBinary, ["scan", "--rules", "rules", "clean.txt"], cwd: dir.url)
        #expect(badRules.status == 2)
        #expect(badRules.stderr.contains("rule `x`"))

        let usage = try run(stepguardBinary, ["scan", "--format", "xml"], cwd: dir.url)
        #expect(usage.status != 0 && usage.status != 1)
    }

    /// stepguard's own repository — Swift, YAML, shell, Markdown, test fixtures — scans clean with
    /// the built-in rules: its test credentials are made from templates at run time, and the
    /// generic rules stay quiet on its code (the false alarms this found are `no_match` examples now).
    @Test func thisRepositoryScansClean() throws {
        let result = try run(stepguardBinary, ["scan", "."], cwd: packageRoot)
        #expect(result.status == 0, "\(result.stdout)")
        let scanned = try #require(result.stderr.firstMatch(of: /(\d+) files/).flatMap { Int($0.1) })
        #expect(scanned > 200, "\(result.stderr)")
    }

    @Test func stdinAndCustomRulesAndFormats() throws {
        let dir = try TempDir(); defer { dir.cleanup() }
        try dir.write("rules/acme.yaml", """
        rules:
          - id: acme-token
            description: ACME internal token
            regex: '\\b(acme_[a-z0-9]{24})\\b'
            keywords: [acme_]
            lifetime: long-lived
        """)
        let token = ExampleTemplate.expand("ac{cut}me_{lowernum:24}")
        let r = try run(stepguardBinary, ["scan", "--stdin", "--rules", "rules", "--format", "json"], cwd: dir.url, stdin: "x \(token)\n")
        #expect(r.status == 1, "\(r.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let findings = json["findings"] as! [[String: Any]]
        #expect(findings.map { $0["rule_id"] as? String } == ["acme-token"])
        #expect(findings.first?["path"] as? String == "-")
        #expect(!r.stdout.contains(token))

        let sarif = try run(stepguardBinary, ["scan", "--stdin", "--rules", "rules", "--format", "sarif", "--output", "out.sarif"], cwd: dir.url, stdin: token)
        #expect(sarif.status == 1)
        #expect(try String(contentsOf: dir.url.appendingPathComponent("out.sarif"), encoding: .utf8).contains("\"2.1.0\""))
    }

    @Test func ignoreFileInTheRepositoryRootAppliesToStagedScans() throws {
        let repo = try TempDir(); defer { repo.cleanup() }
        try repo.initRepo()
        try repo.write("fixtures/creds.txt", "k=\(Fake.awsKeyID(51))\n")
        try repo.git("add", ".")
        let first = try run(stepguardBinary, ["scan", "--staged", "--format", "json"], cwd: repo.url)
        #expect(first.status == 1)
        let findings = (try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as! [String: Any])["findings"] as! [[String: Any]]
        let fingerprint = try #require(findings.first?["fingerprint"] as? String)
        try repo.write(".stepguard-ignore.yaml", "ignore:\n  - fingerprint: \"\(fingerprint)\"\n    reason: fake key for tests\n")
        let second = try run(stepguardBinary, ["scan", "--staged"], cwd: repo.url.appendingPathComponent("fixtures"))
        #expect(second.status == 0, "\(second.stdout) \(second.stderr)")
        #expect(second.stderr.contains("1 suppressed"))
        try repo.write(".stepguard-ignore.yaml", "ignore:\n  - fingerprint: \"\(fingerprint)\"\n    reason: fake key for tests\n    expires: 2001-01-01\n")
        let expired = try run(stepguardBinary, ["scan", "--staged"], cwd: repo.url)
        #expect(expired.status == 1)
        #expect(expired.stderr.contains("expired on 2001-01-01"))
    }

    @Test func preCommitFrameworkRefusesASecretAndAcceptsACleanCommit() throws {
        guard let preCommit = try? run("/usr/bin/env", ["sh", "-c", "command -v pre-commit"], cwd: packageRoot), preCommit.status == 0 else {
            Issue.record("pre-commit is not installed: pip install pre-commit")
            return
        }
        // A hooks repository holding this package's .pre-commit-hooks.yaml, as pre-commit clones it.
        let hooks = try TempDir(); defer { hooks.cleanup() }
        try hooks.initRepo()
        try hooks.write(".pre-commit-hooks.yaml", try String(contentsOf: packageRoot.appendingPathComponent(".pre-commit-hooks.yaml"), encoding: .utf8))
        try hooks.git("add", ".")
        try hooks.git("commit", "-qm", "hooks")
        let rev = try hooks.git("rev-parse", "HEAD").trimmingCharacters(in: .whitespacesAndNewlines)

        let repo = try TempDir(); defer { repo.cleanup() }
        let home = try TempDir(); defer { home.cleanup() }
        try repo.initRepo()
        try repo.write(".pre-commit-config.yaml", """
        repos:
          - repo: \(hooks.path)
            rev: \(rev)
            hooks:
              - id: stepguard-system
        """)
        let env = [
            "PATH": packageRoot.appendingPathComponent(".build/debug").path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
            "PRE_COMMIT_HOME": home.path,
        ]
        let install = try run("/usr/bin/env", ["pre-commit", "install"], cwd: repo.url, environment: env)
        #expect(install.status == 0, "\(install.stdout) \(install.stderr)")

        try repo.write("README.md", "clean\n")
        try repo.git("add", ".")
        let clean = try run("/usr/bin/env", ["git", "-c", "user.name=T", "-c", "user.email=t@test.invalid", "commit", "-qm", "clean"], cwd: repo.url, environment: env)
        #expect(clean.status == 0, "clean commit refused: \(clean.stdout) \(clean.stderr)")

        let secret = Fake.stripe(52)
        try repo.write("billing.py", "STRIPE = '\(secret)'\n")
        try repo.git("add", "billing.py")
        let leak = try run("/usr/bin/env", ["git", "-c", "user.name=T", "-c", "user.email=t@test.invalid", "commit", "-qm", "leak"], cwd: repo.url, environment: env)
        #expect(leak.status != 0, "commit with a secret went through")
        #expect((leak.stdout + leak.stderr).contains("stripe-secret-key"))
        #expect(!(leak.stdout + leak.stderr).contains(secret))
        let log = try repo.git("log", "--oneline")
        #expect(log.split(separator: "\n").count == 1, "only the clean commit is recorded")
    }
}
