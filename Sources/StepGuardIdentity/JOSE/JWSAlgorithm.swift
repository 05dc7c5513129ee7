/// JWS signature algorithms stepguard verifies (RFC 7518). `none` and HMAC (`HS*`) are never
/// accepted: a CI token is verified with the issuer's public key only.
public enum JWSAlgorithm: String, Sendable, CaseIterable, Hashable, CustomStringConvertible {
    case RS256, RS384, RS512
    case PS256, PS384, PS512
    case ES256, ES384

    /// The algorithms allowed when a policy does not list `algorithms:`.
    public static let defaultAllowed: [JWSAlgorithm] = [.RS256, .ES256]

    public var description: String { rawValue }

    /// The JWK `kty` a key must have for this algorithm.
    public var keyType: String {
        switch self {
        case .RS256, .RS384, .RS512, .PS256, .PS384, .PS512: return "RSA"
        case .ES256, .ES384: return "EC"
        }
    }

    /// Parses an algorithm name from policy or header; throws for `none`, HMAC and unknown names.
    public static func parse(_ name: String) throws(IdentityError) -> JWSAlgorithm {
        if let alg = JWSAlgorithm(rawValue: name) { return alg }
        if name.lowercased() == "none" {
            throw IdentityError(.algorithm, "algorithm \"\(name)\" means an unsigned token and is always rejected",
                                remedy: "use a token signed by the CI provider (RS256 or ES256)")
        }
        if name.uppercased().hasPrefix("HS") {
            throw IdentityError(.algorithm, "HMAC algorithm \"\(name)\" is always rejected (a shared secret proves nothing about the issuer)",
                                remedy: "use a token signed with the issuer's public key (RS256 or ES256)")
        }
        throw IdentityError(.algorithm, "algorithm \"\(name)\" is not supported",
                            remedy: "supported algorithms: \(JWSAlgorithm.allCases.map(\.rawValue).joined(separator: ", "))")
    }
}
