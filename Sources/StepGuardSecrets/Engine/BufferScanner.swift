/// Turns raw matches in one buffer into findings: line and column, inline `stepguard:allow`.
struct BufferScanner: Sendable {
    let engine: SecretEngine
    let options: MatchOptions

    static let inlineAllowMarkers: [[UInt8]] = [Array("stepguard:allow".utf8), Array("gitleaks:allow".utf8)]

    struct Located: Sendable {
        var finding: Finding
        var inlineAllowed: Bool
    }

    /// Scans `bytes` found at `path`; returns findings (with `inlineAllowed` set when the line
    /// carries an allow marker).
    func scan(_ bytes: UnsafeRawBufferPointer, path: String) -> [Located] {
        let matches = engine.matches(in: bytes, path: path, options: options)
        guard !matches.isEmpty else { return [] }
        var out: [Located] = []
        var line = 1
        var cursor = 0
        var lineStart = 0
        for m in matches {  // sorted by start offset
            while cursor < m.range.lowerBound {
                if bytes[cursor] == 10 { line += 1; lineStart = cursor + 1 }
                cursor += 1
            }
            var lineEnd = m.range.lowerBound
            while lineEnd < bytes.count && bytes[lineEnd] != 10 { lineEnd += 1 }
            var endLine = line
            for i in m.range where bytes[i] == 10 { endLine += 1 }
            let lineBytes = UnsafeRawBufferPointer(rebasing: bytes[lineStart..<lineEnd])
            // Also honour a marker on the last line of a multi-line secret (e.g. after a PEM block).
            var endLineEnd = max(m.range.upperBound, lineStart)
            while endLineEnd < bytes.count && bytes[endLineEnd] != 10 { endLineEnd += 1 }
            var endLineStart = max(m.range.upperBound, 1) - 1
            while endLineStart > 0 && bytes[endLineStart - 1] != 10 { endLineStart -= 1 }
            let lastLine = UnsafeRawBufferPointer(rebasing: bytes[min(endLineStart, endLineEnd)..<endLineEnd])
            let allowed = Self.inlineAllowMarkers.contains { marker in
                SecretEngine.contains(lineBytes, marker) || SecretEngine.contains(lastLine, marker)
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
