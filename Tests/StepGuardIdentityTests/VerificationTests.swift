import StepGuardCore
import Crypto
import _CryptoExtras
import Foundation
import Testing
@testable import StepGuardIdentity

@Suite("Strict JWS verification")
struct VerificationTests {
    let issuer = JOSEFixture.shared

    // MARK: accepted tokens

    @Test func acceptsRS256() throws {
        let identity = try makeVerifier().verify(token: issuer.token(alg: .RS256))
        #expect(identity.issuer == JOSEFixture.issuer)
        #expect(identity.subject == "repo:acme/app:ref:refs/heads/main")
        #expect(identity.audiences == ["stepguard"])
        #expect(identity.algorithm == .RS256)
        #expect(identity.keyID == "rsa-1")
        #expect(identity.claims["repository"] == "acme/app")
        #expect(identity.expiresAt == Date(timeIntervalSince1970: JOSEFixture.now + 540))
        #expect(identity.issuedAt == Date(timeIntervalSince1970: JOSEFixture.now - 60))
    }

    @Test func acceptsES256() throws {
        let identity = try makeVerifier().verify(token: issuer.token(alg: .ES256))
        #expect(identity.algorithm == .ES256)
        #expect(identity.keyID == "ec-1")
    }

    @Test(arguments: [JWSAlgorithm.RS384, .RS512, .PS256, .PS384, .PS512, .ES384])
    func acceptsOtherAlgorithmsWhenAllowed(alg: JWSAlgorithm) throws {
        let jwks = issuer.jwks([JOSEFixture.rsaJWK(issuer.rsa.publicKey, kid: "rsa-1"), issuer.ec384JWK])
        let verifier = makeVerifier(jwks: jwks, rules: defaultRules(algorithms: [alg]))
        #expect(try verifier.verify(token: issuer.token(alg: alg)).algorithm == alg)
    }

    // MARK: key selection

    @Test func unknownKidIsRejectedWithoutFallback() {
        // Signed by the real RSA key, but naming a kid the JWKS does not have: no other key is tried.
        let token = issuer.token(alg: .RS256, kid: "rotated-away")
        let error = expectRejected(.keyID) { _ = try makeVerifier().verify(token: token) }
        #expect(error?.detail.contains("\"rotated-away\"") == true)
    }

    @Test func missingKidUsesTheOnlyKey() throws {
        let verifier = makeVerifier(jwks: issuer.jwks([issuer.rsaJWK]))
        #expect(try verifier.verify(token: issuer.token(alg: .RS256, kid: .some(nil))).keyID == nil)
    }

    @Test func missingKidWithSeveralKeysIsRejected() {
        expectRejected(.keyID) { _ = try makeVerifier().verify(token: issuer.token(alg: .RS256, kid: .some(nil))) }
    }

    @Test func duplicateKidInJWKSIsRejected() {
        let jwks = issuer.jwks([issuer.rsaJWK, JOSEFixture.rsaJWK(issuer.rsa.publicKey, kid: "rsa-1")])
        expectRejected(.keyID) { _ = try makeVerifier(jwks: jwks).verify(token: issuer.token()) }
    }

    // MARK: algorithms

    @Test func algorithmOutsideAllowListIsRejected() {
        let jwks = issuer.jwks([JOSEFixture.rsaJWK(issuer.rsa.publicKey, kid: "rsa-1")])
        let error = expectRejected(.algorithm) { _ = try makeVerifier(jwks: jwks).verify(token: issuer.token(alg: .RS384)) }
        #expect(error?.detail.contains("RS384") == true)
    }

    @Test func algorithmMustAgreeWithKeyType() {
        // ES256 header naming the RSA key.
        let token = issuer.token(alg: .ES256, kid: "rsa-1")
        let error = expectRejected(.algorithm) { _ = try makeVerifier().verify(token: token) }
        #expect(error?.detail.contains("needs a EC key") == true)
    }

    @Test func algorithmMustAgreeWithJWKAlg() {
        let jwks = issuer.jwks([JOSEFixture.rsaJWK(issuer.rsa.publicKey, kid: "rsa-1", alg: "PS256")])
        let verifier = makeVerifier(jwks: jwks, rules: defaultRules(algorithms: [.RS256, .PS256]))
        let error = expectRejected(.algorithm) { _ = try verifier.verify(token: issuer.token(alg: .RS256)) }
        #expect(error?.detail.contains("PS256") == true)
    }

    @Test func algorithmMustAgreeWithCurve() {
        let jwks = issuer.jwks([issuer.ec384JWK])
        let verifier = makeVerifier(jwks: jwks, rules: defaultRules(algorithms: [.ES256, .ES384]))
        let token = issuer.token(alg: .ES256, kid: "ec384-1", signer: .es384)
        expectRejected(.algorithm) { _ = try verifier.verify(token: token) }
    }

    @Test func noneIsAlwaysRejected() {
        let token = issuer.sign(headerJSON: #"{"alg":"none","kid":"rsa-1"}"#, payloadJSON: JOSEFixture.claims().jsonTextObject, with: .raw([0]))
        let error = expectRejected(.algorithm) { _ = try makeVerifier().verify(token: token) }
        #expect(error?.detail.contains("unsigned") == true)
        #expect(throws: IdentityError.self) { try JWSAlgorithm.parse("none") }
        #expect(throws: IdentityError.self) { try JWSAlgorithm.parse("NONE") }
    }

    @Test func hmacIsAlwaysRejectedEvenWithTheRSAPublicKeyAsSecret() {
        // The classic algorithm-confusion forgery: HS256 keyed with the issuer's public key.
        let publicDER = issuer.rsa.publicKey.derRepresentation
        let header = #"{"alg":"HS256","kid":"rsa-1"}"#
        let input = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(JOSEFixture.claims().jsonTextObject.utf8))
        let mac = HMAC<SHA256>.authenticationCode(for: Array(input.utf8), using: SymmetricKey(data: publicDER))
        let token = input + "." + Base64URL.encode(Array(mac))
        let jwks = issuer.jwks([issuer.rsaJWK, .object(["kty": "oct", "kid": "hmac", "k": "c2VjcmV0"])])
        let error = expectRejected(.algorithm) { _ = try makeVerifier(jwks: jwks).verify(token: token) }
        #expect(error?.detail.contains("HMAC") == true)
        #expect(throws: IdentityError.self) { try JWSAlgorithm.parse("HS512") }
    }

    @Test func rsaKeysShorterThan2048BitsAreRejected() throws {
        let weak = try _RSA.Signing.PrivateKey(unsafeKeySize: .init(bitCount: 1024))
        let jwks = issuer.jwks([JOSEFixture.rsaJWK(weak.publicKey, kid: "weak")])
        let header = #"{"alg":"RS256","kid":"weak"}"#
        let input = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(JOSEFixture.claims().jsonTextObject.utf8))
        let signature = try weak.signature(for: SHA256.hash(data: Array(input.utf8)), padding: .insecurePKCS1v1_5)
        let token = input + "." + Base64URL.encode(Array(signature.rawRepresentation))
        let error = expectRejected(.key) { _ = try makeVerifier(jwks: jwks).verify(token: token) }
        #expect(error?.detail.contains("1024 bits") == true)
    }

    // MARK: ECDSA signatures

    @Test func ecdsaZeroSignatureIsRejected() {
        let token = issuer.token(alg: .ES256, signer: .raw([UInt8](repeating: 0, count: 64)))
        let error = expectRejected(.signature) { _ = try makeVerifier().verify(token: token) }
        #expect(error?.detail.contains("r = 0") == true)
    }

    @Test func ecdsaScalarsAtOrAboveTheOrderAreRejected() {
        let good = Array(try! issuer.ec.signature(for: Data("x".utf8)).rawRepresentation)
        let token = issuer.token(alg: .ES256, signer: .raw(Array(good[0..<32]) + CompactJWS.p256Order))
        let error = expectRejected(.signature) { _ = try makeVerifier().verify(token: token) }
        #expect(error?.detail.contains("s ≥ the curve order") == true)
    }

    @Test func ecdsaDERSignatureIsRejected() throws {
        let der = try issuer.ec.signature(for: Data("x".utf8)).derRepresentation
        let token = issuer.token(alg: .ES256, signer: .raw(Array(der)))
        let error = expectRejected(.signature) { _ = try makeVerifier().verify(token: token) }
        #expect(error?.detail.contains("must be 64") == true)
    }

    @Test func tamperedPayloadFailsTheSignature() {
        let token = issuer.token(alg: .RS256)
        let parts = token.split(separator: ".").map(String.init)
        let forged = Base64URL.encode(Array(JOSEFixture.claims(["ref": "refs/heads/evil"]).jsonTextObject.utf8))
        let error = expectRejected(.signature) { _ = try makeVerifier().verify(token: parts[0] + "." + forged + "." + parts[2]) }
        #expect(error?.description.contains(parts[2]) == false)
    }

    @Test func wrongKeySignatureFails() {
        let other = P256.Signing.PrivateKey()
        let token = issuer.token(alg: .ES256)
        let parts = token.split(separator: ".")
        let input = parts[0] + "." + parts[1]
        let forged = input + "." + Base64URL.encode(Array(try! other.signature(for: Array(input.utf8)).rawRepresentation))
        expectRejected(.signature) { _ = try makeVerifier().verify(token: forged) }
    }

    // MARK: keys from the token are never used

    @Test(arguments: ["jwk", "jku", "x5u", "x5c"])
    func headerKeySourcesAreIgnored(member: String) throws {
        let attacker = P256.Signing.PrivateKey()
        let attackerJWK = JOSEFixture.ecJWK(attacker.publicKey.rawRepresentation, crv: "P-256", kid: "ec-1")
        let value: JSONValue
        switch member {
        case "jwk": value = attackerJWK
        case "x5c": value = ["MIIBszCCAVmgAwIBAgIU"]
        default: value = "https://attacker.example/jwks.json"
        }
        // Signed by the attacker, advertising the attacker's key in the header: rejected.
        let header = JSONValue.object(["alg": "ES256", "kid": "ec-1", .init(stringLiteral: member): value]).jsonText
        let input = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(JOSEFixture.claims().jsonTextObject.utf8))
        let forged = input + "." + Base64URL.encode(Array(try attacker.signature(for: Array(input.utf8)).rawRepresentation))
        expectRejected(.signature) { _ = try makeVerifier().verify(token: forged) }
        // Signed by the issuer with the same header member: accepted, the member is never fetched.
        let genuine = issuer.token(alg: .ES256, extraHeader: [member: value])
        #expect(try makeVerifier().verify(token: genuine).keyID == "ec-1")
    }

    @Test func critHeaderIsRejected() {
        let token = issuer.token(alg: .RS256, extraHeader: ["crit": ["exp"], "exp": 1])
        expectRejected(.critical) { _ = try makeVerifier().verify(token: token) }
    }

    // MARK: format

    @Test func paddedBase64IsRejected() {
        let token = issuer.token(alg: .RS256)
        let parts = token.split(separator: ".").map(String.init)
        let padded = Data(base64Encoded: Data(Array(parts[0].utf8)).base64EncodedString()) != nil ? parts[0] + "==" : parts[0] + "="
        expectRejected(.tokenFormat) { _ = try makeVerifier().verify(token: padded + "." + parts[1] + "." + parts[2]) }
    }

    @Test func standardBase64AlphabetIsRejected() {
        let token = issuer.token(alg: .RS256)
        var parts = token.split(separator: ".").map(String.init)
        parts[2] = parts[2].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/") + "+"
        expectRejected(.tokenFormat) { _ = try makeVerifier().verify(token: parts.joined(separator: ".")) }
    }

    @Test(arguments: ["", "a.b", "a.b.c.d", "a.b.c.d.e", "..", "   "])
    func malformedCompactSerializationIsRejected(token: String) {
        expectRejected(.tokenFormat) { _ = try makeVerifier().verify(token: token) }
    }

    @Test func oversizedTokenIsRejected() {
        let token = issuer.token(alg: .RS256, claims: JOSEFixture.claims(["padding": .string(String(repeating: "x", count: 20_000))]))
        let error = expectRejected(.tokenSize) { _ = try makeVerifier().verify(token: token) }
        #expect(error?.detail.contains("16384") == true)
    }

    @Test func duplicateKeysInHeaderAreRejected() {
        let token = issuer.sign(headerJSON: #"{"alg":"RS256","kid":"rsa-1","kid":"ec-1"}"#,
                                payloadJSON: JOSEFixture.claims().jsonTextObject, with: .rsa(.RS256))
        let error = expectRejected(.tokenFormat) { _ = try makeVerifier().verify(token: token) }
        #expect(error?.detail.contains("duplicate key \"kid\"") == true)
    }

    @Test func duplicateKeysInPayloadAreRejected() {
        var payload = JOSEFixture.claims().jsonTextObject
        payload.removeLast()
        payload += #","sub":"repo:acme/other:ref:refs/heads/main"}"#
        let token = issuer.sign(headerJSON: #"{"alg":"RS256","kid":"rsa-1"}"#, payloadJSON: payload, with: .rsa(.RS256))
        let error = expectRejected(.tokenFormat) { _ = try makeVerifier().verify(token: token) }
        #expect(error?.detail.contains("duplicate key \"sub\"") == true)
    }

    @Test func payloadMustBeAnObject() {
        let token = issuer.sign(headerJSON: #"{"alg":"RS256","kid":"rsa-1"}"#, payloadJSON: "[1]", with: .rsa(.RS256))
        expectRejected(.tokenFormat) { _ = try makeVerifier().verify(token: token) }
    }

    // MARK: registered claims

    @Test(arguments: [("exp", IdentityError.Check.expiry), ("nbf", .notBefore), ("iat", .issuedAt)])
    func timeClaimsMustBeNumbers(name: String, check: IdentityError.Check) {
        let claims = JOSEFixture.claims([name: .string(String(Int(JOSEFixture.now)))])
        let error = expectRejected(check) { _ = try makeVerifier().verify(token: issuer.token(claims: claims)) }
        #expect(error?.detail.contains("must be a number") == true)
        let boolean = JOSEFixture.claims([name: true])
        expectRejected(check) { _ = try makeVerifier().verify(token: issuer.token(claims: boolean)) }
    }

    @Test func expIsRequired() {
        expectRejected(.expiry) { _ = try makeVerifier().verify(token: issuer.token(claims: JOSEFixture.claims(["exp": nil]))) }
    }

    @Test func audienceMayBeAnArrayContainingThePolicyAudience() throws {
        let token = issuer.token(claims: JOSEFixture.claims(["aud": ["sigstore", "stepguard"]]))
        #expect(try makeVerifier().verify(token: token).audiences == ["sigstore", "stepguard"])
    }

    @Test func emptyAudienceArrayIsRejected() {
        let error = expectRejected(.audience) { _ = try makeVerifier().verify(token: issuer.token(claims: JOSEFixture.claims(["aud": []]))) }
        #expect(error?.detail.contains("empty array") == true)
    }

    @Test(arguments: [JSONValue.array([1]), .array(["stepguard", 2]), .number(JSONNumber(1)), .object(["a": "stepguard"]), .null])
    func malformedAudienceIsRejected(aud: JSONValue) {
        expectRejected(.audience) { _ = try makeVerifier().verify(token: issuer.token(claims: JOSEFixture.claims(["aud": aud]))) }
    }

    @Test func otherAudienceIsRejected() {
        let error = expectRejected(.audience) { _ = try makeVerifier().verify(token: issuer.token(claims: JOSEFixture.claims(["aud": "sigstore"]))) }
        #expect(error?.detail.contains("\"sigstore\"") == true)
        #expect(error?.detail.contains("\"stepguard\"") == true)
    }

    @Test func explicitAudienceCheckForTokensInFlight() throws {
        let token = issuer.token(claims: JOSEFixture.claims(["aud": "sigstore"]))
        #expect(try makeVerifier().verify(token: token, audience: .required("sigstore")).audiences == ["sigstore"])
        expectRejected(.audience) { _ = try makeVerifier().verify(token: token, audience: .required("vault")) }
    }

    @Test func issuerIsComparedExactly() {
        let error = expectRejected(.issuer) {
            _ = try makeVerifier().verify(token: issuer.token(claims: JOSEFixture.claims(["iss": .string(JOSEFixture.issuer + "/")])))
        }
        #expect(error?.detail.contains("https://token.test.local/\"") == true)
        expectRejected(.issuer) { _ = try makeVerifier().verify(token: issuer.token(claims: JOSEFixture.claims(["iss": nil]))) }
        expectRejected(.issuer) { _ = try makeVerifier().verify(token: issuer.token(claims: JOSEFixture.claims(["iss": ["https://token.test.local"]]))) }
    }

    @Test func subjectMustBeAString() {
        expectRejected(.subject) { _ = try makeVerifier().verify(token: issuer.token(claims: JOSEFixture.claims(["sub": nil]))) }
        expectRejected(.subject) { _ = try makeVerifier().verify(token: issuer.token(claims: JOSEFixture.claims(["sub": 5]))) }
    }

    // MARK: errors

    @Test func errorsNeverContainTheTokenOrSignature() {
        let token = issuer.token(alg: .RS256, claims: JOSEFixture.claims(["aud": "other"]))
        let parts = token.split(separator: ".").map(String.init)
        let error = expectRejected(.audience) { _ = try makeVerifier().verify(token: token) }
        let text = error.map(String.init(describing:)) ?? ""
        #expect(!text.contains(parts[2]))
        #expect(!text.contains(parts[1]))
        #expect(text.contains("claim.aud"))
        #expect(text.contains("—"))  // has a remedy
    }
}

extension Dictionary where Key == String, Value == JSONValue {
    var jsonTextObject: String { JSONValue.object(self).jsonText }
}
