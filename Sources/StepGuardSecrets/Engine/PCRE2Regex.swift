import CPCRE2
import Synchronization

/// A PCRE2 pattern compiled once and matched over raw bytes. It is JIT-compiled once it has been
/// matched over ``jitThreshold`` bytes, not at load: most rules never get past the vectorscan
/// prefilter, and JIT-compiling a pattern (0.1–0.3 ms) costs more than PCRE2's interpreter spends
/// on the short values `stepguard run` classifies (each environment variable, headers in flight):
/// with JIT on first use, the step's environment cost ~1 ms of compiling before every step
/// (issue #17's start-up). A file or a history crosses the threshold at once. A ``init(deferred:context:)``
/// pattern (the built-in rules, which the tests compile and check) is not even compiled until its
/// first match: classifying a step's environment reaches few of the rules.
///
/// `@unchecked Sendable`: the compiled code is only changed by the one-time compile and JIT
/// compile, which happen under `compiled`'s lock before any match; PCRE2 documents `pcre2_match` as
/// thread-safe on shared code, and each call creates its own match data.
final class PCRE2Regex: @unchecked Sendable {
    /// The compiled code and whether it was JIT-compiled; nil until a deferred pattern is first used.
    private struct Compiled: @unchecked Sendable {  // PCRE2 code is shared read-only once compiled
        var code: OpaquePointer
        var captureCount: Int
        var jit = false
        /// Code replaced by its JIT-compiled copy: matches under way may still use it, so it is
        /// freed with the pattern (JIT-compiling code another thread is matching with is a race).
        var retired: [OpaquePointer] = []
    }
    private let pattern: String
    private let context: String
    private let compiled: Mutex<Compiled?>
    private let matchContext: OpaquePointer?
    /// Bytes matched over so far, until the pattern is JIT-compiled.
    private let matchedBytes = Atomic<Int>(0)

    /// Bytes a pattern is matched over with the interpreter before it is JIT-compiled.
    static let jitThreshold = 16 * 1024

    /// Whether the pattern has been JIT-compiled (for the tests).
    var isJITCompiled: Bool { compiled.withLock { $0?.jit ?? false } }

    /// Number of capture groups in the pattern (compiles a deferred pattern).
    var captureCount: Int { compiledCode().captureCount }

    /// Compiles `pattern`; throws with the offset of the error when it does not compile.
    convenience init(_ pattern: String, context: String) throws {
        self.init(deferred: pattern, context: context)
        let made = try Self.compile(pattern, context: context)
        compiled.withLock { $0 = made }
    }

    /// `pattern`, compiled on first use. Only for patterns known to compile (the built-in rules:
    /// every one is compiled and checked by the tests); if one does not, its first use stops the
    /// process rather than match nothing.
    init(deferred pattern: String, context: String) {
        self.pattern = pattern
        self.context = context
        compiled = Mutex(nil)
        let ctx = pcre2_match_context_create_8(nil)
        if let ctx {
            // Bound backtracking so a pathological line cannot stall the scan.
            pcre2_set_match_limit_8(ctx, 1_000_000)
            pcre2_set_depth_limit_8(ctx, 10_000)
        }
        matchContext = ctx
    }

    private static func compile(_ pattern: String, context: String) throws -> Compiled {
        var errorCode: Int32 = 0
        var errorOffset: Int = 0
        let code = pattern.withCString { ptr in
            pcre2_compile_8(UnsafeRawPointer(ptr).assumingMemoryBound(to: UInt8.self), pattern.utf8.count, 0, &errorCode, &errorOffset, nil)
        }
        guard let code else {
            throw SecretsError(.invalidRegex, "\(context): regex does not compile at offset \(errorOffset): \(Self.message(errorCode)); fix the rule's `regex`")
        }
        var count: UInt32 = 0
        _ = pcre2_pattern_info_8(code, UInt32(PCRE2_INFO_CAPTURECOUNT), &count)
        return Compiled(code: code, captureCount: Int(count))
    }

    /// The compiled code, compiling a deferred pattern first; JIT-compiled (where JIT is
    /// available) once the pattern has been matched over ``jitThreshold`` bytes, counting `count`.
    private func compiledCode(matching count: Int = 0) -> Compiled {
        let matched = count == 0 ? matchedBytes.load(ordering: .relaxed) : matchedBytes.add(count, ordering: .relaxed).newValue
        return compiled.withLock { state in
            if state == nil {
                do {
                    state = try Self.compile(pattern, context: context)
                } catch {
                    fatalError("\(error)")  // a built-in rule that the tests did not compile
                }
            }
            if !state!.jit && matched >= Self.jitThreshold {
                if let copy = pcre2_code_copy_8(state!.code) {
                    _ = pcre2_jit_compile_8(copy, PCRE2_JIT_COMPLETE)  // falls back to the interpreter if JIT is unavailable
                    state!.retired.append(state!.code)
                    state!.code = copy
                }
                state!.jit = true
            }
            return state!
        }
    }

    deinit {
        compiled.withLock { state in
            for code in (state.map { [$0.code] + $0.retired } ?? []) { pcre2_code_free_8(code) }
        }
        if let matchContext { pcre2_match_context_free_8(matchContext) }
    }

    /// One match: the whole match range and the range of each capture group (nil when unset).
    struct Match {
        var whole: Range<Int>
        var groups: [Range<Int>?]
    }

    /// How a pass over a buffer ended.
    enum Outcome: Equatable {
        /// Every match was reported (or `body` asked to stop).
        case complete
        /// PCRE2 gave up (match, depth or heap limit, JIT stack, memory) with this error code:
        /// the rest of the buffer was not searched.
        case limitHit(Int32)
    }

    /// Every non-overlapping match in `bytes`, calling `body` for each; `body` returns false to stop.
    /// Returns `.limitHit` when PCRE2 stopped before the end of the buffer.
    @discardableResult
    func forEachMatch(in bytes: UnsafeRawBufferPointer, _ body: (Match) -> Bool) -> Outcome {
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return .complete }
        let compiled = compiledCode(matching: bytes.count)
        let code = compiled.code, captureCount = compiled.captureCount
        guard let matchData = pcre2_match_data_create_from_pattern_8(code, nil) else { return .limitHit(PCRE2_ERROR_NOMEMORY) }
        defer { pcre2_match_data_free_8(matchData) }
        let length = bytes.count
        var start = 0
        while start <= length {
            let rc = pcre2_match_8(code, base, length, start, 0, matchData, matchContext)
            if rc == PCRE2_ERROR_NOMATCH { return .complete }
            if rc < 0 { return .limitHit(rc) }
            let ovector = pcre2_get_ovector_pointer_8(matchData)!
            let pairs = Int(pcre2_get_ovector_count_8(matchData))
            let s = ovector[0], e = ovector[1]
            var groups: [Range<Int>?] = []
            if captureCount > 0 {
                for g in 1...captureCount {
                    if g < pairs, ovector[2 * g] != Int.max && ovector[2 * g] != ~0, ovector[2 * g + 1] >= ovector[2 * g] {
                        groups.append(ovector[2 * g]..<ovector[2 * g + 1])
                    } else {
                        groups.append(nil)
                    }
                }
            }
            guard e >= s else { return .complete }
            if !body(Match(whole: s..<e, groups: groups)) { return .complete }
            start = e > s ? e : e + 1
        }
        return .complete
    }

    /// PCRE2's message for an error code.
    static func message(_ code: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        _ = pcre2_get_error_message_8(code, &buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
    }
}
