import FoundationEssentials
import Glibc
import StepGuardCore

/// Small, pure checks applied to a candidate secret.
enum SecretChecks {
    /// Shannon entropy in bits per byte.
    static func entropy<C: Collection>(_ bytes: C) -> Double where C.Element == UInt8 { Entropy.shannon(bytes) }

    static let crcTable: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// CRC-32 (IEEE) of `bytes`.
    static func crc32<C: Sequence>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    static let base62Upper = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
    static let base62Lower = Array("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)

    /// `value` in base 62, left-padded with zeros to `width`.
    static func base62(_ value: UInt32, alphabet: [UInt8] = base62Upper, width: Int = 6) -> String {
        var v = value
        var out: [UInt8] = []
        repeat {
            out.append(alphabet[Int(v % 62)])
            v /= 62
        } while v > 0
        while out.count < width { out.append(alphabet[0]) }
        return String(decoding: out.reversed(), as: UTF8.self)
    }

    /// GitHub token checksum: the last 6 characters are the base-62 CRC-32 of the 30 random
    /// characters after the `xxx_` prefix. Both common base-62 alphabets are accepted.
    static func githubChecksumValid(_ token: String) -> Bool {
        let bytes = Array(token.utf8)
        guard let underscore = bytes.lastIndex(of: UInt8(ascii: "_")) else { return false }
        let body = bytes[(underscore + 1)...]
        guard body.count == 36 else { return false }
        let random = body.prefix(30)
        let check = String(decoding: body.suffix(6), as: UTF8.self)
        let crc = crc32(random)
        return check == base62(crc) || check == base62(crc, alphabet: base62Lower)
    }

    /// Applies the named checksum; unknown names pass (a rules error reported at load).
    static func checksum(_ name: String, valid secret: String) -> Bool {
        switch name {
        case "github-crc32": return githubChecksumValid(secret)
        default: return true
        }
    }

    static let knownChecksums: Set<String> = ["github-crc32"]
}

extension SecretChecks {
    /// `bytes` in standard base64 with padding.
    static func base64<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        Data(bytes).base64EncodedString()
    }

    /// Decodes base64 or base64url (padding optional); nil when `text` is not base64.
    static func decodeBase64<C: Collection>(_ text: C) -> [UInt8]? where C.Element == UInt8 {
        Base64URL.decodeLeniently(text)
    }

    /// The readable text `secret` encodes — in base64 (or base64url), percent-encoding, or these
    /// nested, as gitleaks' and AWS's fixtures nest them — or nil when it is random bytes or a
    /// random password rather than text (see ``isReadable(_:stopwords:)``).
    static func encodedText(_ secret: UnsafeRawBufferPointer, stopwords: [[UInt8]]) -> [UInt8]? {
        var level = [Array(secret)]
        for _ in 0..<4 {  // each level decodes every form of the one before, both ways (at most 2⁴ forms)
            var next: [[UInt8]] = []
            for value in level {
                let base64 = value.count >= 12 ? decodeBase64(value).flatMap { $0.count >= 8 ? $0 : nil } : nil
                for decoded in [base64, percentDecode(value)].compactMap({ $0 }) {
                    if isReadable(decoded, stopwords: stopwords) { return decoded }
                    next.append(decoded)
                }
            }
            if next.isEmpty { return nil }
            level = next
        }
        return nil
    }

    /// Printable ASCII that is prose or JSON (a space, a leading `{` `[` `<`), words
    /// (`username:password`, `decoded-secret-value`), low in entropy, or holds a stop-word.
    static func isReadable(_ decoded: [UInt8], stopwords: [[UInt8]]) -> Bool {
        guard !decoded.isEmpty, decoded.allSatisfy({ ($0 >= 0x20 && $0 < 0x7F) || $0 == 9 || $0 == 10 || $0 == 13 }) else { return false }
        if decoded.contains(0x20) || [UInt8(ascii: "{"), UInt8(ascii: "["), UInt8(ascii: "<")].contains(decoded[0]) { return true }
        if entropy(decoded) < 3.0 || isWords(decoded) { return true }
        let lowered = decoded.map { ($0 >= 65 && $0 <= 90) ? $0 + 32 : $0 }
        return stopwords.contains { SecretEngine.contains(lowered, $0) }
    }

    /// `text` with its `%XX` escapes decoded, or nil when it has none.
    static func percentDecode(_ text: [UInt8]) -> [UInt8]? {
        var out: [UInt8] = []
        var escaped = false
        var i = 0
        while i < text.count {
            if text[i] == UInt8(ascii: "%"), i + 2 < text.count,
               let high = UInt8(String(UnicodeScalar(text[i + 1])), radix: 16), let low = UInt8(String(UnicodeScalar(text[i + 2])), radix: 16) {
                out.append(UInt8(high << 4 | low))
                escaped = true
                i += 3
            } else {
                out.append(text[i])
                i += 1
            }
        }
        return escaped ? out : nil
    }

    /// Letters in runs of two or more, joined by `-_.:/@=` (and optional trailing digits):
    /// `username:password`, `longer-encoded-secret-test`, `decoded-secret-value00`.
    static func isWords(_ text: [UInt8]) -> Bool {
        var i = 0
        var words = 0
        func isLetter(_ c: UInt8) -> Bool { (c >= 65 && c <= 90) || (c >= 97 && c <= 122) }
        while i < text.count {
            let start = i
            while i < text.count && isLetter(text[i]) { i += 1 }
            guard i - start >= 2 else { break }
            words += 1
            if i == text.count { return true }
            let separators = Array("-_.:/@=".utf8)
            guard separators.contains(text[i]) else { break }
            while i < text.count && separators.contains(text[i]) { i += 1 }
        }
        // trailing digits after the last word: value00
        guard words >= 1, i < text.count, text[i...].count <= 4, text[i...].allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return false }
        return true
    }
}
