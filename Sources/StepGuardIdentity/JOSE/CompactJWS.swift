import Crypto
import _CryptoExtras
import FoundationEssentials
import Glibc
import StepGuardCore

/// A compact-serialized JWS (`header.payload.signature`) decoded strictly but not yet verified.
public struct CompactJWS: Sendable {
    /// Default maximum token length in bytes. CI tokens are 1–3 KiB.
    public static let defaultMaximumSize = 16 * 1024

    /// The protected header.
    public let header: [String: JSONValue]
    /// The payload (claims set).
    public let claims: [String: JSONValue]
    /// The bytes that were signed: ASCII `base64url(header) "." base64url(payload)`.
    let signingInput: ArraySlice<UInt8>
    /// The decoded signature bytes.
    let signature: [UInt8]

    /// The header `alg`, parsed (throws for `none`, HMAC and unknown names).
    public var algorithm: JWSAlgorithm {
        get throws(IdentityError) {
            guard let value = header["alg"] else {
                throw IdentityError(.algorithm, "the token header has no alg", remedy: "the token must name its signature algorithm")
            }
            guard let name = value.stringValue else {
                throw IdentityError(.algorithm, "the token header alg is a \(value.typeName), not a string", remedy: "the token is malformed")
            }
            return try JWSAlgorithm.parse(name)
        }
    }

    /// The header `kid`, if present (throws when it is not a string).
    public var keyID: String? {
        get throws(IdentityError) {
            guard let value = header["kid"] else { return nil }
            guard let kid = value.stringValue else {
                throw IdentityError(.keyID, "the token header kid is a \(value.typeName), not a string", remedy: "the token is malformed")
            }
            return kid
        }
    }

    /// Decodes `token`. Rejects: more than `maximumSize` bytes, anything but three parts,
    /// non-canonical base64url, non-JSON or duplicate-key JSON, a non-object header or payload,
    /// and a `crit` header (no extension is understood, so none may be critical).
    public init(token: String, maximumSize: Int = CompactJWS.defaultMaximumSize) throws(IdentityError) {
        let bytes = Array(token.utf8)
        guard bytes.count <= maximumSize else {
            throw IdentityError(.tokenSize, "the token is \(bytes.count) bytes; the limit is \(maximumSize)",
                                remedy: "check that the token source returns a single JWT")
        }
        guard !bytes.isEmpty else {
            throw IdentityError(.tokenFormat, "the token is empty", remedy: "check the token source")
        }
        let parts: CompactJWT
        do { parts = try CompactJWT(token) } catch { throw IdentityError(.tokenFormat, error.reason, remedy: error.remedy) }
        self.header = parts.header
        self.claims = parts.claims
        let signature = parts.signature
        guard !signature.isEmpty else {
            throw IdentityError(.signature, "the token has an empty signature", remedy: "unsigned tokens are never accepted")
        }
        self.signature = signature
        self.signingInput = parts.signingInput
        if let crit = header["crit"] {
            throw IdentityError(.critical, "the token header has crit \(crit.jsonText); no JWS extension is supported",
                                remedy: "stepguard rejects tokens that require extensions it does not implement")
        }
    }

    /// Verifies the signature with `key` for `alg` (already checked against the key).
    func verifySignature(alg: JWSAlgorithm, material: JWK.Material, keyLabel: String) throws(IdentityError) {
        let valid: Bool
        switch material {
        case .rsa(let key):
            let signature = _RSA.Signing.RSASignature(rawRepresentation: self.signature)
            let expected = (key.keySizeInBits + 7) / 8
            guard self.signature.count == expected else {
                throw IdentityError(.signature, "the \(alg) signature is \(self.signature.count) bytes; \(keyLabel) needs \(expected)",
                                    remedy: "the token was not signed by this key")
            }
            switch alg {
            case .RS256: valid = key.isValidSignature(signature, for: SHA256.hash(data: signingInput), padding: .insecurePKCS1v1_5)
            case .RS384: valid = key.isValidSignature(signature, for: SHA384.hash(data: signingInput), padding: .insecurePKCS1v1_5)
            case .RS512: valid = key.isValidSignature(signature, for: SHA512.hash(data: signingInput), padding: .insecurePKCS1v1_5)
            case .PS256: valid = key.isValidSignature(signature, for: SHA256.hash(data: signingInput), padding: .PSS)
            case .PS384: valid = key.isValidSignature(signature, for: SHA384.hash(data: signingInput), padding: .PSS)
            case .PS512: valid = key.isValidSignature(signature, for: SHA512.hash(data: signingInput), padding: .PSS)
            case .ES256, .ES384: valid = false
            }
        case .p256(let key):
            try Self.checkECDSA(signature, coordinateSize: 32, order: Self.p256Order, alg: alg)
            guard let sig = try? P256.Signing.ECDSASignature(rawRepresentation: signature) else {
                throw IdentityError(.signature, "the ES256 signature could not be decoded", remedy: "the token is malformed or forged")
            }
            valid = key.isValidSignature(sig, for: SHA256.hash(data: signingInput))
        case .p384(let key):
            try Self.checkECDSA(signature, coordinateSize: 48, order: Self.p384Order, alg: alg)
            guard let sig = try? P384.Signing.ECDSASignature(rawRepresentation: signature) else {
                throw IdentityError(.signature, "the ES384 signature could not be decoded", remedy: "the token is malformed or forged")
            }
            valid = key.isValidSignature(sig, for: SHA384.hash(data: signingInput))
        }
        guard valid else {
            throw IdentityError(.signature, "the \(alg) signature does not verify with \(keyLabel)",
                                remedy: "the token was altered or not issued by this issuer; do not use it")
        }
    }

    static let p256Order: [UInt8] = [
        0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
    ]
    static let p384Order: [UInt8] = [
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xC7, 0x63, 0x4D, 0x81, 0xF4, 0x37, 0x2D, 0xDF,
        0x58, 0x1A, 0x0D, 0xB2, 0x48, 0xB0, 0xA7, 0x7A, 0xEC, 0xEC, 0x19, 0x6A, 0xCC, 0xC5, 0x29, 0x73,
    ]

    /// ECDSA signatures in JWS are IEEE P1363 `r || s`, each exactly the curve size, with
    /// 1 ≤ r, s < n. DER signatures, r = 0 or s = 0 ("psychic signatures") are rejected here,
    /// before the library sees them.
    static func checkECDSA(_ signature: [UInt8], coordinateSize: Int, order: [UInt8], alg: JWSAlgorithm) throws(IdentityError) {
        guard signature.count == 2 * coordinateSize else {
            throw IdentityError(.signature, "the \(alg) signature is \(signature.count) bytes; it must be \(2 * coordinateSize) (r || s, IEEE P1363)",
                                remedy: "the token is malformed (a DER-encoded ECDSA signature is not valid in a JWS)")
        }
        for (name, range) in [("r", 0..<coordinateSize), ("s", coordinateSize..<(2 * coordinateSize))] {
            let value = signature[range]
            if value.allSatisfy({ $0 == 0 }) {
                throw IdentityError(.signature, "the \(alg) signature has \(name) = 0",
                                    remedy: "the token is forged; do not use it")
            }
            if !lexicographicallyLess(value, order[...]) {
                throw IdentityError(.signature, "the \(alg) signature has \(name) ≥ the curve order",
                                    remedy: "the token is forged; do not use it")
            }
        }
    }

    private static func lexicographicallyLess(_ a: ArraySlice<UInt8>, _ b: ArraySlice<UInt8>) -> Bool {
        for (x, y) in zip(a, b) where x != y { return x < y }
        return false
    }
}
