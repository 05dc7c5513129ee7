/// The three parts of a compact JWS (`header.payload.signature`), decoded strictly — canonical
/// base64url, strict JSON objects without duplicate keys — but not verified. Identity verifies
/// what it decodes; Egress reads the claims of tokens in flight to classify them. Both decode with
/// this one reader, so a token one of them reads is read the same way by the other.
public struct CompactJWT: Sendable {
    /// The protected header.
    public let header: [String: JSONValue]
    /// The payload (claims set).
    public let claims: [String: JSONValue]
    /// The decoded signature bytes (may be empty: the caller decides).
    public let signature: [UInt8]
    /// The bytes that were signed: ASCII `base64url(header) "." base64url(payload)`.
    public let signingInput: ArraySlice<UInt8>

    /// Why a token could not be decoded, and what to do.
    public struct FormatError: Error, Sendable, CustomStringConvertible {
        /// What is wrong with the token.
        public let reason: String
        /// What to do about it.
        public let remedy: String
        public var description: String { reason }
    }

    /// Decodes `token`; throws for anything but three parts of strict base64url whose first two
    /// are JSON objects.
    public init(_ token: String) throws(FormatError) {
        let bytes = Array(token.utf8)
        var dots: [Int] = []
        for (i, b) in bytes.enumerated() where b == UInt8(ascii: ".") {
            dots.append(i)
            if dots.count > 2 { break }
        }
        guard dots.count == 2 else {
            let parts = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false).count
            throw FormatError(reason: parts == 5 ? "the token has 5 parts (an encrypted JWE), not a signed JWS"
                                                 : "the token has \(parts) dot-separated parts; a compact JWS has 3",
                              remedy: "pass the compact JWT exactly as the CI provider issued it")
        }
        func decode(_ part: ArraySlice<UInt8>, _ name: String) throws(FormatError) -> [UInt8] {
            guard let decoded = Base64URL.decode(part) else {
                throw FormatError(reason: "the token \(name) is not strict base64url (no padding, alphabet A-Z a-z 0-9 - _)",
                                  remedy: "pass the compact JWT exactly as the CI provider issued it")
            }
            return decoded
        }
        func object(_ part: [UInt8], _ name: String) throws(FormatError) -> [String: JSONValue] {
            let json: JSONValue
            do { json = try StrictJSON.parse(part) } catch {
                throw FormatError(reason: "the token \(name) is not valid JSON: \(error)", remedy: "the token is malformed or forged; do not use it")
            }
            guard let object = json.objectValue else {
                throw FormatError(reason: "the token \(name) is a JSON \(json.typeName), not an object", remedy: "the token is malformed or forged; do not use it")
            }
            return object
        }
        header = try object(try decode(bytes[0..<dots[0]], "header"), "header")
        claims = try object(try decode(bytes[(dots[0] + 1)..<dots[1]], "payload"), "payload")
        signature = try decode(bytes[(dots[1] + 1)...], "signature")
        signingInput = bytes[0..<dots[1]]
    }
}
