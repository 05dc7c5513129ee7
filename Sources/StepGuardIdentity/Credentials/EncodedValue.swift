import Foundation

/// The forms in which a value may hide a credential from the detection rules: the value itself,
/// its base64 (standard or URL-safe, padded or not, line-wrapped) or hex decoding when that is
/// text — recursively, so base64 of hex is seen — and the value in lower or upper case when it is
/// all one case (a `GHP_…` token upper-cased to dodge the `ghp_` prefix).
enum EncodedValue {
    /// How many decodings deep a value is unwrapped.
    static let maximumDepth = 3
    /// Values shorter than this are not decoded (nothing a rule recognises fits in fewer bytes).
    static let minimumEncodedLength = 16

    /// `value` and every readable form it decodes to, each at most once, `value` first.
    static func forms(of value: String) -> [String] {
        var forms: [String] = []
        var pending = [(value, 0)]
        while let (text, depth) = pending.popLast() {
            guard !forms.contains(text) else { continue }
            forms.append(text)
            for variant in caseVariants(of: text) where !forms.contains(variant) { forms.append(variant) }
            guard depth < maximumDepth else { continue }
            for decoded in [base64Text(text), hexText(text)].compactMap({ $0 }) { pending.append((decoded, depth + 1)) }
        }
        return forms
    }

    /// The lower-cased form of a value without lower-case letters, the upper-cased form of one
    /// without upper-case letters (none when it has no letters or both cases).
    static func caseVariants(of text: String) -> [String] {
        let hasLower = text.utf8.contains { (0x61...0x7A).contains($0) }
        let hasUpper = text.utf8.contains { (0x41...0x5A).contains($0) }
        if hasUpper && !hasLower { return [text.lowercased()] }
        if hasLower && !hasUpper { return [text.uppercased()] }
        return []
    }

    /// The text `value` decodes to as base64 (either alphabet, padding and line breaks optional),
    /// or nil when it is not base64 or does not decode to text.
    static func base64Text(_ value: String) -> String? {
        var symbols: [UInt8] = []
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "+"), UInt8(ascii: "/"): symbols.append(byte)
            case UInt8(ascii: "-"): symbols.append(UInt8(ascii: "+"))
            case UInt8(ascii: "_"): symbols.append(UInt8(ascii: "/"))
            case UInt8(ascii: "="), 0x20, 0x09, 0x0A, 0x0D: continue
            default: return nil
            }
        }
        guard symbols.count >= minimumEncodedLength, symbols.count % 4 != 1 else { return nil }
        symbols.append(contentsOf: [UInt8](repeating: UInt8(ascii: "="), count: (4 - symbols.count % 4) % 4))
        guard let data = Data(base64Encoded: Data(symbols)) else { return nil }
        return readableText(Array(data))
    }

    /// The text `value` decodes to as hex (either case), or nil.
    static func hexText(_ value: String) -> String? {
        let digits = Array(value.trimmingASCIISpaces.utf8)
        guard digits.count >= minimumEncodedLength, digits.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let high = nibble(digits[index]), let low = nibble(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return readableText(bytes)
    }

    /// `bytes` as a string when they are UTF-8 text without control characters other than tab,
    /// line feed and carriage return; nil for binary data (a random key, a digest).
    private static func readableText(_ bytes: [UInt8]) -> String? {
        guard !bytes.contains(where: { ($0 < 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D) || $0 == 0x7F }),
              let text = String(validating: bytes, as: UTF8.self) else { return nil }
        return text
    }
}
