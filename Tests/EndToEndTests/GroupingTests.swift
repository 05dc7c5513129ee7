import StepGuardCore
import Foundation
import StepGuardTestSupport
import StepGuardSecretsTestSupport
import Testing
import StepGuardSecrets

/// One finding per secret: a value repeated across lines, files or commits is one entry in the
/// text, SARIF, GitHub and JUnit reports with every location; JSON keeps one entry per location.
@Suite struct GroupingTests {
    /// `S` three times (twice in a.env, once in b.env), `T` once.
    func tree() throws -> (TemporaryDirectory, String, String) {
        let dir = try TemporaryDirectory()
        let s = Fake.githubPAT(61), t = Fake.stripe(62)
        try dir.write("a.env", "A=\(s)\nX=1\nB=\(s)\n")
        try dir.write("b.env", "C=\(s)\n")
        try dir.write("c.env", "D=\(t)\n")
        return (dir, s, t)
    }

    @Test func aRepeatedValueIsOneFindingWithEveryLocation() throws {
        let (dir, s, t) = try tree(); defer { dir.remove() }

        let text = try ProgramRun.run(StepGuardBinary.path, ["scan", "."], in: dir.url)
        #expect(text.status == 1)
        // The walk decides which file comes first; within a file, lines are in order.
        let heads = text.stdout.split(separator: "\n").filter { !$0.hasPrefix(" ") }
        #expect(heads.count == 2, "\(text.stdout)")
        let pat = try #require(heads.first { $0.contains(" github-pat-classic ") })
        #expect(pat.hasSuffix("(3 locations)"), "\(text.stdout)")
        #expect(text.stdout.components(separatedBy: "    also at ").count - 1 == 2)
        #expect(text.stdout.contains("a.env:3:3"))
        let inB = Finding.fingerprint(ruleID: "github-pat-classic", path: "b.env", secret: s)
        #expect(pat.hasPrefix("b.env:1:3:") || text.stdout.contains("    also at b.env:1:3, fingerprint: \(inB)\n"), "\(text.stdout)")
        #expect(text.stderr.contains("2 secrets found (4 locations)"), "\(text.stderr)")

        let json = try ProgramRun.run(StepGuardBinary.path, ["scan", "--format", "json", "."], in: dir.url)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let findings = try #require(object["findings"] as? [[String: Any]])
        #expect(findings.count == 4)
        let groups = Set(findings.compactMap { $0["group"] as? String })
        #expect(groups == ["github-pat-classic:\(secretHash(s))", "stripe-secret-key:\(secretHash(t))"])
        #expect((object["summary"] as? [String: Any])?["secrets"] as? Int == 2)

        let sarif = try ProgramRun.run(StepGuardBinary.path, ["scan", "--format", "sarif", "."], in: dir.url)
        let runs = (try JSONSerialization.jsonObject(with: Data(sarif.stdout.utf8)) as? [String: Any])?["runs"] as? [[String: Any]]
        let results = try #require(runs?.first?["results"] as? [[String: Any]])
        #expect(results.count == 2)
        let patResult = try #require(results.first { $0["ruleId"] as? String == "github-pat-classic" })
        let uris = (patResult["locations"] as? [[String: Any]] ?? []).compactMap {
            (($0["physicalLocation"] as? [String: Any])?["artifactLocation"] as? [String: Any])?["uri"] as? String
        }
        #expect(uris.sorted() == ["a.env", "a.env", "b.env"])
        #expect(((patResult["properties"] as? [String: Any])?["fingerprints"] as? [String])?.count == 2)

        let github = try ProgramRun.run(StepGuardBinary.path, ["scan", "--format", "github", "."], in: dir.url)
        let annotations = github.stdout.split(separator: "\n").filter { $0.hasPrefix("::error ") }
        #expect(annotations.count == 2, "\(github.stdout)")
        #expect(annotations.contains { $0.contains("also at a.env:3:3, b.env:1:3") || $0.contains("also at a.env:1:3, a.env:3:3") }, "\(github.stdout)")

        let junit = try ProgramRun.run(StepGuardBinary.path, ["scan", "--format", "junit", "."], in: dir.url)
        #expect(junit.stdout.components(separatedBy: "<testcase ").count - 1 == 2, "\(junit.stdout)")

        for output in [text, json, sarif, github, junit] {
            #expect(!output.stdout.contains(s) && !output.stdout.contains(t))
        }
    }

    /// Ignore entries and baselines act on locations (by fingerprint, which names the path), before
    /// grouping: ignoring a.env's fingerprint leaves the b.env location of the same secret.
    @Test func ignoreFilesAndBaselinesStillWorkPerLocation() throws {
        let (dir, s, _) = try tree(); defer { dir.remove() }
        let inA = Finding.fingerprint(ruleID: "github-pat-classic", path: "a.env", secret: s)
        try dir.write(".stepguard-ignore.yaml", "ignore:\n  - fingerprint: \"\(inA)\"\n    reason: fixture\n")
        let ignored = try ProgramRun.run(StepGuardBinary.path, ["scan", "."], in: dir.url)
        #expect(ignored.status == 1)
        #expect(ignored.stdout.contains("b.env:1:3: github-pat-classic") && !ignored.stdout.contains("a.env"), "\(ignored.stdout)")
        #expect(!ignored.stdout.contains("locations)"))
        #expect(ignored.stderr.contains("2 secrets found") && ignored.stderr.contains("2 suppressed"), "\(ignored.stderr)")

        // The baseline lives outside the scanned tree.
        let elsewhere = try TemporaryDirectory(); defer { elsewhere.remove() }
        let baseline = elsewhere.url.appendingPathComponent("baseline.json").path
        let report = try ProgramRun.run(StepGuardBinary.path, ["scan", "--format", "json", "--output", baseline, "."], in: dir.url)
        #expect(report.status == 1)
        let again = try ProgramRun.run(StepGuardBinary.path, ["scan", "--baseline", baseline, "."], in: dir.url)
        #expect(again.status == 0, "\(again.stdout)")
        #expect(again.stderr.contains("0 secrets found"))
    }

    /// In history, the same secret added in two commits (and two files) is one finding listing both.
    @Test func historyGroupsOneSecretAcrossCommits() throws {
        let repo = try TemporaryDirectory(); defer { repo.remove() }
        try repo.initRepo()
        let s = Fake.githubPAT(63)
        try repo.write("one.env", "T=\(s)\n")
        try repo.commitAll("one")
        try repo.write("two.env", "U=\(s)\n")
        try repo.commitAll("two")
        let r = try ProgramRun.run(StepGuardBinary.path, ["scan", "--history"], in: repo.url)
        #expect(r.status == 1)
        #expect(r.stdout.split(separator: "\n").filter { !$0.hasPrefix(" ") }.count == 1, "\(r.stdout)")
        #expect(r.stdout.contains("(2 locations)") && r.stdout.contains("    also at ") && r.stdout.contains(" in commit "))
        #expect(r.stderr.contains("1 secret found (2 locations)"), "\(r.stderr)")
    }
}

/// `--output` writes into the named file as a shell's `>` does, never replacing it.
@Suite struct ReportOutputTests {
    @Test func outputFollowsALinkAndKeepsADeviceADevice() throws {
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        try dir.write("leak.env", "T=\(Fake.githubPAT(64))\n")
        try dir.write("reports/real.json", "old\n")
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/link.json", withDestinationPath: "reports/real.json")
        let r = try ProgramRun.run(StepGuardBinary.path, ["scan", "--format", "json", "--output", "link.json", "leak.env"], in: dir.url)
        #expect(r.status == 1, "\(r.stderr)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: dir.path + "/link.json") == "reports/real.json", "the link was replaced")
        #expect(try String(contentsOfFile: dir.path + "/reports/real.json", encoding: .utf8).contains("\"github-pat-classic\""))

        // A character device like /dev/null (made here, as root, in the test's own directory).
        guard getuid() == 0 else { return }
        let device = dir.path + "/null"
        #expect(mknod(device, S_IFCHR | 0o666, dev_t(1 << 8 | 3)) == 0, "mknod: \(errno)")  // makedev(1, 3)
        let d = try ProgramRun.run(StepGuardBinary.path, ["scan", "--format", "json", "--output", device, "leak.env"], in: dir.url)
        #expect(d.status == 1)
        var st = stat()
        #expect(stat(device, &st) == 0 && (st.st_mode & S_IFMT) == S_IFCHR, "the device became a regular file")
    }
}
