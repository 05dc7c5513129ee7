import FoundationEssentials
import Glibc

/// Strict base64url (RFC 4648 §5) as JOSE requires it (RFC 7515 §2): alphabet `A–Z a–z 0–9 - _`,
/// no padding, no whitespace, and the unused low bits of the last character must be zero
/// (so every byte string has exactly one encoding).
public enum Base64URL {
    private static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        for (i, c) in alphabet.enumerated() { table[Int(c)] = UInt8(i) }
        return table
    }()
    private static let encodeTable = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// Decodes strict base64url; returns nil on any foreign character, padding, an impossible
    /// length (4n+1) or non-zero trailing bits.
    public static func decode<Bytes: Collection>(_ input: Bytes) -> [UInt8]? where Bytes.Element == UInt8 {
        let count = input.count
        if count % 4 == 1 { return nil }
        var decoder = SextetDecoder(capacity: count)
        let table = decodeTable
        for c in input {
            let v = table[Int(c)]
            if v == 0xFF { return nil }
            decoder.append(v)
        }
        // Leftover bits (2 or 4) must be zero for a canonical encoding.
        return decoder.hasLeftoverBits ? nil : decoder.bytes
    }

    /// Decodes strict base64url from a string.
    public static func decode(_ text: String) -> [UInt8]? {
        decode(Array(text.utf8))
    }

    /// Decodes base64 or base64url as leniently as servers and tools read it: either alphabet,
    /// padding optional (wherever it stands), and with `ignoringWhitespace` spaces and line breaks
    /// too; nil for any other byte or an impossible length. For recognising encoded values, never
    /// for JOSE (``decode(_:)-(Bytes)`` is the strict reader).
    public static func decodeLeniently<Bytes: Collection>(_ input: Bytes, ignoringWhitespace: Bool = false) -> [UInt8]? where Bytes.Element == UInt8 {
        // Over contiguous bytes, not the generic collection: called from other modules, the generic
        // loop was not specialised and looked its iterator's conformances up at run time (a scan
        // of every conformance in the binary, in `run`'s start-up).
        input.withContiguousStorageIfAvailable { decodeLeniently(UnsafeRawBufferPointer($0), ignoringWhitespace: ignoringWhitespace) }
            ?? Array(input).withUnsafeBytes { decodeLeniently($0, ignoringWhitespace: ignoringWhitespace) }
    }

    private static func decodeLeniently(_ input: UnsafeRawBufferPointer, ignoringWhitespace: Bool) -> [UInt8]? {
        // Decoded here rather than through Foundation's Data(base64Encoded:) (normalised copies of
        // the input first): `run` tries every environment variable this way before each step.
        var decoder = SextetDecoder(capacity: input.count)
        var symbols = 0
        for byte in input {
            let value: UInt8
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = byte - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = byte - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = byte - UInt8(ascii: "0") + 52
            case UInt8(ascii: "+"), UInt8(ascii: "-"): value = 62
            case UInt8(ascii: "/"), UInt8(ascii: "_"): value = 63
            case UInt8(ascii: "="): continue
            case 0x20, 0x09, 0x0A, 0x0D:
                guard ignoringWhitespace else { return nil }
                continue
            default: return nil
            }
            symbols += 1
            decoder.append(value)
        }
        guard symbols % 4 != 1 else { return nil }
        return decoder.bytes
    }

    /// Encodes bytes as base64url without padding.
    public static func encode<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var out = [UInt8]()
        var accumulator: UInt32 = 0
        var bits = 0
        for b in bytes {
            accumulator = (accumulator << 8) | UInt32(b)
            bits += 8
            while bits >= 6 {
                bits -= 6
                out.append(encodeTable[Int((accumulator >> UInt32(bits)) & 0x3F)])
            }
            accumulator &= (1 << UInt32(bits)) - 1
        }
        if bits > 0 {
            out.append(encodeTable[Int((accumulator << UInt32(6 - bits)) & 0x3F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Base64's 6-bit values turned into bytes, 8 bits at a time.
private struct SextetDecoder {
    private(set) var bytes: [UInt8] = []
    private var accumulator: UInt32 = 0
    private var bits = 0

    /// For about `capacity` symbols.
    init(capacity: Int) { bytes.reserveCapacity(capacity * 3 / 4) }

    /// Bits left over after the last whole byte that are not all zero (a non-canonical encoding).
    var hasLeftoverBits: Bool { bits > 0 && accumulator != 0 }

    mutating func append(_ value: UInt8) {
        accumulator = (accumulator << 6) | UInt32(value)
        bits += 6
        if bits >= 8 {
            bits -= 8
            bytes.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            accumulator &= (1 << UInt32(bits)) - 1
        }
    }
}
