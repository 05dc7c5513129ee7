@testable import StepGuardSecrets
import Testing

/// The keyword index's pair table (2197afe, 668461b) only skips positions where no keyword starts:
/// against a keyword-by-keyword search, with keywords the built-in rules do not have — one byte
/// long, a second byte outside ASCII, upper-case (as a custom rule's could be before lower-casing),
/// or NUL (a keyword ending where the buffer ends compares its second byte with nothing).
@Suite struct KeywordPairTableTests {
    /// Keyword-by-keyword, ASCII case-insensitive on the buffer, the keyword's bytes as given.
    private static func naive(_ text: [UInt8], _ keywords: [[UInt8]]) -> Bool {
        let lowered = text.map { ($0 >= 65 && $0 <= 90) ? $0 + 32 : $0 }
        return keywords.isEmpty || keywords.contains { word in
            word.isEmpty || (lowered.count >= word.count && (0...(lowered.count - word.count)).contains { Array(lowered[$0..<($0 + word.count)]) == word })
        }
    }

    @Test func thePairTableSkipsNoPositionWhereAKeywordStarts() {
        let keywords: [[[UInt8]]] = [
            ["é"], ["xé"], ["éx"], ["z"], ["Ab"], ["aB"], ["q\u{0}"], ["\u{0}"], ["ÿ"], ["-"], ["k\u{212A}"],
        ].map { $0.map { Array($0.utf8) } } + [[[0xC3]], [[0x41]], [[0x61, 0xA9]]]
        let index = KeywordIndex(rules: Array(keywords.indices)) { keywords[$0] }
        var generator = SystemRandomNumberGenerator()
        let pieces: [[UInt8]] = ["é", "É", "x", "X", "Z", "z", "A", "a", "b", "B", "q", "Q", "-", "ÿ", "\u{212A}", "k"].map { Array($0.utf8) }
            + [[0], [0xC3], [0xA9], [0x61, 0xA9]]
        for _ in 0..<5_000 {
            let text = (0..<Int.random(in: 0...7, using: &generator)).flatMap { _ in pieces.randomElement(using: &generator)! }
            var hits = [Bool](repeating: false, count: keywords.count)
            text.withUnsafeBytes { index.markRules(in: $0, hits: &hits) }
            #expect(hits == keywords.map { Self.naive(text, $0) }, "\(text)")
        }
    }
}
