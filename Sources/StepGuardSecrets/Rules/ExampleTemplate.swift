/// Expands the templates used in rule examples and the test corpus, so that no literal
/// credential-shaped string has to be committed (push protection and scanners stay quiet on
/// the rules themselves).
///
/// Syntax: `{cut}` (removed: splits a literal such as `gh{cut}p_`), `{nl}` (a newline),
/// `{alnum:N}`, `{hex:N}`, `{HEX:N}`, `{upper:N}`, `{lower:N}`, `{digits:N}`, `{b32:N}` (A-Z2-7), `{bech32:N}`,
/// `{lowernum:N}`, `{uppernum:N}`, `{b64:N}`, `{b64url:N}` — N pseudo-random characters from that
/// alphabet, deterministic for a given template and seed — and `{gh:PREFIX}`, a GitHub-format token
/// `PREFIX_` + 30 random characters + the 6-character CRC-32 checksum, and `{base64:TEXT}`, TEXT
/// in base64 (placeholders that are encoded text: `{base64:username:password}`).
public enum ExampleTemplate {
    static let alphabets: [String: [UInt8]] = [
        "alnum": Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8),
        "hex": Array("0123456789abcdef".utf8),
        "HEX": Array("0123456789ABCDEF".utf8),
        "upper": Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8),
        "lower": Array("abcdefghijklmnopqrstuvwxyz".utf8),
        "digits": Array("0123456789".utf8),
        "b32": Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8),
        "bech32": Array("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L".utf8),
        "lowernum": Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8),
        "uppernum": Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".utf8),
        "b64": Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8),
        "b64url": Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8),
    ]

    /// Expands `template`; `seed` varies the random parts.
    public static func expand(_ template: String, seed: UInt64 = 0) -> String {
        var state: UInt64 = 0xcbf2_9ce4_8422_2325 ^ seed
        for b in template.utf8 { state = (state ^ UInt64(b)) &* 0x100_0000_01b3 }
        func next() -> UInt64 {
            // splitmix64
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        func random(_ alphabet: [UInt8], _ n: Int) -> [UInt8] {
            (0..<n).map { _ in alphabet[Int(next() % UInt64(alphabet.count))] }
        }
        let bytes = Array(template.utf8)
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "{"), let close = bytes[i...].firstIndex(of: UInt8(ascii: "}")) {
                let inner = String(decoding: bytes[(i + 1)..<close], as: UTF8.self)
                let parts = inner.split(separator: ":", maxSplits: 1).map(String.init)
                if inner == "cut" {
                    i = close + 1
                    continue
                } else if inner == "nl" {
                    out.append(10)
                    i = close + 1
                    continue
                } else if parts.count == 2, parts[0] == "gh" {
                    let body = random(alphabets["alnum"]!, 30)
                    let check = SecretChecks.base62(SecretChecks.crc32(body))
                    out += Array(parts[1].utf8) + [UInt8(ascii: "_")] + body + Array(check.utf8)
                    i = close + 1
                    continue
                } else if parts.count == 2, parts[0] == "base64" {
                    out += Array(SecretChecks.base64(Array(parts[1].utf8)).utf8)
                    i = close + 1
                    continue
                } else if parts.count == 2, let alphabet = alphabets[parts[0]], let n = Int(parts[1]) {
                    out += random(alphabet, n)
                    i = close + 1
                    continue
                }
            }
            out.append(bytes[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}
