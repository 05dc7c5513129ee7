import StepGuardServerTestSupport
import StepGuardCore
import Foundation
import StepGuardTestSupport
import Testing
@testable import StepGuardIdentity

/// JWKS over loopback HTTPS from a local issuer made by the test.
@Suite("JWKS fetch, cache and discovery", .serialized)
struct KeyStoreTests {
    let issuer = JOSEFixture.shared

    func verifier(_ server: LocalHTTPSServer, location: JWKSLocation, cache: String?, refetchInterval: TimeInterval = 60,
                  issuerName: String = JOSEFixture.issuer, clock: @escaping @Sendable () -> Date = { Date(timeIntervalSince1970: JOSEFixture.now) }) -> IdentityVerifier {
        let store = KeyStore(location: location, transport: server.transport,
                             options: KeyStoreOptions(cacheDirectory: cache, cacheTTL: 600, refetchInterval: refetchInterval), now: clock)
        return IdentityVerifier(rules: IdentityRules(issuer: issuerName, audience: JOSEFixture.audience), keyStore: store, now: clock)
    }

    /// Publishes an OpenID discovery document on `server` for the issuer `server`/issuer, naming
    /// `issuer` (that issuer URL when nil) and `server`/keys as its JWKS; returns the issuer URL.
    func publishDiscovery(on server: LocalHTTPSServer, naming issuer: String? = nil) -> String {
        let issuerURL = server.baseURL + "/issuer"
        server.write("issuer/.well-known/openid-configuration",
                     JSONValue.object(["issuer": .string(issuer ?? issuerURL), "jwks_uri": .string(server.baseURL + "/keys")]).jsonText)
        return issuerURL
    }

    @Test func fetchesJWKSOverHTTPSAndCachesItOnDisk() throws {
        let server = try LocalHTTPSServer(jwks: issuer.jwks())
        defer { server.stop() }
        let cache = try TemporaryDirectory(prefix: "stepguard-identity")
        defer { cache.remove() }
        let cacheDir = cache.path + "/jwks"
        let url = server.jwksURL

        let first = verifier(server, location: .url(url), cache: cacheDir)
        _ = try first.verify(token: issuer.token(alg: .RS256))
        _ = try first.verify(token: issuer.token(alg: .ES256))
        #expect(try server.count("/jwks.json") == 1)
        #expect(first.keyStore.fetchCount == 1)

        // The cache directory is private and holds one entry.
        var info = stat()
        #expect(stat(cacheDir, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o700)
        #expect(try FileManager.default.contentsOfDirectory(atPath: cacheDir).count == 1)

        // A second process (new store) uses the disk cache while fresh...
        let second = verifier(server, location: .url(url), cache: cacheDir)
        _ = try second.verify(token: issuer.token())
        #expect(try server.count("/jwks.json") == 1)
        #expect(second.keyStore.fetchCount == 0)

        // ...and fetches again once the TTL has passed.
        let later = verifier(server, location: .url(url), cache: cacheDir, clock: { Date(timeIntervalSince1970: JOSEFixture.now + 601) })
        let laterToken = issuer.token(claims: JOSEFixture.claims(["exp": .number(JSONNumber(JOSEFixture.now + 1200))]))
        _ = try later.verify(token: laterToken)
        #expect(try server.count("/jwks.json") == 2)
    }

    @Test func cacheDirectoryThatIsNotPrivateIsIgnored() throws {
        let server = try LocalHTTPSServer(jwks: issuer.jwks())
        defer { server.stop() }
        let cache = try TemporaryDirectory(prefix: "stepguard-identity")
        defer { cache.remove() }
        chmod(cache.path, 0o777)
        _ = try verifier(server, location: .url(server.jwksURL), cache: cache.path).verify(token: issuer.token())
        #expect(try FileManager.default.contentsOfDirectory(atPath: cache.path).isEmpty)
    }

    @Test func unknownKidRefetchesOnceThenIsRateLimited() throws {
        // The issuer starts with only its EC key; then rotates in the RSA key.
        let server = try LocalHTTPSServer(jwks: issuer.jwks([issuer.ecJWK]))
        defer { server.stop() }
        let clock = MutableClock(JOSEFixture.now)
        let v = verifier(server, location: .url(server.jwksURL), cache: nil, refetchInterval: 30, clock: clock.read)
        _ = try v.verify(token: issuer.token(alg: .ES256))
        #expect(try server.count("/jwks.json") == 1)

        server.write("jwks.json", issuer.jwks([issuer.ecJWK, issuer.rsaJWK]))
        clock.advance(31)
        _ = try v.verify(token: issuer.token(alg: .RS256))      // unknown kid → one refetch → found
        #expect(try server.count("/jwks.json") == 2)

        // A kid that exists nowhere: right after a fetch, no refetch (rate limit), rejected.
        let error = expectRejected(.keyID) { _ = try v.verify(token: issuer.token(alg: .RS256, kid: "nope")) }
        #expect(error?.detail.contains("fetched too recently") == true)
        #expect(try server.count("/jwks.json") == 2)

        // After the interval: exactly one refetch, still unknown, rejected.
        clock.advance(31)
        let again = expectRejected(.keyID) { _ = try v.verify(token: issuer.token(alg: .RS256, kid: "nope")) }
        #expect(again?.detail.contains("even after refetching") == true)
        #expect(try server.count("/jwks.json") == 3)
    }

    @Test func discoveryFindsTheJWKS() throws {
        let server = try LocalHTTPSServer()
        defer { server.stop() }
        let issuerURL = publishDiscovery(on: server)
        server.write("keys", issuer.jwks())
        let v = verifier(server, location: JWKSLocation.resolve(nil, issuer: issuerURL, policyDirectory: "/x"), cache: nil, issuerName: issuerURL)
        let identity = try v.verify(token: issuer.token(claims: JOSEFixture.claims(["iss": .string(issuerURL)])))
        #expect(identity.issuer == issuerURL)
        #expect(try server.count("/issuer/.well-known/openid-configuration") == 1)
        #expect(try server.count("/keys") == 1)
    }

    @Test func discoveryWithAnotherIssuerIsRejected() throws {
        let server = try LocalHTTPSServer()
        defer { server.stop() }
        let issuerURL = publishDiscovery(on: server, naming: "https://evil.example")
        let v = verifier(server, location: .discovery(issuer: issuerURL), cache: nil, issuerName: issuerURL)
        let error = expectRejected(.jwks) { _ = try v.verify(token: issuer.token(claims: JOSEFixture.claims(["iss": .string(issuerURL)]))) }
        #expect(error?.detail.contains("https://evil.example") == true)
    }

    @Test func unreachableJWKSFailsClosedWithURLAndCurlError() throws {
        let server = try LocalHTTPSServer()
        let url = server.jwksURL
        server.stop()
        let v = verifier(server, location: .url(url), cache: nil)
        let error = expectRejected(.jwks) { _ = try v.verify(token: issuer.token()) }
        #expect(error?.detail.contains(url) == true)
        #expect(error?.detail.contains("curl error 7") == true)
    }

    @Test func untrustedCertificateFailsClosed() throws {
        let server = try LocalHTTPSServer(jwks: issuer.jwks())
        defer { server.stop() }
        let store = KeyStore(location: .url(server.jwksURL), transport: CurlTransport(caFile: "/dev/null/none"),
                             options: KeyStoreOptions(cacheDirectory: nil))
        let error = expectRejected(.jwks) { _ = try store.keys() }
        #expect(error?.detail.contains("curl error") == true)
        let systemStore = KeyStore(location: .url(server.jwksURL), transport: CurlTransport(), options: KeyStoreOptions(cacheDirectory: nil))
        let systemError = expectRejected(.jwks) { _ = try systemStore.keys() }
        #expect(systemError?.detail.contains("curl error 60") == true)
    }

    @Test func httpStatusAndPlainHTTPAreRejected() throws {
        let server = try LocalHTTPSServer()
        defer { server.stop() }
        let missing = KeyStore(location: .url(server.baseURL + "/missing.json"), transport: server.transport, options: KeyStoreOptions(cacheDirectory: nil))
        let error = expectRejected(.jwks) { _ = try missing.keys() }
        #expect(error?.detail.contains("HTTP 404") == true)
        let plain = KeyStore(location: .url("http://127.0.0.1:\(server.port)/jwks.json"), transport: server.transport, options: KeyStoreOptions(cacheDirectory: nil))
        let plainError = expectRejected(.jwks) { _ = try plain.keys() }
        #expect(plainError?.detail.contains("only https://") == true)
    }

    @Test func timeoutFailsClosed() throws {
        let server = try LocalHTTPSServer()
        defer { server.stop() }
        let store = KeyStore(location: .url(server.baseURL + "/slow"), transport: CurlTransport(timeout: 0.5, caFile: server.caFile),
                             options: KeyStoreOptions(cacheDirectory: nil))
        let error = expectRejected(.jwks) { _ = try store.keys() }
        #expect(error?.detail.contains("curl error 28") == true)
    }

    @Test func jwksFileRelativeToThePolicy() throws {
        let dir = try TemporaryDirectory(prefix: "stepguard-identity")
        defer { dir.remove() }
        try dir.write("keys/jwks.json", issuer.jwks())
        let location = JWKSLocation.resolve("keys/jwks.json", issuer: JOSEFixture.issuer, policyDirectory: dir.path)
        #expect(location == .file(dir.path + "/keys/jwks.json"))
        let store = KeyStore(location: location, options: KeyStoreOptions(cacheDirectory: nil))
        let v = IdentityVerifier(rules: defaultRules(), keyStore: store, now: { Date(timeIntervalSince1970: JOSEFixture.now) })
        _ = try v.verify(token: issuer.token())
        let missing = KeyStore(location: .file(dir.path + "/nope.json"), options: KeyStoreOptions(cacheDirectory: nil))
        let error = expectRejected(.jwks) { _ = try missing.keys() }
        #expect(error?.detail.contains("nope.json") == true)
    }

    @Test func malformedJWKSIsRejected() throws {
        for text in [#"{"keys": [{"kty": "RSA"}], "keys": []}"#, #"{"nokeys": []}"#, #"{"keys": [1]}"#, "not json"] {
            #expect(throws: IdentityError.self) { try JWKSet(data: Array(text.utf8), origin: "test") }
        }
        let error = expectRejected(.jwks) { _ = try JWKSet(data: Array("not json".utf8), origin: "test") }
        #expect(error?.detail.hasPrefix("the JWKS from test is not valid JSON: ") == true, "\(error?.detail ?? "")")
    }

    @Test func discoveryDocumentThatIsNotJSONIsRejected() throws {
        let server = try LocalHTTPSServer()
        defer { server.stop() }
        let issuerURL = server.baseURL + "/issuer"
        server.write("issuer/.well-known/openid-configuration", "<html>")
        let v = verifier(server, location: .discovery(issuer: issuerURL), cache: nil, issuerName: issuerURL)
        let error = expectRejected(.jwks) { _ = try v.verify(token: issuer.token(claims: JOSEFixture.claims(["iss": .string(issuerURL)]))) }
        #expect(error?.detail.hasPrefix("the OIDC discovery document at \(issuerURL)/.well-known/openid-configuration is not valid JSON: ") == true,
                "\(error?.detail ?? "")")
        #expect(error?.remedy == "set identity.jwks explicitly, or check identity.issuer")
    }
}

/// A clock tests can move forward.
final class MutableClock: @unchecked Sendable {
    // @unchecked: guarded by `lock`.
    private let lock = NSLock()
    private var value: Double
    init(_ start: Double) { value = start }
    func advance(_ seconds: Double) { lock.lock(); value += seconds; lock.unlock() }
    var read: @Sendable () -> Date {
        { [self] in lock.lock(); defer { lock.unlock() }; return Date(timeIntervalSince1970: value) }
    }
}
