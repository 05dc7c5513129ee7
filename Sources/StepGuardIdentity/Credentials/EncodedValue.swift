import FoundationEssentials
import Glibc
import StepGuardCore

/// The forms in which a value may hide a credential from the detection rules: the value itself;
/// its percent-decoding;
/// the base64 (standard or URL-safe, padded or not, line-wrapped) or hex (`0x` optional) decoding
/// of the whole value or of each run of such characters in it (`base64:…`, `Basic …`, `"…"`), when
/// that is text — recursively, so base64 of hex is seen; and each of these in lower and in upper
/// case (a `GHP_…` or `gHp_…` token re-cased to dodge the `ghp_` prefix).
enum EncodedValue {
    /// How many decodings deep a value is unwrapped.
    static let maximumDepth = 3
    /// At most this many forms are classified per value (a bound on hostile nesting).
    static let maximumForms = 64
    /// Values shorter than this are not decoded (nothing a rule recognises fits in fewer bytes).
    static let minimumEncodedLength = 16

    /// `value` and every readable form it decodes to, each at most once, `value` first.
    static func forms(of value: String) -> [String] {
        var forms: [String] = []
        var pending = [(value, 0)]
        while let (text, depth) = pending.popLast(), forms.count < maximumForms {
            guard !forms.contains(text) else { continue }
            forms.append(text)
            for variant in caseVariants(of: text) where !forms.contains(variant) { forms.append(variant) }
            guard depth < maximumDepth else { continue }
            if text.contains("%"), let unescaped = text.percentDecoded, unescaped != text { pending.append((unescaped, depth + 1)) }
            for candidate in encodedCandidates(in: text) {
                for decoded in [base64Text(candidate), hexText(candidate)].compactMap({ $0 }) { pending.append((decoded, depth + 1)) }
            }
        }
        return forms
    }

    /// The lower- and upper-cased forms of `text` that differ from it.
    static func caseVariants(of text: String) -> [String] {
        [text.lowercased(), text.uppercased()].filter { $0 != text }
    }

    /// The whole value and every run of 16 or more base64/hex characters in it that is not the
    /// whole value.
    static func encodedCandidates(in text: String) -> [String] {
        // On bytes, not Characters (grapheme breaking cost most of `run`'s environment check):
        // every byte of a non-ASCII character separates runs, as the character did.
        func isEncoded(_ byte: UInt8) -> Bool {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "+"), UInt8(ascii: "/"), UInt8(ascii: "="), UInt8(ascii: "-"), UInt8(ascii: "_"): true
            default: false
            }
        }
        guard text.utf8.count >= minimumEncodedLength else { return [text] }
        let bytes = Array(text.utf8)
        let runs = bytes.split(whereSeparator: { !isEncoded($0) })
            .filter { $0.count >= minimumEncodedLength && $0.count != bytes.count }
            .map { String(decoding: $0, as: UTF8.self) }
        return [text] + runs
    }

    /// The text `value` decodes to as base64 (either alphabet, padding and line breaks optional),
    /// or nil when it is not base64 or does not decode to text.
    static func base64Text(_ value: String) -> String? {
        let symbols = value.utf8.reduce(0) { count, byte in
            [UInt8(ascii: "="), 0x20, 0x09, 0x0A, 0x0D].contains(byte) ? count : count + 1
        }
        guard symbols >= minimumEncodedLength, let bytes = Base64URL.decodeLeniently(value.utf8, ignoringWhitespace: true) else { return nil }
        return readableText(bytes)
    }

    /// The text `value` decodes to as hex (either case), or nil.
    static func hexText(_ value: String) -> String? {
        // Most values are not hex: tell at their first other byte, before copying anything.
        guard value.utf8.allSatisfy({ $0.isHexDigitOrSpace || $0 == UInt8(ascii: "x") || $0 == UInt8(ascii: "X") }) else { return nil }
        var digits = Array(value.trimmingASCIISpaces.utf8)
        if digits.starts(with: Array("0x".utf8)) || digits.starts(with: Array("0X".utf8)) { digits.removeFirst(2) }
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

extension UInt8 {
    /// An ASCII hex digit (either case) or ASCII whitespace.
    fileprivate var isHexDigitOrSpace: Bool {
        switch self {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"), UInt8(ascii: "A")...UInt8(ascii: "F"), 0x20, 0x09...0x0D: true
        default: false
        }
    }
}
