import StepGuardSecrets

/// Key containers built byte by byte for the scanner's tests (issue #22): PKCS#12 / PFX
/// keystores, Java keystores and DER PKCS#8 keys, with contents from ``ExampleTemplate`` so that
/// nothing key-shaped is committed.
public enum KeyContainerBytes {
    /// A DER element: tag, definite length, content.
    public static func der(_ tag: UInt8, _ content: [UInt8]) -> [UInt8] {
        let n = content.count
        let length: [UInt8] = n < 0x80 ? [UInt8(n)] : n < 0x100 ? [0x81, UInt8(n)] : [0x82, UInt8(n >> 8), UInt8(n & 0xFF)]
        return [tag] + length + content
    }

    public static func random(_ count: Int, seed: UInt64) -> [UInt8] {
        Array(ExampleTemplate.expand("{b64:\(count)}", seed: seed).utf8).map { $0 &* 31 &+ 7 }
    }

    public static let dataOID: [UInt8] = [0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x01]

    /// A PFX (version 3, authSafe of type data) whose one SafeContents holds a bag of type `bag`
    /// (2: pkcs8ShroudedKeyBag, 3: certBag), followed by a MAC.
    public static func pfx(bag: UInt8, seed: UInt64) -> [UInt8] {
        let bagOID: [UInt8] = [0x06, 0x0B, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x0C, 0x0A, 0x01, bag]
        let safeBag = der(0x30, bagOID + der(0xA0, der(0x04, random(120, seed: seed))))
        let safeContents = der(0x30, safeBag)
        let authenticatedSafe = der(0x30, der(0x30, dataOID + der(0xA0, der(0x04, safeContents))))
        let authSafe = der(0x30, dataOID + der(0xA0, der(0x04, authenticatedSafe)))
        let mac = der(0x30, der(0x30, der(0x30, [0x06, 0x05, 0x2B, 0x0E, 0x03, 0x02, 0x1A, 0x05, 0x00]) + der(0x04, random(20, seed: seed + 1))) + der(0x04, random(8, seed: seed + 2)) + der(0x02, [0x08, 0x00]))
        return der(0x30, der(0x02, [0x03]) + authSafe + mac)
    }

    /// A JKS (or JCEKS) keystore, version 2, with one entry: 1 private key, 2 trusted certificate.
    public static func javaKeyStore(magic: [UInt8] = [0xFE, 0xED, 0xFE, 0xED], entryTag: UInt8, seed: UInt64) -> [UInt8] {
        func u32(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
        func utf(_ s: String) -> [UInt8] { [0, UInt8(s.utf8.count)] + Array(s.utf8) }
        let certificate = utf("X.509") + u32(300) + random(300, seed: seed + 1)
        var entry = u32(Int(entryTag)) + utf("signing") + [0, 0, 1, 0x8C, 0x12, 0x34, 0x56, 0x78]
        if entryTag == 1 {
            let key = random(600, seed: seed)
            entry += u32(key.count) + key + u32(1) + certificate
        } else {
            entry += certificate
        }
        return magic + u32(2) + u32(1) + entry + random(20, seed: seed + 2)  // the SHA-1 integrity digest
    }

    /// A DER PKCS#8 Ed25519 private key.
    public static func ed25519DER(seed: UInt64) -> [UInt8] {
        der(0x30, der(0x02, [0x00]) + der(0x30, [0x06, 0x03, 0x2B, 0x65, 0x70]) + der(0x04, der(0x04, random(32, seed: seed))))
    }
}
