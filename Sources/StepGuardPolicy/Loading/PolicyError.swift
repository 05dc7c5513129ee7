/// One problem found in a policy: where, what is wrong, and what is expected instead.
public struct PolicyDiagnostic: Sendable, Equatable, CustomStringConvertible {
    public let location: SourceLocation
    /// What is wrong, e.g. "unknown key 'egres' in policy; did you mean 'egress'?".
    public let message: String
    /// What would be accepted, e.g. "one of: enforce, audit".
    public let expected: String?

    public init(location: SourceLocation, message: String, expected: String? = nil) {
        self.location = location
        self.message = message
        self.expected = expected
    }

    public var description: String {
        "\(location): error: \(message)" + (expected.map { " (expected \($0))" } ?? "")
    }
}

/// A policy that cannot be used: every problem found, each with its location.
public struct PolicyError: Error, Sendable, Equatable, CustomStringConvertible {
    public let diagnostics: [PolicyDiagnostic]

    public init(_ diagnostics: [PolicyDiagnostic]) { self.diagnostics = diagnostics }

    public init(file: String, message: String, expected: String? = nil) {
        self.diagnostics = [PolicyDiagnostic(location: SourceLocation(file: file, line: 1, column: 1), message: message, expected: expected)]
    }

    public var description: String {
        diagnostics.map(\.description).joined(separator: "\n")
    }
}

/// The closest candidate to `word` by edit distance, when it is close enough to be a likely typo.
func nearest(to word: String, in candidates: [String]) -> String? {
    func distance(_ a: [Character], _ b: [Character]) -> Int {
        var previous = Array(0...b.count)
        for (i, ca) in a.enumerated() {
            var current = [i + 1]
            for (j, cb) in b.enumerated() {
                current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (ca == cb ? 0 : 1)))
            }
            previous = current
        }
        return previous[b.count]
    }
    let target = Array(word.lowercased())
    let scored = candidates.map { ($0, distance(target, Array($0.lowercased()))) }
    guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
    return best.1 <= max(2, word.count / 3) ? best.0 : nil
}
