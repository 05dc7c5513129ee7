import Crypto
import Foundation

/// The OIDC issuer the tests make: one P-256 key, its JWKS, and ES256 tokens with whatever claims
/// a test asks for. (Identity's verification tests add RSA, P-384 and malformed tokens on top of
/// the same idea in their own fixture, `JOSEFixture`.)
public struct TestOIDCIssuer: Sendable {
    public let issuer: String
    public let keyID: String
    private let key = P256.Signing.PrivateKey()

    public init(issuer: String = "https://issuer.stepguard.test", keyID: String = "test-key-1") {
        self.issuer = issuer
        self.keyID = keyID
    }

    /// The issuer's public key (what a verifier checks signatures with).
    public var publicKey: P256.Signing.PublicKey { key.publicKey }

    /// The JWKS document with the issuer's public key.
    public var jwks: String {
        let raw = key.publicKey.rawRepresentation
        let x = Self.base64URL(raw.prefix(32)), y = Self.base64URL(raw.suffix(32))
        return #"{"keys":[{"kty":"EC","crv":"P-256","kid":"\#(keyID)","alg":"ES256","use":"sig","x":"\#(x)","y":"\#(y)"}]}"#
    }

    /// An ES256 token for `subject` and `audience`, issued at `issuedAt`, valid for `lifetime`
    /// seconds, with `claims` (any JSON values; they override the standard ones), signed with
    /// `signingKey` (default: the issuer's own key; another key makes a forgery).
    public func token(subject: String, audience: String = "stepguard", claims: [String: Any] = [:], issuedAt: Date = Date(),
                      lifetime: TimeInterval = 600, notBefore: Bool = true, signingKey: P256.Signing.PrivateKey? = nil) -> String {
        let issued = Int(issuedAt.timeIntervalSince1970)
        var payload: [String: Any] = ["iss": issuer, "sub": subject, "aud": audience, "iat": issued, "exp": issued + Int(lifetime)]
        if notBefore { payload["nbf"] = issued }
        for (name, value) in claims { payload[name] = value }
        let header = Self.base64URL(try! JSONSerialization.data(withJSONObject: ["alg": "ES256", "typ": "JWT", "kid": keyID], options: [.sortedKeys]))
        let body = Self.base64URL(try! JSONSerialization.data(withJSONObject: payload, options: [.sortedKeys]))
        let signature = try! (signingKey ?? key).signature(for: Data("\(header).\(body)".utf8))
        return "\(header).\(body).\(Self.base64URL(signature.rawRepresentation))"
    }

    /// An ES256 token for `subject` and `audience`, issued `age` seconds ago, valid for `ttl`
    /// seconds, with `extraClaims` (JSON fragments, e.g. `"ref": "\"refs/heads/main\""`).
    public func token(subject: String, audience: String, age: TimeInterval = 10, ttl: TimeInterval = 300,
                      extraClaims: [String: String] = [:]) throws -> String {
        var claims: [String: Any] = [:]
        for (name, fragment) in extraClaims {
            claims[name] = try JSONSerialization.jsonObject(with: Data(fragment.utf8), options: [.fragmentsAllowed])
        }
        return token(subject: subject, audience: audience, claims: claims, issuedAt: Date().addingTimeInterval(-age), lifetime: ttl)
    }

    /// A policy's `identity:` section that trusts this issuer: the job's token read from
    /// `token` (a file), its keys from `jwks`, audience `stepguard`, ES256, then `more` lines
    /// (`claims: …`, `lifetime: …`) in the section.
    public func identitySection(token: String = "token.jwt", jwks: String = "jwks.json", _ more: String...) -> String {
        (["identity:", "  token: file:\(token)", "  issuer: \(issuer)", "  audience: stepguard", "  jwks: \(jwks)", "  algorithms: [ES256]"]
            + more.map { "  " + $0 }).joined(separator: "\n")
    }

    /// base64url without padding.
    public static func base64URL(_ data: some DataProtocol) -> String {
        Data(data).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
