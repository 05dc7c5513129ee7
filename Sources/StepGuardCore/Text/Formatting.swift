import Glibc

/// Number formatting without Foundation's `String(format:)` (which FoundationEssentials lacks).
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    /// The bytes in lower-case hex, two digits each.
    public static func string<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `value` (not negative) in lower-case hex, padded with zeros to at least `width` digits (`%0Nx`).
    public static func padded<Value: BinaryInteger>(_ value: Value, width: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }
}

/// `value` with exactly `fractionDigits` decimals, as `String(format: "%.Nf", value)` wrote it (C's own
/// `vsnprintf`, so rounding is the same).
public func fixedDecimal(_ value: Double, fractionDigits: Int) -> String {
    var buffer = [CChar](repeating: 0, count: 512)
    let count = withVaList([value]) { arguments in
        vsnprintf(&buffer, buffer.count, "%.\(max(0, min(fractionDigits, 20)))f", arguments)
    }
    guard count >= 0, Int(count) < buffer.count else { return "\(value)" }
    return String(decoding: buffer[0..<Int(count)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
