/// Binary key containers recognised by their structure, not by their file name: PKCS#12 / PFX
/// (an ASN.1 PFX: version 3 and an authSafe ContentInfo), Java keystores (JKS `0xFEEDFEED`,
/// JCEKS `0xCECECECE`) holding a private or secret key entry, and DER private keys (PKCS#8,
/// SEC1 EC, PKCS#1 RSA, DSA).
///
/// A container rule's regex finds the header; ``KeyContainer/extent(_:in:at:)`` then checks the
/// structure behind it and returns the bytes the container spans.
enum KeyContainer: String, CaseIterable, Sendable {
    case pkcs12
    case jks
    case derKey = "der-key"

    /// Whether the start of a binary buffer may be a container: the scanners pass such buffers to
    /// the engine (which then runs only the container rules) instead of skipping them as binary.
    static func mayStart(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= 4 else { return false }
        if bytes[0] == 0x30 { return true }  // DER SEQUENCE: PKCS#12, PKCS#8
        let magic = Array(bytes[0..<4])
        return magic == [0xFE, 0xED, 0xFE, 0xED] || magic == [0xCE, 0xCE, 0xCE, 0xCE]
    }

    /// The byte range of a well-formed container of this kind starting at `start`, or nil.
    func extent(_ bytes: UnsafeRawBufferPointer, at start: Int) -> Range<Int>? {
        switch self {
        case .pkcs12: return Self.pkcs12(bytes, start)
        case .jks: return Self.javaKeyStore(bytes, start)
        case .derKey: return Self.derPrivateKey(bytes, start)
        }
    }

    // MARK: ASN.1 DER

    /// One DER element: tag, where its content starts, and its end (nil content length: BER
    /// indefinite length, content runs to the end of the buffer).
    struct Element {
        var tag: UInt8
        var content: Int
        var end: Int
    }

    /// Reads the element at `offset` if it fits in `bytes[..<limit]`.
    static func element(_ bytes: UnsafeRawBufferPointer, _ offset: Int, limit: Int) -> Element? {
        guard offset + 2 <= limit else { return nil }
        let tag = bytes[offset]
        let first = bytes[offset + 1]
        if first < 0x80 {
            let end = offset + 2 + Int(first)
            return end <= limit ? Element(tag: tag, content: offset + 2, end: end) : nil
        }
        if first == 0x80 { return Element(tag: tag, content: offset + 2, end: limit) }  // BER indefinite
        let count = Int(first & 0x7F)
        guard count <= 4, offset + 2 + count <= limit else { return nil }
        var length = 0
        for i in 0..<count { length = length << 8 | Int(bytes[offset + 2 + i]) }
        let end = offset + 2 + count + length
        return end <= limit ? Element(tag: tag, content: offset + 2 + count, end: end) : nil
    }

    static func bytesEqual(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ expected: [UInt8]) -> Bool {
        range.count == expected.count && range.upperBound <= bytes.count && zip(range, expected).allSatisfy { bytes[$0] == $1 }
    }

    static func contains(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ needle: [UInt8]) -> Bool {
        SecretEngine.contains(UnsafeRawBufferPointer(rebasing: bytes[range]), needle)
    }

    /// 1.2.840.113549.1.7.1 (data) and .7.2 (signedData), DER-encoded without the last byte.
    static let pkcs7Prefix: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07]
    /// 1.2.840.113549.1.7.6 (encryptedData): content a reader cannot see without the password.
    static let encryptedDataOID: [UInt8] = [0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x06]
    /// 1.2.840.113549.1.12.10.1 (bag types) without the last byte: keyBag (1) and pkcs8ShroudedKeyBag (2).
    static let bagTypePrefix: [UInt8] = [0x06, 0x0B, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x0C, 0x0A, 0x01]

    /// PFX ::= SEQUENCE { version INTEGER (3), authSafe ContentInfo { data | signedData, [0] … }, macData? }.
    /// A PFX whose bags are all visible and hold no key bag (a certificate-only truststore) is not
    /// a secret; one with a key bag, or with encrypted contents that may hold one, is.
    static func pkcs12(_ bytes: UnsafeRawBufferPointer, _ start: Int) -> Range<Int>? {
        guard let pfx = element(bytes, start, limit: bytes.count), pfx.tag == 0x30,
              let version = element(bytes, pfx.content, limit: pfx.end), version.tag == 0x02,
              bytesEqual(bytes, version.content..<version.end, [0x03]),
              let authSafe = element(bytes, version.end, limit: pfx.end), authSafe.tag == 0x30,
              let oid = element(bytes, authSafe.content, limit: authSafe.end), oid.tag == 0x06,
              oid.end - oid.content == 9, bytesEqual(bytes, oid.content..<(oid.end - 1), pkcs7Prefix),
              [0x01, 0x02].contains(bytes[oid.end - 1]),
              let explicit = element(bytes, oid.end, limit: authSafe.end), explicit.tag == 0xA0
        else { return nil }
        let body = explicit.content..<explicit.end
        let keyBag = contains(bytes, body, bagTypePrefix + [0x01]) || contains(bytes, body, bagTypePrefix + [0x02])
        guard keyBag || contains(bytes, body, encryptedDataOID) else { return nil }
        return start..<pfx.end
    }

    /// A file that is one DER private key (a trailing newline or two allowed):
    /// PKCS#8 PrivateKeyInfo `SEQUENCE { INTEGER 0|1, SEQUENCE { OID … }, OCTET STRING }`,
    /// SEC1 ECPrivateKey `SEQUENCE { INTEGER 1, OCTET STRING, [0] …, [1] … }`, or PKCS#1 RSA /
    /// DSA `SEQUENCE { INTEGER 0, INTEGER … }` with at least six integers.
    static func derPrivateKey(_ bytes: UnsafeRawBufferPointer, _ start: Int) -> Range<Int>? {
        guard start == 0, let key = element(bytes, 0, limit: bytes.count), key.tag == 0x30,
              bytes.count - key.end <= 2,
              let version = element(bytes, key.content, limit: key.end), version.tag == 0x02,
              version.end - version.content == 1, bytes[version.content] <= 1,
              let second = element(bytes, version.end, limit: key.end)
        else { return nil }
        switch second.tag {
        case 0x30:  // PKCS#8: the algorithm, then the key
            guard let oid = element(bytes, second.content, limit: second.end), oid.tag == 0x06,
                  let octets = element(bytes, second.end, limit: key.end), octets.tag == 0x04, octets.end - octets.content >= 16
            else { return nil }
        case 0x04:  // SEC1: version 1, the private key, then optional parameters and public key
            guard bytes[version.content] == 1, second.end - second.content >= 16 else { return nil }
            var cursor = second.end
            while cursor < key.end {
                guard let next = element(bytes, cursor, limit: key.end), next.tag == 0xA0 || next.tag == 0xA1 else { return nil }
                cursor = next.end
            }
        case 0x02:  // PKCS#1 RSA (9 integers) or DSA (6): version 0 and only integers
            guard bytes[version.content] == 0 else { return nil }
            var cursor = version.end
            var integers = 0
            while cursor < key.end {
                guard let next = element(bytes, cursor, limit: key.end), next.tag == 0x02 else { return nil }
                integers += 1
                cursor = next.end
            }
            guard integers >= 5 else { return nil }
        default:
            return nil
        }
        return 0..<key.end
    }

    // MARK: Java keystores

    /// JKS / JCEKS: magic, version 1 or 2, entry count, then entries (tag 1 private key, 2 trusted
    /// certificate, 3 secret key). A keystore with a private or secret key entry is a secret; a
    /// truststore (certificates only, read to the end) is not. The range is the whole buffer.
    static func javaKeyStore(_ bytes: UnsafeRawBufferPointer, _ start: Int) -> Range<Int>? {
        guard start == 0, bytes.count >= 12 else { return nil }
        var cursor = 4
        func u32() -> Int? {
            guard cursor + 4 <= bytes.count else { return nil }
            defer { cursor += 4 }
            return (0..<4).reduce(0) { $0 << 8 | Int(bytes[cursor + $1]) }
        }
        func u16() -> Int? {
            guard cursor + 2 <= bytes.count else { return nil }
            defer { cursor += 2 }
            return Int(bytes[cursor]) << 8 | Int(bytes[cursor + 1])
        }
        func skip(_ n: Int) -> Bool {
            guard n >= 0, cursor + n <= bytes.count else { return false }
            cursor += n
            return true
        }
        guard let version = u32(), version == 1 || version == 2, let count = u32(), count > 0, count < 1_000_000 else { return nil }
        func certificate() -> Bool {  // version 2 names the type (a UTF string) before the length and bytes
            if version == 2 { guard let typeLength = u16(), skip(typeLength) else { return false } }
            guard let length = u32() else { return false }
            return skip(length)
        }
        for _ in 0..<count {
            guard let tag = u32() else { return nil }
            if tag == 1 || tag == 3 { return 0..<bytes.count }  // a private or secret key entry
            guard tag == 2, let alias = u16(), skip(alias), skip(8), certificate() else { return nil }
        }
        return nil  // a truststore: certificates only
    }
}
