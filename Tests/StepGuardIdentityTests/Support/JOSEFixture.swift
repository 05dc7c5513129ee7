import StepGuardCore
import Crypto
import _CryptoExtras
import Foundation
@testable import StepGuardIdentity

/// The verification tests' JOSE fixture: RSA-2048, P-256 and P-384 signing keys, a JWKS, and a minting
/// function that can produce both well-formed and deliberately malformed tokens.
struct JOSEFixture: Sendable {
    static let issuer = "https://token.test.local"
    static let audience = "stepguard"
    /// A fixed "now" for deterministic time checks.
    static let now: Double = 1_800_000_000

    let rsa: _RSA.Signing.PrivateKey
    let ec: P256.Signing.PrivateKey
    let ec384: P384.Signing.PrivateKey
    let rsaKid = "rsa-1"
    let ecKid = "ec-1"
    let ec384Kid = "ec384-1"

    /// Shared keys: RSA generation is slow in debug builds, so the tests reuse one issuer.
    static let shared = JOSEFixture()

    init() {
        rsa = try! _RSA.Signing.PrivateKey(keySize: .bits2048)
        ec = P256.Signing.PrivateKey()
        ec384 = P384.Signing.PrivateKey()
    }

    static func rsaJWK(_ key: _RSA.Signing.PublicKey, kid: String?, alg: String? = nil, extra: [String: JSONValue] = [:]) -> JSONValue {
        let primitives = try! key.getKeyPrimitives()
        var object: [String: JSONValue] = [
            "kty": "RSA", "use": "sig",
            "n": .string(Base64URL.encode(stripLeadingZeros(Array(primitives.modulus)))),
            "e": .string(Base64URL.encode(stripLeadingZeros(Array(primitives.publicExponent)))),
        ]
        if let kid { object["kid"] = .string(kid) }
        if let alg { object["alg"] = .string(alg) }
        object.merge(extra) { $1 }
        return .object(object)
    }

    static func ecJWK(_ raw: Data, crv: String, kid: String?, alg: String? = nil) -> JSONValue {
        let bytes = Array(raw)
        let half = bytes.count / 2
        var object: [String: JSONValue] = [
            "kty": "EC", "crv": .string(crv), "use": "sig",
            "x": .string(Base64URL.encode(bytes[..<half])), "y": .string(Base64URL.encode(bytes[half...])),
        ]
        if let kid { object["kid"] = .string(kid) }
        if let alg { object["alg"] = .string(alg) }
        return .object(object)
    }

    static func stripLeadingZeros(_ bytes: [UInt8]) -> [UInt8] {
        Array(bytes.drop(while: { $0 == 0 }))
    }

    var rsaJWK: JSONValue { Self.rsaJWK(rsa.publicKey, kid: rsaKid, alg: "RS256") }
    var ecJWK: JSONValue { Self.ecJWK(ec.publicKey.rawRepresentation, crv: "P-256", kid: ecKid, alg: "ES256") }
    var ec384JWK: JSONValue { Self.ecJWK(ec384.publicKey.rawRepresentation, crv: "P-384", kid: ec384Kid) }

    /// JWKS text with the given keys (default: RSA and P-256).
    func jwks(_ keys: [JSONValue]? = nil) -> String {
        JSONValue.object(["keys": .array(keys ?? [rsaJWK, ecJWK, ec384JWK])]).jsonText
    }

    /// Standard valid claims at `JOSEFixture.now`.
    static func claims(_ overrides: [String: JSONValue?] = [:], at now: Double = JOSEFixture.now) -> [String: JSONValue] {
        var claims: [String: JSONValue] = [
            "iss": .string(issuer), "aud": .string(audience), "sub": "repo:acme/app:ref:refs/heads/main",
            "iat": .number(JSONNumber(now - 60)), "nbf": .number(JSONNumber(now - 60)), "exp": .number(JSONNumber(now + 540)),
            "repository": "acme/app", "repository_id": "957014466", "ref": "refs/heads/main",
            "run_attempt": 1, "runner_environment": "github-hosted", "ref_protected": true,
        ]
        for (key, value) in overrides { claims[key] = value }
        return claims
    }

    enum Signer {
        case rsa(JWSAlgorithm)
        case es256
        case es384
        case raw([UInt8])
    }

    /// Signs raw header and payload JSON texts (so tests can craft duplicates and odd types).
    func sign(headerJSON: String, payloadJSON: String, with signer: Signer) -> String {
        let input = Base64URL.encode(Array(headerJSON.utf8)) + "." + Base64URL.encode(Array(payloadJSON.utf8))
        let data = Array(input.utf8)
        let signature: [UInt8]
        switch signer {
        case .rsa(let alg):
            switch alg {
            case .RS256: signature = Array(try! rsa.signature(for: SHA256.hash(data: data), padding: .insecurePKCS1v1_5).rawRepresentation)
            case .RS384: signature = Array(try! rsa.signature(for: SHA384.hash(data: data), padding: .insecurePKCS1v1_5).rawRepresentation)
            case .RS512: signature = Array(try! rsa.signature(for: SHA512.hash(data: data), padding: .insecurePKCS1v1_5).rawRepresentation)
            case .PS256: signature = Array(try! rsa.signature(for: SHA256.hash(data: data), padding: .PSS).rawRepresentation)
            case .PS384: signature = Array(try! rsa.signature(for: SHA384.hash(data: data), padding: .PSS).rawRepresentation)
            case .PS512: signature = Array(try! rsa.signature(for: SHA512.hash(data: data), padding: .PSS).rawRepresentation)
            default: fatalError("not an RSA algorithm")
            }
        case .es256: signature = Array(try! ec.signature(for: data).rawRepresentation)
        case .es384: signature = Array(try! ec384.signature(for: data).rawRepresentation)
        case .raw(let bytes): signature = bytes
        }
        return input + "." + Base64URL.encode(signature)
    }

    /// Mints a token with a header built from `alg`/`kid` (+ `extraHeader`) and the given claims.
    func token(alg: JWSAlgorithm = .RS256, kid: String?? = .none, claims: [String: JSONValue] = JOSEFixture.claims(),
               extraHeader: [String: JSONValue] = [:], signer: Signer? = nil) -> String {
        var header: [String: JSONValue] = ["alg": .string(alg.rawValue), "typ": "JWT"]
        let defaultKid: String?
        switch alg {
        case .ES256: defaultKid = ecKid
        case .ES384: defaultKid = ec384Kid
        default: defaultKid = rsaKid
        }
        let chosenKid: String? = kid ?? defaultKid
        if let chosenKid { header["kid"] = .string(chosenKid) }
        header.merge(extraHeader) { $1 }
        let chosenSigner: Signer
        if let signer {
            chosenSigner = signer
        } else {
            switch alg {
            case .ES256: chosenSigner = .es256
            case .ES384: chosenSigner = .es384
            default: chosenSigner = .rsa(alg)
            }
        }
        return sign(headerJSON: JSONValue.object(header).jsonText, payloadJSON: JSONValue.object(claims).jsonText, with: chosenSigner)
    }
}
