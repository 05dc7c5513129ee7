import Testing
@testable import StepGuardIdentity

/// The byte-level name checks of the environment check (issue #17) against 5a31ba4's
/// character-level originals, on names built from keywords, `_`, digits, case and characters
/// outside ASCII that join a `_` into one character: a combining mark after it (`_\u{301}`), a
/// prepended concatenation mark before it (`\u{600}_`), a zero-width joiner. Splitting such a name
/// on bytes cut it where the original did not: `MY_TOKEN_X\u{600}_PATH` ended in the metadata word
/// `PATH` and passed with a token in it; `AWS\u{600}_SECRET_ACCESS_KEY` got a pair stem and could be
/// taken for the secret half of temporary credentials.
@Suite struct CredentialNamesDifferentialTests {
    /// 5a31ba4's `secretByName` up to the value: whether `name` names a secret.
    static func originalNamesASecret(_ name: String) -> Bool {
        let passwordWords: Set<String> = ["PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "SECRETS"]
        let tokenWords: Set<String> = ["TOKEN", "APIKEY", "ACCESSTOKEN", "CREDENTIAL", "CREDENTIALS", "PAT",
                                       "API_KEY", "ACCESS_KEY", "SECRET_KEY", "PRIVATE_KEY", "AUTH_KEY", "ACCOUNT_KEY",
                                       "SIGNING_KEY", "ENCRYPTION_KEY", "MASTER_KEY", "CLIENT_KEY", "APP_KEY"]
        let metadataWords: Set<String> = [
            "PATH", "FILE", "DIR", "URL", "URI", "ENDPOINT", "HOST", "PORT", "NAME", "ID", "TYPE", "HEADER", "TTL", "EXPIRY",
            "EXPIRES", "LENGTH", "SIZE", "MODE", "ENABLED", "REQUIRED", "VERSION", "FORMAT", "ARN", "REF", "ROLE", "ISSUER",
            "AUDIENCE", "SCOPE", "SCOPES", "USER", "USERNAME", "LOCATION", "PROVIDER", "REGION", "KIND", "PREFIX", "SUFFIX",
        ]
        let segments = name.uppercased().split(separator: "_").map(String.init)
        guard let last = segments.last else { return false }
        let isSecretID = last == "ID" && segments.dropLast().last == "SECRET"
        guard isSecretID || !metadataWords.contains(last) else { return false }
        let pairs = zip(segments, segments.dropFirst()).map { "\($0)_\($1)" }
        return segments.contains { passwordWords.contains($0) } || segments.contains { tokenWords.contains($0) } || pairs.contains { tokenWords.contains($0) }
    }

    /// 5a31ba4's `pairStem`.
    static func originalPairStem(_ name: String) -> String? {
        for role in ["SECRET_ACCESS_KEY", "ACCESS_KEY_ID", "SESSION_TOKEN", "SECURITY_TOKEN", "CLIENT_SECRET", "CLIENT_ID", "TENANT_ID",
                     "CONSUMER_SECRET", "CONSUMER_KEY", "TOKEN_SECRET", "TOKEN_ID", "ACCOUNT_NAME", "ACCOUNT_KEY", "API_SECRET", "API_KEY",
                     "APP_SECRET", "APP_KEY", "APP_ID", "SECRET_KEY", "ACCESS_KEY", "KEY_ID", "USERNAME", "PASSWORD", "PASSWD", "LOGIN",
                     "SECRET", "USER"] where name.hasSuffix(role) {
            let stem = name.dropLast(role.count)
            if stem.hasSuffix("_") && stem.count > 1 { return String(stem) }
        }
        return nil
    }

    /// 5a31ba4's `piece`.
    static func originalPiece(_ name: String) -> (stem: String, order: String)? {
        var stem = Substring(name)
        var order = Substring("")
        if let digits = stem.lastIndex(where: { !($0.isASCII && $0.isNumber) }).map({ stem.index(after: $0) }), digits < stem.endIndex,
           stem.distance(from: digits, to: stem.endIndex) <= 2 {
            order = stem[digits...]
            stem = stem[..<digits]
            if stem.hasSuffix("PART") { stem = stem.dropLast(4) }
        } else if stem.count >= 3, stem[stem.index(stem.endIndex, offsetBy: -2)] == "_", stem.last!.isLetter {
            order = stem.suffix(1)
            stem = stem.dropLast(1)
        } else {
            return nil
        }
        while stem.hasSuffix("_") { stem = stem.dropLast() }
        guard !stem.isEmpty else { return nil }
        return (String(stem), order.count < 2 ? " " + order : String(order))
    }

    /// A value every secret-named variable takes for its secret (40 random characters, made here).
    let value = String((0..<40).map { _ in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".randomElement()! })

    @Test func namesJoiningAnUnderscoreIntoACharacterAreReadAsBefore() {
        for name in ["MY_TOKEN_X\u{600}_PATH", "TOKEN_\u{301}", "TOKEN_\u{301}PATH", "A_SECRET_\u{200D}ID", "DB_PASSWORD_X\u{600}_NAME"] {
            #expect((CredentialNames.secretByName(name, value: value) != nil) == Self.originalNamesASecret(name), "\(name.unicodeScalars.map(\.value))")
        }
        for name in ["AWS\u{600}_SECRET_ACCESS_KEY", "AWS\u{600}_ACCESS_KEY_ID", "X\u{600}_PASSWORD", "AWS_\u{301}SECRET", "é_USER"] {
            #expect(CredentialNames.pairStem(name) == Self.originalPairStem(name), "\(name.unicodeScalars.map(\.value))")
        }
    }

    @Test func randomNamesAreReadAsBefore() {
        let pieces = ["_", "_", "_", "TOKEN", "token", "SECRET", "ID", "PATH", "NAME", "API", "KEY", "Key", "PASS", "WORD", "ACCESS", "AWS",
                      "USER", "PAT", "X", "1", "é", "ſ", "\u{301}", "\u{600}", "\u{200D}", "\u{0D4E}", "ß", "\u{130}"]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let name = (0..<Int.random(in: 1...6, using: &generator)).map { _ in pieces.randomElement(using: &generator)! }.joined()
            #expect((CredentialNames.secretByName(name, value: value) != nil) == Self.originalNamesASecret(name), "\(name.unicodeScalars.map(\.value))")
            #expect(CredentialNames.pairStem(name) == Self.originalPairStem(name), "\(name.unicodeScalars.map(\.value))")
        }
    }

    /// 5a31ba4's `hexText` up to the text check: the bytes a value decodes to as hex, or nil.
    static func originalHexBytes(_ value: String) -> [UInt8]? {
        var digits = Array(value.trimmingASCIISpaces.utf8)
        if digits.starts(with: Array("0x".utf8)) || digits.starts(with: Array("0X".utf8)) { digits.removeFirst(2) }
        guard digits.count >= EncodedValue.minimumEncodedLength, digits.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var bytes: [UInt8] = []
        var index = 0
        while index < digits.count {
            guard let high = nibble(digits[index]), let low = nibble(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    /// `hexText`'s early exit (2197afe) refuses no value the original decoded: hex of printable
    /// text in either case, with `0x` and spaces around, and with a stray byte put anywhere.
    @Test func hexValuesAreDecodedAsBefore() {
        var generator = SystemRandomNumberGenerator()
        let strays = ["g", "x", "X", " ", "\t", "\n", "é", "0", "0x", "-", "\u{0B}", "\u{85}"]
        for _ in 0..<10_000 {
            let text = (0..<Int.random(in: 6...20, using: &generator)).map { _ in UInt8.random(in: 0x20...0x7E, using: &generator) }
            var hex = text.map { byte in
                let digits = Array("0123456789abcdef")
                return String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
            }.joined()
            if Bool.random(using: &generator) { hex = hex.uppercased() }
            if Bool.random(using: &generator) { hex = "0x" + hex }
            if Bool.random(using: &generator) { hex = " \t" + hex + "\n " }
            if Bool.random(using: &generator) {
                var characters = Array(hex)
                characters.insert(contentsOf: strays.randomElement(using: &generator)!, at: Int.random(in: 0...characters.count, using: &generator))
                hex = String(characters)
            }
            let original = Self.originalHexBytes(hex)
            if let original, original.allSatisfy({ $0 >= 0x20 && $0 <= 0x7E }) {
                #expect(EncodedValue.hexText(hex) == String(decoding: original, as: UTF8.self), "\(hex)")
            } else if original == nil {
                #expect(EncodedValue.hexText(hex) == nil, "\(hex)")
            }
        }
    }
}
