import Dispatch
@testable import StepGuardSecrets
import Synchronization
import Testing

/// Patterns run on PCRE2's interpreter until they have matched over `jitThreshold` bytes, then on
/// a JIT-compiled copy: the matches are the same either way, also for threads matching meanwhile.
@Suite struct PCRE2JITTests {
    private static func matches(_ regex: PCRE2Regex, _ text: [UInt8]) -> [Range<Int>] {
        var found: [Range<Int>] = []
        text.withUnsafeBytes { _ = regex.forEachMatch(in: $0) { found.append($0.groups[0] ?? $0.whole); return true } }
        return found
    }

    @Test func shortValuesStayOnTheInterpreterAndLongInputSwitchesToJITWithTheSameMatches() throws {
        let regex = try PCRE2Regex("tok_([a-z0-9]{8})", context: "test")
        let value = Array("x tok_abcd1234 y tok_zzzz9999".utf8)
        let before = Self.matches(regex, value)
        #expect(before.count == 2)
        #expect(!regex.isJITCompiled, "a short value JIT-compiled the pattern")
        let long = [UInt8](repeating: UInt8(ascii: "."), count: PCRE2Regex.jitThreshold) + value
        #expect(Self.matches(regex, long).map { $0.lowerBound - PCRE2Regex.jitThreshold } == before.map(\.lowerBound))
        #expect(regex.isJITCompiled)
        #expect(Self.matches(regex, value) == before)
    }

    @Test func threadsMatchingWhileThePatternSwitchesAllSeeTheSameMatches() throws {
        let regex = try PCRE2Regex("tok_([a-z0-9]{8})", context: "test")
        let text = Array(String(repeating: "abc tok_abcd1234 def ", count: 200).utf8)  // 4,200 bytes: the 4th match crosses
        let expected = Self.matches(try PCRE2Regex("tok_([a-z0-9]{8})", context: "test"), text)
        let differing = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 64) { _ in
            if Self.matches(regex, text) != expected { differing.add(1, ordering: .relaxed) }
        }
        #expect(differing.load(ordering: .relaxed) == 0)
        #expect(regex.isJITCompiled)
    }
}
