import Crypto
import Foundation

/// A minimal OIDC issuer for end-to-end tests: one P-256 key, its JWKS, and ES256 tokens with
/// whatever claims a test asks for.
public struct TestOIDCIssuer: Sendable {
    public let issuer: String
    public let keyID: String
    private let key = P256.Signing.PrivateKey()

    public init(issuer: String = "https://issuer.stepguard.test", keyID: String = "test-key-1") {
        self.issuer = issuer
        self.keyID = keyID
    }

    /// The JWKS document with the issuer's public key.
    public var jwks: String {
        let raw = key.publicKey.rawRepresentation
        let x = Self.base64URL(raw.prefix(32)), y = Self.base64URL(raw.suffix(32))
        return #"{"keys":[{"kty":"EC","crv":"P-256","kid":"\#(keyID)","alg":"ES256","use":"sig","x":"\#(x)","y":"\#(y)"}]}"#
    }

    /// An ES256 token for `subject` and `audience`, issued `age` seconds ago, valid for `ttl`
    /// seconds, with `extraClaims` (JSON fragments, e.g. `"ref": "\"refs/heads/main\""`).
    public func token(subject: String, audience: String, age: TimeInterval = 10, ttl: TimeInterval = 300,
                      extraClaims: [String: String] = [:]) throws -> String {
        let issuedAt = Int(Date().timeIntervalSince1970 - age)
        var fields = [#""iss":"\#(issuer)""#, #""sub":"\#(subject)""#, #""aud":"\#(audience)""#,
                      #""iat":\#(issuedAt)"#, #""nbf":\#(issuedAt)"#, #""exp":\#(issuedAt + Int(ttl))"#]
        fields += extraClaims.sorted { $0.key < $1.key }.map { #""\#($0.key)":\#($0.value)"# }
        let header = Self.base64URL(Data(#"{"alg":"ES256","typ":"JWT","kid":"\#(keyID)"}"#.utf8))
        let payload = Self.base64URL(Data(("{" + fields.joined(separator: ",") + "}").utf8))
        let signature = try key.signature(for: Data("\(header).\(payload)".utf8))
        return "\(header).\(payload).\(Self.base64URL(signature.rawRepresentation))"
    }

    static func base64URL(_ data: some DataProtocol) -> String {
        Data(data).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
