import StepGuardCore
import Crypto
import _CryptoExtras
import FoundationEssentials
import Glibc

/// A public key from a JWKS, parsed strictly. A key that cannot be used (unsupported type or
/// curve, RSA shorter than 2048 bits, malformed coordinates) is kept with the reason, so a token
/// that selects it is rejected with that reason instead of silently falling back to another key.
public struct JWK: Sendable {
    /// Minimum RSA modulus size accepted.
    public static let minimumRSABits = 2048

    /// The key's `kid`, if any.
    public let keyID: String?
    /// The key's `kty` (`RSA`, `EC`, ...).
    public let keyType: String
    /// The key's own `alg`, if any; a token's header `alg` must then equal it.
    public let algorithm: String?
    /// The key's `use`, if any; only `sig` (or absent) keys verify tokens.
    public let use: String?
    /// The key's `key_ops`, if any; it must then contain `verify`.
    public let keyOperations: [String]?
    /// The curve for EC keys (`P-256`, `P-384`).
    public let curve: String?
    /// Bits in the RSA modulus (0 for other key types).
    public let rsaBits: Int

    enum Material: Sendable {
        case rsa(_RSA.Signing.PublicKey)
        case p256(P256.Signing.PublicKey)
        case p384(P384.Signing.PublicKey)
    }

    let material: Result<Material, IdentityError>

    /// A short description for error messages: `kid "abc" (RSA 2048, alg RS256)`.
    public var label: String {
        var parts = [keyType]
        if keyType == "RSA", rsaBits > 0 { parts.append(String(rsaBits)) }
        if let curve { parts.append(curve) }
        var text = keyID.map { "kid \"\($0)\"" } ?? "key without kid"
        text += " (" + parts.joined(separator: " ")
        if let algorithm { text += ", alg \(algorithm)" }
        return text + ")"
    }

    /// Parses one JWK object. Only structural errors (not an object, missing `kty`) throw; an
    /// unusable but well-formed key is returned with its reason in `material`.
    init(json: JSONValue, index: Int, origin: String) throws(IdentityError) {
        guard let object = json.objectValue else {
            throw IdentityError(.jwks, "key #\(index) in \(origin) is a \(json.typeName), not a JSON object",
                                remedy: "check the JWKS document; every entry of \"keys\" must be an object")
        }
        func optionalString(_ name: String) throws(IdentityError) -> String? {
            guard let value = object[name] else { return nil }
            guard let s = value.stringValue else {
                throw IdentityError(.jwks, "key #\(index) in \(origin): \"\(name)\" is a \(value.typeName), not a string",
                                    remedy: "fix the JWKS document")
            }
            return s
        }
        guard let kty = try optionalString("kty") else {
            throw IdentityError(.jwks, "key #\(index) in \(origin) has no \"kty\"", remedy: "fix the JWKS document")
        }
        self.keyType = kty
        self.keyID = try optionalString("kid")
        self.algorithm = try optionalString("alg")
        self.use = try optionalString("use")
        self.curve = try optionalString("crv")
        if let ops = object["key_ops"] {
            guard let array = ops.arrayValue, array.allSatisfy({ $0.stringValue != nil }) else {
                throw IdentityError(.jwks, "key #\(index) in \(origin): \"key_ops\" is not an array of strings",
                                    remedy: "fix the JWKS document")
            }
            self.keyOperations = array.compactMap(\.stringValue)
        } else {
            self.keyOperations = nil
        }
        let name = keyID.map { "kid \"\($0)\"" } ?? "key #\(index)"
        func unusable(_ why: String) -> Result<Material, IdentityError> {
            .failure(IdentityError(.key, "\(name) in \(origin) is unusable: \(why)",
                                   remedy: "the issuer must sign with an RSA (≥ \(JWK.minimumRSABits) bits) or EC P-256/P-384 key"))
        }
        func member(_ field: String) -> [UInt8]? {
            guard let text = object[field]?.stringValue else { return nil }
            return Base64URL.decode(text)
        }
        var bits = 0
        switch kty {
        case "RSA":
            guard let n = member("n"), let e = member("e"), !n.isEmpty, !e.isEmpty else {
                self.rsaBits = 0
                self.material = unusable("RSA key without valid base64url \"n\" and \"e\"")
                return
            }
            bits = JWK.bitLength(n)
            self.rsaBits = bits
            if bits < JWK.minimumRSABits {
                self.material = unusable("RSA modulus has \(bits) bits; at least \(JWK.minimumRSABits) are required")
                return
            }
            if object["d"] != nil || object["p"] != nil {
                self.material = unusable("it contains private key members; a JWKS must hold public keys only")
                return
            }
            do {
                self.material = .success(.rsa(try _RSA.Signing.PublicKey(n: n, e: e)))
            } catch {
                self.material = unusable("RSA parameters rejected by BoringSSL")
            }
        case "EC":
            self.rsaBits = 0
            guard object["d"] == nil else {
                self.material = unusable("it contains a private key member; a JWKS must hold public keys only")
                return
            }
            guard let x = member("x"), let y = member("y") else {
                self.material = unusable("EC key without valid base64url \"x\" and \"y\"")
                return
            }
            switch curve {
            case "P-256":
                guard x.count == 32, y.count == 32, let key = try? P256.Signing.PublicKey(rawRepresentation: x + y) else {
                    self.material = unusable("P-256 coordinates are not a point on the curve (x, y must be 32 bytes each)")
                    return
                }
                self.material = .success(.p256(key))
            case "P-384":
                guard x.count == 48, y.count == 48, let key = try? P384.Signing.PublicKey(rawRepresentation: x + y) else {
                    self.material = unusable("P-384 coordinates are not a point on the curve (x, y must be 48 bytes each)")
                    return
                }
                self.material = .success(.p384(key))
            default:
                self.material = unusable("EC curve \(curve.map { "\"\($0)\"" } ?? "(missing)") is not supported")
            }
        case "oct":
            self.rsaBits = 0
            self.material = unusable("symmetric (\"oct\") keys are never used to verify CI tokens")
        default:
            self.rsaBits = 0
            self.material = unusable("key type \"\(kty)\" is not supported")
        }
    }

    /// Number of significant bits in a big-endian unsigned integer.
    static func bitLength(_ bytes: [UInt8]) -> Int {
        guard let first = bytes.firstIndex(where: { $0 != 0 }) else { return 0 }
        return (bytes.count - first - 1) * 8 + (8 - bytes[first].leadingZeroBitCount)
    }

    /// Checks that this key may verify a token signed with `alg`, and returns its material.
    func material(for alg: JWSAlgorithm) throws(IdentityError) -> Material {
        if let use, use != "sig" {
            throw IdentityError(.key, "\(label) has \"use\": \"\(use)\", not \"sig\"",
                                remedy: "the token must be signed with a signing key of the issuer")
        }
        if let keyOperations, !keyOperations.contains("verify") {
            throw IdentityError(.key, "\(label) has \"key_ops\" \(keyOperations) without \"verify\"",
                                remedy: "the token must be signed with a signing key of the issuer")
        }
        guard keyType == alg.keyType else {
            throw IdentityError(.algorithm, "header alg \(alg) needs a \(alg.keyType) key, but \(label) is \(keyType)",
                                remedy: "the token's alg must match the type of the key its kid names")
        }
        if let algorithm, algorithm != alg.rawValue {
            throw IdentityError(.algorithm, "header alg \(alg) disagrees with the key's own alg \(algorithm) for \(label)",
                                remedy: "the token's alg must equal the alg the JWKS declares for that key")
        }
        let material = try material.get()
        switch (alg, material) {
        case (.ES256, .p256), (.ES384, .p384), (.RS256, .rsa), (.RS384, .rsa), (.RS512, .rsa),
             (.PS256, .rsa), (.PS384, .rsa), (.PS512, .rsa):
            return material
        default:
            throw IdentityError(.algorithm, "header alg \(alg) does not match the curve of \(label)",
                                remedy: "ES256 needs a P-256 key, ES384 a P-384 key")
        }
    }
}

/// A parsed JWK Set (RFC 7517 §5).
public struct JWKSet: Sendable {
    /// The keys, in document order.
    public let keys: [JWK]
    /// Where the set came from (URL or file), for error messages.
    public let origin: String
    /// Distinguishes successive fetches of the same set (set by ``KeyStore``).
    var generation = 0

    /// Parses a JWKS document strictly (duplicate JSON keys, non-object entries and a missing
    /// `keys` array are errors).
    public init(data: some Collection<UInt8>, origin: String) throws(IdentityError) {
        let json = try keyDocument(data, "the JWKS from \(origin)",
                                   remedy: "check that the jwks URL or file points at a JWK Set document")
        guard let keys = json.objectValue?["keys"]?.arrayValue else {
            throw IdentityError(.jwks, "the JWKS from \(origin) has no \"keys\" array",
                                remedy: "check that the jwks URL or file points at a JWK Set document")
        }
        var parsed: [JWK] = []
        for (i, key) in keys.enumerated() {
            parsed.append(try JWK(json: key, index: i, origin: origin))
        }
        self.keys = parsed
        self.origin = origin
    }

    /// Outcome of looking a key up by kid.
    enum Lookup {
        case found(JWK)
        case unknownKid(String)
    }

    /// Selects the key for a token header: by `kid` only, never falling back to another key.
    /// A token without `kid` may use the key only when the set holds exactly one key.
    func select(kid: String?) throws(IdentityError) -> Lookup {
        guard let kid else {
            guard keys.count == 1 else {
                throw IdentityError(.keyID, "the token header has no kid and the JWKS from \(origin) holds \(keys.count) keys",
                                    remedy: "a token without kid is accepted only when the JWKS holds exactly one key")
            }
            return .found(keys[0])
        }
        let matching = keys.filter { $0.keyID == kid }
        switch matching.count {
        case 0: return .unknownKid(kid)
        case 1: return .found(matching[0])
        default:
            throw IdentityError(.keyID, "kid \"\(kid)\" names \(matching.count) keys in the JWKS from \(origin)",
                                remedy: "the issuer's JWKS must give each key a distinct kid")
        }
    }
}

/// `bytes` (a JWKS or an OIDC discovery document) parsed strictly as JSON; when they are not JSON,
/// a ``IdentityError/Check/jwks`` error saying that `document` (e.g. "the JWKS from URL") is not
/// valid JSON, with `remedy`.
func keyDocument(_ bytes: some Collection<UInt8>, _ document: String, remedy: String) throws(IdentityError) -> JSONValue {
    do {
        return try StrictJSON.parse(bytes)
    } catch {
        throw IdentityError(.jwks, "\(document) is not valid JSON: \(error)", remedy: remedy)
    }
}
