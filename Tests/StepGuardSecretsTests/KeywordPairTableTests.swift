@testable import StepGuardSecrets
import Testing

/// The keyword index's pair table (2197afe, 668461b) only skips positions where no keyword starts:
/// against a keyword-by-keyword search, with keywords the built-in rules do not have — one byte
/// long, a second byte outside ASCII, upper-case (as a custom rule's could be before lower-casing),
/// or NUL (a keyword ending where the buffer ends compares its second byte with nothing).
@Suite struct KeywordPairTableTests {
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
            #expect(hits == keywords.map { KeywordIndexTests.naive(text, $0) }, "\(text)")
        }
    }
}
