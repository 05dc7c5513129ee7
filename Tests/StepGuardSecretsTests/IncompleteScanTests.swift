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
}
