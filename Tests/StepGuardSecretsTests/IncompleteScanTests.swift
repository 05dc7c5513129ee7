import Testing
@testable import StepGuardSecrets

/// PCRE2's match limit is reported, not taken for "no match"; the scans that then fail (exit 2,
/// naming the rule and the file) are in EndToEndTests' `IncompleteScanTests`.
@Suite struct IncompleteScanTests {
    /// `(a|aa)+` before a `z` that never follows: Fibonacci-many ways to split 40 `a`s, far past
    /// the match limit.
    static let slowText = "x " + String(repeating: "a", count: 40) + "!\nz\n"

    @Test func theRegexReportsTheLimitItHit() throws {
        let regex = try PCRE2Regex("x (a|aa)+z", context: "test")
        var text = Self.slowText
        let outcome = text.withUTF8 { regex.forEachMatch(in: UnsafeRawBufferPointer($0)) { _ in true } }
        guard case .limitHit(let code) = outcome else {
            Issue.record("expected a limit, got \(outcome)")
            return
        }
        #expect(PCRE2Regex.message(code).contains("limit"))
        var fast = "x aaz"
        #expect(fast.withUTF8 { regex.forEachMatch(in: UnsafeRawBufferPointer($0)) { _ in true } } == .complete)
    }

    /// The detector behind `run`'s environment check and the proxy's credential classifier: a
    /// value one rule could not search in full is taken as holding what that rule detects.
    @Test func aValueARuleCouldNotSearchInFullCountsAsDetected() throws {
        var set = SecretRuleSet()
        try set.add(yaml: """
            rules:
              - id: slow-token
                description: A token behind a pathological pattern
                regex: 'x ((a|aa)+z)'
                prefilter: 'x a'
                keywords: ["x a"]
            """, source: "test.yaml")
        let detector = try SecretDetector(ruleSet: set, prefilter: vectorscan)
        let detections = detector.detect(in: Self.slowText)
        #expect(detections.map(\.ruleID) == ["slow-token"])
        #expect(detections.first?.lifetime == .longLived && detections.first?.secret == "")
        #expect(detections.first?.description.contains("could not be searched in full") == true)
        #expect(detector.credentials(in: "x aaz").map(\.ruleID) == ["slow-token"], "a real match still counts")
        #expect(detector.credentials(in: "nothing here").isEmpty)
    }
}
