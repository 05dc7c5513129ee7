import Foundation
import StepGuardTestSupport
import StepGuardSecretsTestSupport
import Testing
import StepGuardSecrets

/// Drives the built `stepguard` binary (run `swift build` first).
@Suite struct EndToEndScanTests {
    @Test func exitCodesAreZeroCleanOneFoundTwoOnError() throws {
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        try dir.write("clean.txt", "nothing to see\n")
        let clean = try ProgramRun.run(StepGuardBinary.path, ["scan", "clean.txt"], in: dir.url)
        #expect(clean.status == 0, "\(clean.stderr)")
        #expect(clean.stderr.contains("0 secrets found"))

        let secret = Fake.githubPAT(50)
        try dir.write("leak.txt", "token=\(secret)\n")
        let found = try ProgramRun.run(StepGuardBinary.path, ["scan", "."], in: dir.url)
        #expect(found.status == 1)
        #expect(found.stdout.contains("leak.txt:1:7: github-pat-classic"))
        #expect(!found.stdout.contains(secret) && !found.stderr.contains(secret))

        let missing = try ProgramRun.run(StepGuardBinary.path, ["scan", "does-not-exist"], in: dir.url)
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("does-not-exist"))

        let notRepo = try ProgramRun.run(StepGuardBinary.path, ["scan", "--staged"], in: dir.url)
        #expect(notRepo.status == 2)
        #expect(notRepo.stderr.contains("not inside a git repository"))

        try dir.write("rules/bad.yaml", "rules:\n  - {id: x, description: y, regex: '(oops'}\n")
        let badRules = try ProgramRun.run(StepGuardBinary.path, ["scan", "--rules", "rules", "clean.txt"], in: dir.url)
        #expect(badRules.status == 2)
        #expect(badRules.stderr.contains("rule `x`"))

        let usage = try ProgramRun.run(StepGuardBinary.path, ["scan", "--format", "xml"], in: dir.url)
        #expect(usage.status != 0 && usage.status != 1)
    }

    /// stepguard's own repository — Swift, YAML, shell, Markdown, test fixtures — scans clean with
    /// the built-in rules: its test credentials are made from templates at run time, and the
    /// generic rules stay quiet on its code (the false alarms this found are `no_match` examples now).
    /// An empty STEPGUARD_CACHE_DIR is unset: the compiled rules are cached under $HOME, not
    /// written to the root directory (`"" + "/rules-….hsdb"`), which the parent build did as root.
    @Test func anEmptyCacheDirectoryVariableFallsBackToHome() throws {
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        try dir.write("src/clean.txt", "nothing to see\n")
        let environment = ["STEPGUARD_CACHE_DIR": "", "XDG_CACHE_HOME": "", "HOME": dir.path("home")]
        let result = try ProgramRun.run(StepGuardBinary.path, ["scan", "src"], in: dir.url, environment: environment)
        #expect(result.status == 0, "\(result.stderr)")
        let cached = (try? FileManager.default.contentsOfDirectory(atPath: dir.path("home/.cache/stepguard"))) ?? []
        #expect(cached.contains { $0.hasPrefix("rules-") && $0.hasSuffix(".hsdb") }, "\(cached)")
    }

    @Test func thisRepositoryScansClean() throws {
        let result = try ProgramRun.run(StepGuardBinary.path, ["scan", "."], in: StepGuardBinary.packageRoot)
        #expect(result.status == 0, "\(result.stdout)")
        let scanned = try #require(result.stderr.firstMatch(of: /(\d+) files/).flatMap { Int($0.1) })
        #expect(scanned > 200, "\(result.stderr)")
    }

    @Test func stdinAndCustomRulesAndFormats() throws {
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        try dir.write("rules/acme.yaml", """
        rules:
          - id: acme-token
            description: ACME internal token
            regex: '\\b(acme_[a-z0-9]{24})\\b'
            keywords: [acme_]
            lifetime: long-lived
        """)
        let token = ExampleTemplate.expand("ac{cut}me_{lowernum:24}")
        let r = try ProgramRun.run(StepGuardBinary.path, ["scan", "--stdin", "--rules", "rules", "--format", "json"], in: dir.url, stdin: "x \(token)\n")
        #expect(r.status == 1, "\(r.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let findings = json["findings"] as! [[String: Any]]
        #expect(findings.map { $0["rule_id"] as? String } == ["acme-token"])
        #expect(findings.first?["path"] as? String == "-")
        #expect(!r.stdout.contains(token))

        let sarif = try ProgramRun.run(StepGuardBinary.path, ["scan", "--stdin", "--rules", "rules", "--format", "sarif", "--output", "out.sarif"], in: dir.url, stdin: token)
        #expect(sarif.status == 1)
        #expect(try String(contentsOf: dir.url.appendingPathComponent("out.sarif"), encoding: .utf8).contains("\"2.1.0\""))
    }

    @Test func ignoreFileInTheRepositoryRootAppliesToStagedScans() throws {
        let repo = try TemporaryDirectory(); defer { repo.remove() }
        try repo.initRepo()
        try repo.write("fixtures/creds.txt", "k=\(Fake.awsKeyID(51))\n")
        try repo.git("add", ".")
        let first = try ProgramRun.run(StepGuardBinary.path, ["scan", "--staged", "--format", "json"], in: repo.url)
        #expect(first.status == 1)
        let findings = (try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as! [String: Any])["findings"] as! [[String: Any]]
        let fingerprint = try #require(findings.first?["fingerprint"] as? String)
        try repo.write(".stepguard-ignore.yaml", "ignore:\n  - fingerprint: \"\(fingerprint)\"\n    reason: fake key for tests\n")
        let second = try ProgramRun.run(StepGuardBinary.path, ["scan", "--staged"], in: repo.url.appendingPathComponent("fixtures"))
        #expect(second.status == 0, "\(second.stdout) \(second.stderr)")
        #expect(second.stderr.contains("1 suppressed"))
        try repo.write(".stepguard-ignore.yaml", "ignore:\n  - fingerprint: \"\(fingerprint)\"\n    reason: fake key for tests\n    expires: 2001-01-01\n")
        let expired = try ProgramRun.run(StepGuardBinary.path, ["scan", "--staged"], in: repo.url)
        #expect(expired.status == 1)
        #expect(expired.stderr.contains("expired on 2001-01-01"))
    }

    @Test func preCommitFrameworkRefusesASecretAndAcceptsACleanCommit() throws {
        guard let preCommit = try? ProgramRun.run("/usr/bin/env", ["sh", "-c", "command -v pre-commit"], in: StepGuardBinary.packageRoot), preCommit.status == 0 else {
            Issue.record("pre-commit is not installed: pip install pre-commit")
            return
        }
        // A hooks repository holding this package's .pre-commit-hooks.yaml, as pre-commit clones it.
        let hooks = try TemporaryDirectory(); defer { hooks.remove() }
        try hooks.initRepo()
        try hooks.write(".pre-commit-hooks.yaml", try String(contentsOf: StepGuardBinary.packageRoot.appendingPathComponent(".pre-commit-hooks.yaml"), encoding: .utf8))
        try hooks.commitAll("hooks")
        let rev = try hooks.git("rev-parse", "HEAD").trimmingCharacters(in: .whitespacesAndNewlines)

        let repo = try TemporaryDirectory(); defer { repo.remove() }
        let home = try TemporaryDirectory(); defer { home.remove() }
        try repo.initRepo()
        try repo.write(".pre-commit-config.yaml", """
        repos:
          - repo: \(hooks.path)
            rev: \(rev)
            hooks:
              - id: stepguard-system
        """)
        let env = [
            "PATH": StepGuardBinary.packageRoot.appendingPathComponent(".build/debug").path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
            "PRE_COMMIT_HOME": home.path,
        ]
        let install = try ProgramRun.run("/usr/bin/env", ["pre-commit", "install"], in: repo.url, environment: env)
        #expect(install.status == 0, "\(install.stdout) \(install.stderr)")

        try repo.write("README.md", "clean\n")
        try repo.git("add", ".")
        let clean = try ProgramRun.run("/usr/bin/env", ["git", "-c", "user.name=T", "-c", "user.email=t@test.invalid", "commit", "-qm", "clean"], in: repo.url, environment: env)
        #expect(clean.status == 0, "clean commit refused: \(clean.stdout) \(clean.stderr)")

        let secret = Fake.stripe(52)
        try repo.write("billing.py", "STRIPE = '\(secret)'\n")
        try repo.git("add", "billing.py")
        let leak = try ProgramRun.run("/usr/bin/env", ["git", "-c", "user.name=T", "-c", "user.email=t@test.invalid", "commit", "-qm", "leak"], in: repo.url, environment: env)
        #expect(leak.status != 0, "commit with a secret went through")
        #expect((leak.stdout + leak.stderr).contains("stripe-secret-key"))
        #expect(!(leak.stdout + leak.stderr).contains(secret))
        let log = try repo.git("log", "--oneline")
        #expect(log.split(separator: "\n").count == 1, "only the clean commit is recorded")
    }
}
