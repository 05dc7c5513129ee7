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

