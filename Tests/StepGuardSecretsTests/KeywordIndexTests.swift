@testable import StepGuardSecrets
import Testing

/// The keyword index finds exactly the rules a keyword-by-keyword search finds.
@Suite struct KeywordIndexTests {
    /// Keyword-by-keyword, ASCII case-insensitive, a rule without keywords always running: what the index replaces.
    static func naive(_ text: [UInt8], _ keywords: [[UInt8]]) -> Bool {
        let lowered = text.map { ($0 >= 65 && $0 <= 90) ? $0 + 32 : $0 }
        return keywords.isEmpty || keywords.contains { word in
            word.isEmpty || (lowered.count >= word.count && (0...(lowered.count - word.count)).contains { Array(lowered[$0..<($0 + word.count)]) == word })
        }
    }

    @Test func findsTheSameRulesAsAKeywordByKeywordSearch() {
        let keywords: [[[UInt8]]] = [["ghp_", "github"], ["akia"], [], ["xoxb-", "xoxp-"], ["password", "pass"], [""], ["a"]]
            .map { $0.map { Array($0.utf8) } }
        let index = KeywordIndex(rules: Array(keywords.indices)) { keywords[$0] }
        var generator = SystemRandomNumberGenerator()
        let pieces = ["GHP_", "ghp", "_", "GitHub", "AKIA", "xoxB-", "xox", "PaSs", "word", "b", "-", "é", "\u{0}", "A"]
        for _ in 0..<2_000 {
            let text = Array((0..<Int.random(in: 0...8, using: &generator)).map { _ in pieces.randomElement(using: &generator)! }.joined().utf8)
            var hits = [Bool](repeating: false, count: keywords.count)
            text.withUnsafeBytes { index.markRules(in: $0, hits: &hits) }
            let expected = keywords.map { Self.naive(text, $0) }
            #expect(hits == expected, "\(String(decoding: text, as: UTF8.self))")
        }
    }

    @Test func rulesOutsideTheIndexAreLeftAlone() {
        let keywords: [[UInt8]] = [Array("token".utf8)]
        let index = KeywordIndex(rules: [1]) { _ in keywords }
        var hits = [false, false, true]
        Array("a TOKEN here".utf8).withUnsafeBytes { index.markRules(in: $0, hits: &hits) }
        #expect(hits == [false, true, true])
    }
}
