#if canImport(Glibc)
import Glibc
#endif

/// Turns raw matches in one buffer into findings: line and column, inline `stepguard:allow`.
struct BufferScanner: Sendable {
    let engine: SecretEngine
    let options: MatchOptions
    /// Where rules that could not search a whole buffer are recorded (nil: not recorded).
    var incomplete: IncompleteScanLog? = nil

    static let inlineAllowMarkers: [[UInt8]] = [Array("stepguard:allow".utf8), Array("gitleaks:allow".utf8)]
    /// How far (bytes) around a secret an allow marker is looked for on very long lines.
    static let markerWindow = 4096

    struct Located: Sendable {
        var finding: Finding
        var inlineAllowed: Bool
    }

    /// Offset of the next newline at or after `from` (before `limit`), or `limit`.
    static func nextNewline(_ bytes: UnsafeRawBufferPointer, from: Int, limit: Int) -> Int {
        guard from < limit, let base = bytes.baseAddress else { return limit }
        guard let hit = memchr(base + from, 10, limit - from) else { return limit }
        return base.distance(to: UnsafeRawPointer(hit))
    }

    /// The newlines in `bytes[from..<limit]`: how many, and where the line after the last one starts.
    static func newlines(_ bytes: UnsafeRawBufferPointer, from: Int, before limit: Int) -> (count: Int, lastLineStart: Int?) {
        var count = 0
        var lastLineStart: Int?
        var cursor = from
        while true {
            let newline = nextNewline(bytes, from: cursor, limit: limit)
            if newline >= limit { return (count, lastLineStart) }
            count += 1
            lastLineStart = newline + 1
            cursor = newline + 1
        }
    }

    /// Scans `bytes` found at `path`; returns findings (with `inlineAllowed` set when the line
    /// carries an allow marker). Work per finding is bounded, so minified or single-line files
    /// of many megabytes stay linear. Without `fingerprints` (history mode, which fingerprints a
    /// finding for each path it is attributed to) ``Finding/fingerprint`` is left empty.
    func scan(_ bytes: UnsafeRawBufferPointer, path: String, fingerprints: Bool = true) -> [Located] {
        let result = engine.search(bytes, path: path, options: options)
        for (rule, code) in result.incomplete {
            incomplete?.record(rule: engine.rules[rule].rule.id, path: path, reason: PCRE2Regex.message(code))
        }
        let matches = result.matches
        guard !matches.isEmpty else { return [] }
        var out: [Located] = []
        var line = 1
        var cursor = 0
        var lineStart = 0
        for m in matches {  // sorted by start offset
            // Advance to the match's line with memchr (C speed, linear over the buffer).
            let before = Self.newlines(bytes, from: cursor, before: m.range.lowerBound)
            line += before.count
            if let start = before.lastLineStart { lineStart = start }
            cursor = max(cursor, lineStart)
            let inside = Self.newlines(bytes, from: m.range.lowerBound, before: m.range.upperBound)
            let endLine = line + inside.count
            let lastLineStart = inside.lastLineStart ?? lineStart
            let windowStart = max(lineStart, m.range.lowerBound - Self.markerWindow)
            let firstLineEnd = Self.nextNewline(bytes, from: m.range.lowerBound, limit: min(bytes.count, m.range.lowerBound + Self.markerWindow))
            let lastLineEnd = Self.nextNewline(bytes, from: m.range.upperBound, limit: min(bytes.count, m.range.upperBound + Self.markerWindow))
            let firstLine = UnsafeRawBufferPointer(rebasing: bytes[windowStart..<max(windowStart, firstLineEnd)])
            let lastFrom = max(lastLineStart, m.range.upperBound - Self.markerWindow)
            let lastLine = UnsafeRawBufferPointer(rebasing: bytes[lastFrom..<max(lastFrom, lastLineEnd)])
            let allowed = Self.inlineAllowMarkers.contains { marker in
                SecretEngine.contains(firstLine, marker) || (endLine > line && SecretEngine.contains(lastLine, marker))
            }
            let rule = engine.rules[m.ruleIndex].rule
            out.append(Located(finding: Finding(
                ruleID: rule.id, description: rule.description, severity: rule.severity, lifetime: rule.lifetime,
                path: path, line: line, column: m.range.lowerBound - lineStart + 1, endLine: endLine,
                secret: m.secret, fingerprint: fingerprints ? Finding.fingerprint(ruleID: rule.id, path: path, secret: m.secret) : ""
            ), inlineAllowed: allowed))
        }
        return out
    }
}
