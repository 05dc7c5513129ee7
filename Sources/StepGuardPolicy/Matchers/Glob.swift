/// A shell-style pattern: `*` matches any run of characters, `?` one character, `\` escapes the next.
///
/// Used for claim values, paths, variable names and (through ``HostPattern``) host names.
public struct Glob: Sendable, Hashable, CustomStringConvertible {
    enum Token: Sendable, Hashable {
        case literal(Character)
        case any       // ?
        case anyRun    // *
    }

    /// The pattern as written.
    public let pattern: String
    let tokens: [Token]
    let caseInsensitive: Bool

    /// Parses `pattern`; throws ``MatcherError`` for a dangling escape.
    public init(_ pattern: String, caseInsensitive: Bool = false) throws(MatcherError) {
        var tokens: [Token] = []
        var iterator = pattern.makeIterator()
        while let character = iterator.next() {
            switch character {
            case "\\":
                guard let escaped = iterator.next() else {
                    throw MatcherError("glob '\(pattern)' ends with a lone '\\'", expected: "escape a character after '\\', or write '\\\\' for a backslash")
                }
                tokens.append(.literal(caseInsensitive ? Character(escaped.lowercased()) : escaped))
            case "*":
                if tokens.last != .anyRun { tokens.append(.anyRun) }
            case "?":
                tokens.append(.any)
            default:
                tokens.append(.literal(caseInsensitive ? Character(character.lowercased()) : character))
            }
        }
        self.pattern = pattern
        self.tokens = tokens
        self.caseInsensitive = caseInsensitive
    }

    /// True when the pattern has no wildcard (it matches one string only).
    public var isLiteral: Bool { !tokens.contains { $0 == .any || $0 == .anyRun } }

    /// Whether `text` matches the whole pattern.
    public func matches(_ text: String) -> Bool {
        let characters = Array(caseInsensitive ? text.lowercased() : text)
        // Iterative matcher with single backtrack point: linear in practice, no recursion.
        var t = 0, p = 0
        var starToken = -1, starText = 0
        while t < characters.count {
            if p < tokens.count {
                switch tokens[p] {
                case .anyRun:
                    starToken = p; starText = t; p += 1
                    continue
                case .any:
                    t += 1; p += 1
                    continue
                case .literal(let c) where c == characters[t]:
                    t += 1; p += 1
                    continue
                default:
                    break
                }
            }
            guard starToken >= 0 else { return false }
            p = starToken + 1
            starText += 1
            t = starText
        }
        while p < tokens.count, tokens[p] == .anyRun { p += 1 }
        return p == tokens.count
    }

    /// Whether some text matches both this pattern and `other` (the two are not disjoint): used to
    /// refuse two services whose endpoints on a shared host cannot be told apart. Exact for `*`,
    /// `?` and literals; with a case-insensitive pattern on either side, letters compare folded.
    public func overlaps(_ other: Glob) -> Bool {
        let fold = caseInsensitive || other.caseInsensitive
        func same(_ a: Character, _ b: Character) -> Bool { fold ? a.lowercased() == b.lowercased() : a == b }
        let left = tokens, right = other.tokens
        // seen[i][j]: positions (i in left, j in right) already explored without success.
        var seen = Set<Int>()
        var stack = [(0, 0)]
        while let (i, j) = stack.popLast() {
            if i == left.count && j == right.count { return true }
            guard seen.insert(i * (right.count + 1) + j).inserted else { continue }
            let a = i < left.count ? left[i] : nil, b = j < right.count ? right[j] : nil
            // A run matches nothing (skip it), or one more character of the other side's token.
            if a == .anyRun {
                stack.append((i + 1, j))
                if let b, b != .anyRun { stack.append((i, j + 1)) }
            }
            if b == .anyRun {
                stack.append((i, j + 1))
                if let a, a != .anyRun { stack.append((i + 1, j)) }
            }
            switch (a, b) {
            case (.literal(let x)?, .literal(let y)?) where same(x, y): stack.append((i + 1, j + 1))
            case (.any?, .literal?), (.literal?, .any?), (.any?, .any?): stack.append((i + 1, j + 1))
            default: break
            }
        }
        return false
    }

    public var description: String { pattern }
}

/// A matcher that could not be built from its text; carries what was wrong and what is expected.
public struct MatcherError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong with the text.
    public let problem: String
    /// What would be accepted instead.
    public let expected: String

    public init(_ problem: String, expected: String) {
        self.problem = problem
        self.expected = expected
    }

    public var description: String { "\(problem); expected \(expected)" }
}
