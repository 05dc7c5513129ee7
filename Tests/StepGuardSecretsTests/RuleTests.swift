import StepGuardCore
import Foundation
import Testing
@testable import StepGuardSecrets

/// The package root, derived from this file's path.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

@Suite struct RuleTests {
    let detector: SecretDetector
    /// The same rules with the keyword prefilter (what `run` classifies the environment with).
    let keywordDetector: SecretDetector

    init() throws {
        detector = try SecretDetector.builtIn(prefilter: vectorscan)
        keywordDetector = try SecretDetector.builtIn(prefilter: .keywords)
    }

    @Test func builtInRulesAreAtLeastEightyWithUniqueIDsAndExamples() throws {
        let rules = detector.rules
        #expect(rules.count >= 80)
        #expect(Set(rules.map(\.id)).count == rules.count)
        for rule in rules {
            #expect(!rule.description.isEmpty, "\(rule.id) has no description")
            // Container rules match binary headers (no keywords, no YAML examples): KeyContainerTests
            // builds their examples at run time.
            if rule.container != nil { continue }
            #expect(!rule.keywords.isEmpty, "\(rule.id) has no keywords")
            #expect(!(rule.examples?.match.isEmpty ?? true), "\(rule.id) has no match example")
            #expect(!(rule.examples?.noMatch.isEmpty ?? true), "\(rule.id) has no no_match example")
        }
    }

    @Test func everyRuleFindsItsMatchExamples() throws {
        for (index, rule) in detector.rules.enumerated() {
            for template in rule.examples?.match ?? [] {
                let text = ExampleTemplate.expand(template)
                let found = scan(text)
                #expect(found.contains { $0.ruleIndex == index }, "rule \(rule.id) misses its example \(template)")
            }
        }
    }

    @Test func everyMatchExampleContainsOneOfItsRulesKeywords() throws {
        // The keyword prefilter is sound only if every match holds a keyword.
        for rule in detector.rules {
            for template in rule.examples?.match ?? [] {
                let text = ExampleTemplate.expand(template).lowercased()
                #expect(rule.keywords.contains { text.contains($0) }, "rule \(rule.id): no keyword in its example \(template)")
            }
        }
    }

    @Test func bothPrefiltersFindTheSameOnEveryExample() throws {
        for rule in detector.rules {
            for template in (rule.examples?.match ?? []) + (rule.examples?.noMatch ?? []) {
                let text = ExampleTemplate.expand(template)
                let byVectorscan = scan(text, with: detector).map { "\($0.ruleIndex):\($0.range)" }
                let byKeywords = scan(text, with: keywordDetector).map { "\($0.ruleIndex):\($0.range)" }
                #expect(byVectorscan == byKeywords, "rule \(rule.id): the prefilters disagree on \(template)")
            }
        }
        #expect(keywordDetector.engine.database == nil)
    }

    @Test func everyRuleStaysQuietOnItsNoMatchExamples() throws {
        for (index, rule) in detector.rules.enumerated() {
            for template in rule.examples?.noMatch ?? [] {
                let text = ExampleTemplate.expand(template)
                let found = scan(text)
                #expect(!found.contains { $0.ruleIndex == index }, "rule \(rule.id) fires on its no_match example \(template)")
            }
        }
    }

    @Test func examplesInTheRulesFilesAreNotLiteralCredentials() throws {
        // The YAML must never hold a scannable credential: every match example needs a template
        // (`{cut}` or a random part) to become one.
        let directory = packageRoot.appendingPathComponent("rules/secrets")
        var set = SecretRuleSet()
        try set.add(directory: directory)
        let engine = try SecretEngine(ruleSet: set, prefilter: vectorscan)
        for (index, rule) in set.rules.enumerated() where !engine.rules[index].isGeneric {
            for template in rule.examples?.match ?? [] {
                var raw = template
                let hits = raw.withUTF8 { engine.matches(in: UnsafeRawBufferPointer($0), path: nil, options: MatchOptions()) }
                #expect(!hits.contains { $0.ruleIndex == index }, "rule \(rule.id): example is a literal credential: \(redact(template))")
            }
        }
    }

    /// Nothing under `rules/` (secret rules, service catalog and its request examples, policies)
    /// trips stepguard's own scanner, generic rules included: a template (`{cut}`, `{alnum:20}`)
    /// is never a credential, nor is a URN such as `urn:ietf:params:oauth:token-type:jwt`.
    @Test func theRulesDirectoryScansClean() throws {
        let engine = try SecretEngine(ruleSet: SecretRuleSet.builtIn(), prefilter: vectorscan)
        let root = packageRoot.appendingPathComponent("rules")
        let files = try #require(FileManager.default.enumerator(atPath: root.path)).compactMap { $0 as? String }
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".md") }
        #expect(files.count >= 30)
        for file in files {
            var text = try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8)
            let hits = text.withUTF8 { engine.matches(in: UnsafeRawBufferPointer($0), path: "rules/\(file)", options: MatchOptions()) }
            let found = hits.map { "\(engine.rules[$0.ruleIndex].rule.id) \(redact($0.secret))" }
            #expect(found.isEmpty, "rules/\(file): \(found)")
        }
    }

    /// The YAML files of rules/secrets/, in file-name order: the source the embedded values are made from.
    static func rulesOnDisk() throws -> [(name: String, text: String)] {
        let directory = packageRoot.appendingPathComponent("rules/secrets")
        return try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".yaml") }.sorted()
            .map { ($0, try String(contentsOf: directory.appendingPathComponent($0), encoding: .utf8)) }
    }

    @Test func embeddedRulesAreInSyncWithRulesDirectory() throws {
        let names = try Self.rulesOnDisk().map(\.name)
        #expect(EmbeddedRules.ruleFiles.map { $0.name ?? "" } == names, "run python3 rules/secrets/embed.py")
    }

    @Test func embeddedValuesMatchTheYAML() throws {
        let onDisk = try Self.rulesOnDisk()
        var fromYAML = SecretRuleSet()
        for (name, text) in onDisk {
            var file = SecretRuleSet()
            try file.add(yaml: text, source: "rules/secrets/\(name)")
            var embedded = SecretRuleSet()
            for values in EmbeddedRules.ruleFiles where values.name == name { embedded.add(values) }
            #expect(embedded.rules == file.rules && embedded.allow == file.allow,
                    "\(name) differs from the embedded values: run python3 rules/secrets/embed.py")
            try fromYAML.add(yaml: text, source: "rules/secrets/\(name)")
        }
        // The whole set, compared by id (a difference in a rule is named by its file above).
        let fromValues = SecretRuleSet.builtIn()
        #expect(fromValues.rules.map(\.id) == fromYAML.rules.map(\.id), "run python3 rules/secrets/embed.py")
        #expect(fromValues.rules == fromYAML.rules && fromValues.allow == fromYAML.allow, "run python3 rules/secrets/embed.py")
    }

    @Test func githubChecksumIsEnforcedInScansButNotByTheClassifier() throws {
        let valid = ExampleTemplate.expand("{gh:ghp}")
        let broken = String(valid.dropLast()) + (valid.last == "A" ? "B" : "A")
        #expect(scan("t=\(valid)").contains { detector.rules[$0.ruleIndex].id == "github-pat-classic" })
        #expect(!scan("t=\(broken)").contains { detector.rules[$0.ruleIndex].id == "github-pat-classic" })
        #expect(detector.detect(in: broken).contains { $0.ruleID == "github-pat-classic" })
    }

    @Test func classifierReportsLifetimes() throws {
        let ghs = ExampleTemplate.expand("{gh:ghs}")
        let asia = ExampleTemplate.expand("AS{cut}IA{b32:16}")
        let akia = ExampleTemplate.expand("AK{cut}IA{b32:16}")
        #expect(detector.detect(in: ghs).map(\.lifetime) == [.shortLived])
        #expect(detector.detect(in: asia).map(\.lifetime) == [.shortLived])
        let long = detector.detect(in: akia)
        #expect(long.map(\.ruleID) == ["aws-access-key-id"])
        #expect(long.first?.lifetime == .longLived)
        #expect(long.first?.secret == akia)
        #expect(detector.detect(in: "just a value").isEmpty)
    }

    @Test func redactionNeverShowsTheWholeSecret() throws {
        let secret = ExampleTemplate.expand("{gh:ghp}")
        let r = redact(secret)
        #expect(!r.contains(secret))
        #expect(r.hasPrefix("ghp_"))
        #expect(r.contains(secretHash(secret)))
        #expect(!redact(secret, mode: .full).contains("ghp_"))
        #expect(redact("ab") != "ab")
    }

    @Test func invalidUTF8AndHugeLinesDoNotCrash() throws {
        var bytes = [UInt8](repeating: 0xFF, count: 1000) + Array("token=".utf8)
        bytes += [UInt8](repeating: UInt8(ascii: "a"), count: 5_000_000)
        bytes += [0xC3, 0x28] + Array(ExampleTemplate.expand(" {gh:ghp} ").utf8) + [0xE2, 0x82]
        let found = bytes.withUnsafeBytes { detector.engine.matches(in: $0, path: nil, options: MatchOptions()) }
        #expect(found.contains { detector.rules[$0.ruleIndex].id == "github-pat-classic" })
    }

    @Test func manyFindingsOnOneHugeLineStayLinear() throws {
        // A minified / single-line JSON file with hundreds of candidate secrets (as in test vectors).
        var text = "["
        for i in 0..<300 {
            text += "{\"client_secret\":\"\(ExampleTemplate.expand("{alnum:32}", seed: UInt64(i)))\",\"pad\":\"\(String(repeating: "x", count: 20_000))\"},"
        }
        text += "]"
        let clock = ContinuousClock()
        var report = ScanReport()
        let elapsed = try clock.measure {
            report = try scanner().scan(bytes: Array(text.utf8), path: "vectors.json")
        }
        #expect(report.findings.count == 300)
        #expect(report.findings.allSatisfy { $0.line == 1 })
        #expect(elapsed < .seconds(5), "scan of a 6 MB single-line file took \(elapsed)")
    }

    @Test func badRuleFileSaysWhereAndWhat() throws {
        var set = SecretRuleSet()
        do {
            try set.add(yaml: "rules:\n  - id: x\n", source: "custom.yaml")
            Issue.record("a rule without description and regex must be rejected")
        } catch let error as SecretsError {
            #expect(error.message.contains("custom.yaml"))
            #expect(error.message.contains("description"))
        }
        try set.add(yaml: "rules:\n  - {id: bad, description: d, regex: '(unclosed'}\n", source: "bad.yaml")
        #expect(throws: SecretsError.self) { _ = try SecretEngine(ruleSet: set, prefilter: vectorscan) }
    }

    func scan(_ text: String, with detector: SecretDetector? = nil) -> [RawMatch] {
        var text = text
        let engine = (detector ?? self.detector).engine
        return text.withUTF8 { engine.matches(in: UnsafeRawBufferPointer($0), path: nil, options: MatchOptions()) }
    }
}
