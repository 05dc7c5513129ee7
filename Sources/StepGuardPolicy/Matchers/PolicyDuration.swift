/// A duration written as a number and a unit, or several: `500ms`, `30s`, `5m`, `1h`, `1h30m`, `2d`.
public struct PolicyDuration: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The duration in milliseconds.
    public let milliseconds: Int64

    public init(milliseconds: Int64) { self.milliseconds = milliseconds }
    public init(seconds: Int64) { self.milliseconds = seconds * 1000 }

    /// Parses the text form; throws ``MatcherError`` with the accepted form on bad input.
    public init(parsing text: String) throws(MatcherError) {
        let expected = "a number followed by a unit (ms, s, m, h, d), e.g. 30s, 5m, 1h30m"
        guard !text.isEmpty else { throw MatcherError("empty duration", expected: expected) }
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        var total: Int64 = 0
        var rest = Substring(text)
        while !rest.isEmpty {
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty, let value = Int64(digits) else {
                throw MatcherError("'\(text)' is not a duration", expected: expected)
            }
            rest = rest.dropFirst(digits.count)
            guard let (unit, factor) = units.first(where: { rest.hasPrefix($0.0) && !(($0.0 == "m") && rest.hasPrefix("ms")) }) else {
                throw MatcherError("'\(text)' has no unit after \(digits)", expected: expected)
            }
            rest = rest.dropFirst(unit.count)
            let (product, overflow1) = value.multipliedReportingOverflow(by: factor)
            let (sum, overflow2) = total.addingReportingOverflow(product)
            guard !overflow1, !overflow2 else { throw MatcherError("'\(text)' is too long", expected: expected) }
            total = sum
        }
        self.milliseconds = total
    }

    /// The duration in seconds.
    public var seconds: Double { Double(milliseconds) / 1000 }

    public static func < (lhs: PolicyDuration, rhs: PolicyDuration) -> Bool { lhs.milliseconds < rhs.milliseconds }

    /// The canonical text form (largest units first), e.g. `1h30m`, `500ms`, `0s`.
    public var description: String {
        if milliseconds == 0 { return "0s" }
        var rest = milliseconds
        var text = ""
        for (unit, factor) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)] where rest >= factor {
            text += "\(rest / factor)\(unit)"
            rest %= factor
        }
        return text
    }
}
