#if canImport(Glibc)
import Glibc
#endif

/// Turns raw matches in one buffer into findings: line and column, inline `stepguard:allow`.
struct BufferScanner: Sendable {
    let engine: SecretEngine
    let options: MatchOptions

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

    /// Scans `bytes` found at `path`; returns findings (with `inlineAllowed` set when the line
    /// carries an allow marker). Work per finding is bounded, so minified or single-line files
    /// of many megabytes stay linear.
    func scan(_ bytes: UnsafeRawBufferPointer, path: String) -> [Located] {
        let matches = engine.matches(in: bytes, path: path, options: options)
        guard !matches.isEmpty else { return [] }
        var out: [Located] = []
        var line = 1
        var cursor = 0
        var lineStart = 0
        for m in matches {  // sorted by start offset
            // Advance to the match's line with memchr (C speed, linear over the buffer).
            while true {
                let nl = Self.nextNewline(bytes, from: cursor, limit: m.range.lowerBound)
                if nl >= m.range.lowerBound { break }
                line += 1
                lineStart = nl + 1
                cursor = nl + 1
            }
            cursor = max(cursor, lineStart)
            var endLine = line
            var lastLineStart = lineStart
            var i = m.range.lowerBound
            while true {
                let nl = Self.nextNewline(bytes, from: i, limit: m.range.upperBound)
                if nl >= m.range.upperBound { break }
                endLine += 1
                lastLineStart = nl + 1
                i = nl + 1
            }
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
                secret: m.secret, fingerprint: Finding.fingerprint(ruleID: rule.id, path: path, secret: m.secret)
            ), inlineAllowed: allowed))
        }
        return out
    }
}
