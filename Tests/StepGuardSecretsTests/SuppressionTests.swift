import StepGuardCore
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import StepGuardTestSupport
import StepGuardSecretsTestSupport
import Testing
@testable import StepGuardSecrets

@Suite struct SuppressionTests {
    /// Ignore entries expire by the UTC date, computed without a named time zone (the binary has no
    /// ICU); leap days and the last second of a day included.
    @Test(arguments: [(0.0, 19700101), (951_868_799, 20000229), (1_796_687_999, 20261207), (4_107_542_400, 21000301)])
    func todayIsTheUTCDate(seconds: Double, expected: Int) {
        #expect(IgnoreFile.today(Date(timeIntervalSince1970: seconds)) == expected)
    }

    func report(with findings: [(String, String)]) throws -> ScanReport {
        var r = ScanReport()
        for (path, secret) in findings {
            let bytes = Array("k=\(secret)\n".utf8)
            r.findings += try scanner().scan(bytes: bytes, path: path).findings
        }
        return r
    }

    @Test func ignoreFileSuppressesByFingerprintAndExpiredEntriesReturn() throws {
        var r = try report(with: [("tests/a.txt", Fake.awsKeyID(30)), ("tests/b.txt", Fake.stripe(31))])
        let a = r.findings[0].fingerprint, b = r.findings[1].fingerprint
        let ignore = try IgnoreFile(yaml: """
        ignore:
          - fingerprint: "\(a)"
            reason: fixture for the parser tests
          - fingerprint: "\(b)"
            reason: was a fixture until the end of 2020
            expires: 2020-12-31
        """, source: ".stepguard-ignore.yaml")
        ignore.apply(to: &r)
        #expect(r.findings.map(\.fingerprint) == [b])
        #expect(r.suppressed == 1)
        #expect(r.expiredIgnores.count == 1)
        #expect(r.expiredIgnores[0].contains("expired on 2020-12-31"))
    }

    @Test func fingerprintDoesNotDependOnLineNumbers() throws {
        let s = try scanner()
        let one = s.scan(bytes: Array("k=\(Fake.awsKeyID(32))\n".utf8), path: "x.txt").findings
        let two = s.scan(bytes: Array("\n\n\nother\nk=\(Fake.awsKeyID(32))\n".utf8), path: "x.txt").findings
        #expect(one.count == 1 && two.count == 1)
        #expect(one[0].fingerprint == two[0].fingerprint)
        #expect(one[0].line != two[0].line)
        #expect(!one[0].fingerprint.contains(Fake.awsKeyID(32)))
    }

    @Test func ignoreEntryWithoutReasonIsAnErrorNamingTheEntry() throws {
        do {
            _ = try IgnoreFile(yaml: "ignore:\n  - fingerprint: x:y:z\n", source: "repo/.stepguard-ignore.yaml")
            Issue.record("an entry without a reason must be rejected")
        } catch let error as SecretsError {
            #expect(error.message.contains("repo/.stepguard-ignore.yaml"))
            #expect(error.message.contains("ignore[0]"))
            #expect(error.message.contains("reason"))
        }
        #expect(throws: SecretsError.self) {
            _ = try IgnoreFile(yaml: "ignore:\n  - {fingerprint: a, reason: b, expires: soon}\n", source: "f")
        }
    }

    @Test func baselineReportsOnlyNewFindings() throws {
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        let old = try report(with: [("a.txt", Fake.awsKeyID(33))])
        try dir.write("baseline.json", Reporter(format: .json).render(old, rules: []))
        var now = try report(with: [("a.txt", Fake.awsKeyID(33)), ("b.txt", Fake.stripe(34))])
        try Baseline(path: dir.path + "/baseline.json").apply(to: &now)
        #expect(now.findings.map(\.ruleID) == ["stripe-secret-key"])
        #expect(now.suppressed == 1)
        try dir.write("bad.json", "not json")
        #expect(throws: SecretsError.self) { try Baseline(path: dir.path + "/bad.json") }
    }
}

@Suite struct ReporterTests {
    func sample() throws -> (ScanReport, [String]) {
        let secrets = [Fake.githubPAT(40), Fake.awsKeyID(41)]
        var r = try scanner().scan(bytes: Array("a=\(secrets[0])\nb: \"<x>\" \(secrets[1])\n".utf8), path: "dir/with,comma:colon.txt")
        r.findings[1].commit = "0123456789abcdef0123456789abcdef01234567"
        r.findings[1].author = "A & B <c>"
        return (r, secrets)
    }

    @Test(arguments: ReportFormat.allCases)
    func noFormatPrintsASecretInFull(_ format: ReportFormat) throws {
        let (r, secrets) = try sample()
        let rules = try SecretDetector.builtIn(prefilter: vectorscan).rules
        for mode in [RedactionMode.partial, .full] {
            let out = Reporter(format: format, redaction: mode).render(r, rules: rules)
            for s in secrets { #expect(!out.contains(s)) }
            #expect(out.contains(secretHash(secrets[0])))
        }
        let clear = Reporter(format: format, redaction: .none).render(r, rules: rules)
        #expect(clear.contains(secrets[0]), "--redact=none shows the secret for local triage")
    }

    @Test func githubFormatIsWorkflowCommandsWithEscapedProperties() throws {
        let (r, _) = try sample()
        let lines = Reporter(format: .github).render(r, rules: []).split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines[0].hasPrefix("::error file=dir/with%2Ccomma%3Acolon.txt,line=1,col=3,"))
        #expect(lines[1].contains(",line=2,"))
    }

    @Test func junitIsWellFormedXML() throws {
        let (r, _) = try sample()
        let xml = Reporter(format: .junit).render(r, rules: [])
        let doc = try XMLDocument(data: Data(xml.utf8))
        let failures = try doc.nodes(forXPath: "//testcase/failure")
        #expect(failures.count == 2)
        let clean = try XMLDocument(data: Data(Reporter(format: .junit).render(ScanReport(), rules: []).utf8))
        #expect(try clean.nodes(forXPath: "//testcase").count == 1)
        #expect(try clean.nodes(forXPath: "//failure").isEmpty)
    }

    @Test func sarifValidatesAgainstTheSARIF210Schema() throws {
        let (r, _) = try sample()
        let sarif = Reporter(format: .sarif).render(r, rules: try SecretDetector.builtIn(prefilter: vectorscan).rules)
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        try dir.write("out.sarif", sarif)
        // pydantic-sarif: models generated from the official sarif-schema-2.1.0.json, extra keys forbidden.
        let check = try ProgramRun.run("/usr/bin/env", ["python3", "-c", """
        import sys
        try:
            from pydantic_sarif.model import StaticAnalysisResultsFormatSarifVersion210JsonSchema as Log
        except ImportError:
            sys.exit("pydantic-sarif is not installed: pip install pydantic-sarif")
        log = Log.model_validate_json(open(sys.argv[1]).read())
        assert len(log.runs[0].results) == 2, len(log.runs[0].results)
        print("valid")
        """, dir.path + "/out.sarif"], in: dir.url)
        #expect(check.status == 0, "\(check.stderr)")
        #expect(check.stdout.contains("valid"))
        let object = try JSONSerialization.jsonObject(with: Data(sarif.utf8)) as! [String: Any]
        #expect(object["version"] as? String == "2.1.0")
    }
}
