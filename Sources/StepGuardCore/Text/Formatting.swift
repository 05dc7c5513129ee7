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

/// `value` with exactly `fractionDigits` decimals, rounded half to even as `%.Nf` does for an exact half.
public func fixedDecimal(_ value: Double, fractionDigits: Int) -> String {
    guard value.isFinite else { return "\(value)" }
    var scale: Double = 1
    for _ in 0..<fractionDigits { scale *= 10 }
    let scaled = (abs(value) * scale).rounded(.toNearestOrEven)
    guard scaled < 9.2e18 else { return "\(value)" }
    let units = Int64(scaled)
    let divisor = Int64(scale)
    let sign = value < 0 && units != 0 ? "-" : ""
    guard fractionDigits > 0 else { return "\(sign)\(units)" }
    let fraction = String(units % divisor)
    return "\(sign)\(units / divisor)." + String(repeating: "0", count: fractionDigits - fraction.count) + fraction
}
