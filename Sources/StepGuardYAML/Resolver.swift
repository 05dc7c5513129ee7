/// Which tag a plain, untagged scalar gets. The rules are those of YAML 1.1 as Yams' resolvers
/// spelled them with regular expressions, matched here by hand (no pattern compiled at start-up).
public struct Resolver: Sendable {
    /// One implicit type of plain scalars.
    public enum Rule: Sendable, CaseIterable {
        case bool, int, float, merge, null, timestamp, value

        var tag: Tag {
            switch self {
            case .bool: .bool
            case .int: .int
            case .float: .float
            case .merge: .merge
            case .null: .null
            case .timestamp: .timestamp
            case .value: .value
            }
        }

        func matches(_ text: [UInt8]) -> Bool {
            switch self {
            case .bool: Self.bools.contains(text)
            case .int: Self.isInt(text)
            case .float: Self.isFloat(text)
            case .merge: text == Array("<<".utf8)
            case .null: Self.nulls.contains(text)
            case .timestamp: Self.isTimestamp(text)
            case .value: text == Array("=".utf8)
            }
        }

        static let bools: Set<[UInt8]> = Set(["yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE",
                                              "on", "On", "ON", "off", "Off", "OFF"].map { Array($0.utf8) })
        static let nulls: Set<[UInt8]> = Set(["~", "null", "Null", "NULL", ""].map { Array($0.utf8) })
    }

    public let rules: [Rule]

    public init(_ rules: [Rule]) { self.rules = rules }

    /// Every plain scalar is a string (what the policy reader and the service catalog use).
    public static let basic = Resolver([])
    /// YAML 1.1's implicit types, in Yams' default order.
    public static let `default` = Resolver([.bool, .int, .float, .merge, .null, .timestamp, .value])
    /// Only `<<` merge keys (what ``YAMLDecoder`` resolves).
    public static let mergeOnly = Resolver([.merge])

    /// The tag of a plain scalar with no tag of its own.
    public func tag(ofPlain text: String) -> Tag {
        guard !rules.isEmpty else { return .str }
        let bytes = Array(text.utf8)
        return rules.first { $0.matches(bytes) }?.tag ?? .str
    }
}

/// Hand-written equivalents of the YAML 1.1 regular expressions (whole-string matches).
private struct Cursor {
    let bytes: [UInt8]
    var index = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { index == bytes.count }
    var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    mutating func take(_ byte: UInt8) -> Bool {
        guard peek == byte else { return false }
        index += 1
        return true
    }

    mutating func take(where accepts: (UInt8) -> Bool) -> Bool {
        guard let byte = peek, accepts(byte) else { return false }
        index += 1
        return true
    }

    /// Takes as many bytes as `accepts` allows; how many.
    @discardableResult
    mutating func takeAll(where accepts: (UInt8) -> Bool) -> Int {
        let start = index
        while let byte = peek, accepts(byte) { index += 1 }
        return index - start
    }

    mutating func sign() { _ = take(UInt8(ascii: "-")) || take(UInt8(ascii: "+")) }
}

private func digit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
private func digitOrUnderscore(_ b: UInt8) -> Bool { digit(b) || b == UInt8(ascii: "_") }

extension Resolver.Rule {
    /// `[-+]?0b[0-1_]+ | [-+]?0o?[0-7_]+ | [-+]?(0|[1-9][0-9_]*) | [-+]?0x[0-9a-fA-F_]+ | [-+]?[1-9][0-9_]*(:[0-5]?[0-9])+`
    static func isInt(_ text: [UInt8]) -> Bool {
        var start = Cursor(text)
        start.sign()
        let alternatives: [(inout Cursor) -> Bool] = [
            { $0.take(UInt8(ascii: "0")) && $0.take(UInt8(ascii: "b")) && $0.takeAll { $0 == 0x30 || $0 == 0x31 || $0 == UInt8(ascii: "_") } > 0 },
            { c in
                guard c.take(UInt8(ascii: "0")) else { return false }
                _ = c.take(UInt8(ascii: "o"))
                return c.takeAll { ($0 >= 0x30 && $0 <= 0x37) || $0 == UInt8(ascii: "_") } > 0
            },
            { c in c.take(UInt8(ascii: "0")) || (c.take { $0 >= 0x31 && $0 <= 0x39 } && c.takeAll(where: digitOrUnderscore) >= 0) },
            { c in
                c.take(UInt8(ascii: "0")) && c.take(UInt8(ascii: "x"))
                    && c.takeAll { digit($0) || ($0 >= 0x61 && $0 <= 0x66) || ($0 >= 0x41 && $0 <= 0x46) || $0 == UInt8(ascii: "_") } > 0
            },
            { c in c.take { $0 >= 0x31 && $0 <= 0x39 } && c.takeAll(where: digitOrUnderscore) >= 0 && sexagesimalTail(&c) },
        ]
        return alternatives.contains { alternative in
            var cursor = start
            return alternative(&cursor) && cursor.atEnd
        }
    }

    /// `(:[0-5]?[0-9])+`, greedy as a regular expression would match it to the end.
    fileprivate static func sexagesimalTail(_ c: inout Cursor) -> Bool {
        var groups = 0
        while c.take(UInt8(ascii: ":")) {
            let digits = c.takeAll(where: digit)
            guard digits == 1 || (digits == 2 && c.bytes[c.index - 2] <= UInt8(ascii: "5")) else { return false }
            groups += 1
        }
        return groups > 0
    }

    /// `[-+]?([0-9][0-9_]*)(\.[0-9_]*)?([eE][-+]?[0-9]+)? | \.[0-9_]+([eE][-+][0-9]+)?
    ///  | [-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]* | [-+]?\.(inf|Inf|INF) | \.(nan|NaN|NAN)`
    static func isFloat(_ text: [UInt8]) -> Bool {
        let alternatives: [(inout Cursor) -> Bool] = [
            { c in
                c.sign()
                guard c.take(where: digit) else { return false }
                c.takeAll(where: digitOrUnderscore)
                if c.take(UInt8(ascii: ".")) { c.takeAll(where: digitOrUnderscore) }
                if c.take(UInt8(ascii: "e")) || c.take(UInt8(ascii: "E")) {
                    c.sign()
                    return c.takeAll(where: digit) > 0
                }
                return true
            },
            { c in
                guard c.take(UInt8(ascii: ".")), c.takeAll(where: digitOrUnderscore) > 0 else { return false }
                if c.take(UInt8(ascii: "e")) || c.take(UInt8(ascii: "E")) {
                    guard c.take(UInt8(ascii: "-")) || c.take(UInt8(ascii: "+")) else { return false }
                    return c.takeAll(where: digit) > 0
                }
                return true
            },
            { c in
                c.sign()
                guard c.take(where: digit) else { return false }
                c.takeAll(where: digitOrUnderscore)
                guard sexagesimalTail(&c), c.take(UInt8(ascii: ".")) else { return false }
                c.takeAll(where: digitOrUnderscore)
                return true
            },
            { c in
                c.sign()
                return c.take(UInt8(ascii: ".")) && ["inf", "Inf", "INF"].contains(String(decoding: c.bytes[c.index...], as: UTF8.self)) && { c.index = c.bytes.count; return true }()
            },
            { c in
                c.take(UInt8(ascii: ".")) && ["nan", "NaN", "NAN"].contains(String(decoding: c.bytes[c.index...], as: UTF8.self)) && { c.index = c.bytes.count; return true }()
            },
        ]
        return alternatives.contains { alternative in
            var cursor = Cursor(text)
            return alternative(&cursor) && cursor.atEnd
        }
    }

    /// `[0-9]{4}-[0-9]{2}-[0-9]{2}` or `[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(\.[0-9]*)?([ \t]*(Z|[-+][0-9]{1,2}(:[0-9]{2})?))?`
    static func isTimestamp(_ text: [UInt8]) -> Bool {
        var c = Cursor(text)
        guard c.takeAll(where: digit) == 4, c.take(UInt8(ascii: "-")) else { return false }
        let month = c.takeAll(where: digit)
        guard (1...2).contains(month), c.take(UInt8(ascii: "-")) else { return false }
        let day = c.takeAll(where: digit)
        guard (1...2).contains(day) else { return false }
        if c.atEnd { return month == 2 && day == 2 }
        let blank: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 }
        guard c.take(UInt8(ascii: "T")) || c.take(UInt8(ascii: "t")) || c.takeAll(where: blank) > 0 else { return false }
        guard (1...2).contains(c.takeAll(where: digit)), c.take(UInt8(ascii: ":")), c.takeAll(where: digit) == 2,
              c.take(UInt8(ascii: ":")), c.takeAll(where: digit) == 2 else { return false }
        if c.take(UInt8(ascii: ".")) { c.takeAll(where: digit) }
        if c.atEnd { return true }
        c.takeAll(where: blank)
        if c.take(UInt8(ascii: "Z")) { return c.atEnd }
        guard c.take(UInt8(ascii: "-")) || c.take(UInt8(ascii: "+")), (1...2).contains(c.takeAll(where: digit)) else { return false }
        if c.take(UInt8(ascii: ":")) { guard c.takeAll(where: digit) == 2 else { return false } }
        return c.atEnd
    }
}
