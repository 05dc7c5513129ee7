import Foundation
import StepGuardEgress
import StepGuardSecrets
import StepGuardTestSupport
import Testing

/// Trusted publishing (npm, PyPI): the job's workload token is exchanged for a publish token whose
/// prefix (`npm_`, `pypi-`) looks long-lived. A token stepguard saw minted by an allowed exchange
/// of the same service in this run is short-lived; any other such token stays long-lived.
@Suite(.serialized) struct MintedCredentialTests {
    // Made from templates, so that no credential-shaped literal is committed (`{cut}` splits the prefix).
    static let npmToken = ExampleTemplate.expand("np{cut}m_{alnum:36}", seed: 1)
    static let otherNpmToken = ExampleTemplate.expand("np{cut}m_{alnum:36}", seed: 2)
    static let pypiToken = ExampleTemplate.expand("pyp{cut}i-AgEIcHlwaS5vcmc{b64url:64}")

    @Test func theCatalogNamesTheExchangesThatMint() throws {
        let npm = try #require(ServiceCatalog.builtIn.definition(named: "npm-publish"))
        #expect(npm.mint(method: "POST", path: "/-/npm/v1/oidc/token/exchange/package/@acme%2fpkg")?.field == "token")
        #expect(npm.mint(method: "PUT", path: "/-/npm/v1/oidc/token/exchange/package/x") == nil)
        #expect(npm.mint(method: "PUT", path: "/@acme%2fpkg") == nil)
        let pypi = try #require(ServiceCatalog.builtIn.definition(named: "pypi-upload"))
        #expect(pypi.mint(method: "POST", path: "/_/oidc/mint-token")?.field == "token")
        #expect(pypi.hosts.contains { $0.matches("pypi.org") }, "trusted publishing mints at pypi.org")
        #expect(throws: EgressError.self) {
            try ServiceCatalog.parse(yaml: "name: x\nhosts: [x.example]\nmints:\n  - { paths: [\"/mint\"] }\n", file: "x.yaml")
        }
    }

    @Test func aMintedTokenIsShortLivedOnlyForItsServiceAndItsLifetime() {
        let minted = MintedCredentials(lifetime: 60)
        let now = Date()
        minted.remember(Self.npmToken, service: "npm-publish", now: now)
        var inspector = BuiltInCredentialInspector(verifier: nil, identity: nil, detector: Egress.detector)
        inspector.minted = minted
        func finding(_ service: String, at time: Date) -> CredentialFinding {
            inspector.inspect(InspectedRequest(method: "PUT", target: "/pkg", headers: [("Authorization", "Bearer \(Self.npmToken)")], service: service), now: time)
        }
        let fresh = finding("npm-publish", at: now.addingTimeInterval(30))
        #expect(fresh.credentialClass == .shortLived && fresh.kind == "token minted in this run")
        #expect(!fresh.redacted.contains(Self.npmToken))
        #expect(finding("container-registry-push", at: now).kind == "npm access token", "minted for another service")
        #expect(finding("npm-publish", at: now.addingTimeInterval(61)).credentialClass == .longLived, "past its lifetime")
        #expect(!minted.wasMinted(Self.otherNpmToken, by: "npm-publish", now: now))
    }

    /// A stand-in registry: answers token exchanges with `minted`, everything else with `{"ok": true}`.
    static func registry(names: [String], minted: String) throws -> InterceptionTests.Stand {
        try InterceptionTests.Stand(names: names) { request in
            if request.method == "POST", request.uri.contains("/oidc/") {
                return .json(#"{"success": true, "token": "\#(minted)", "expires": 900}"#)
            }
            return .json(#"{"ok": true}"#)
        }
    }

    @Test func npmTrustedPublishingThroughTheProxy() async throws {
        let registry = try Self.registry(names: ["registry.npmjs.org"], minted: Self.npmToken)
        let session = try await registry.session("""
          - service: npm-publish
            allow:
              - { methods: [POST], paths: ["/-/npm/v1/oidc/token/exchange/package/*"], credential: workload }
              - { methods: [PUT], paths: ["/@acme*"], credential: short-lived, window: 10m }
        """, resolve: ["registry.npmjs.org:443"])
        defer { session.stop() }
        let server = registry.server
        func put(_ token: String) throws -> String {
            try Egress.curl(session, ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "--data", "{}",
                                      "-H", "Authorization: Bearer \(token)", "https://registry.npmjs.org/@acme%2fpkg"]).stdout
        }
        #expect(try put(Self.npmToken) == "403", "before the exchange, an npm_ token is long-lived")
        #expect(try registry.serviceEvents().last?["credential_kind"] as? String == "npm access token")
        let exchange = try Egress.curl(session, ["-s", "--compressed", "-X", "POST", "-H", "Authorization: Bearer \(registry.workloadToken)",
                                                 "https://registry.npmjs.org/-/npm/v1/oidc/token/exchange/package/@acme%2fpkg"])
        #expect(exchange.stdout.contains(Self.npmToken), "\(exchange.stderr)")
        #expect(try put(Self.npmToken) == "200", "the token minted by the allowed exchange is short-lived")
        #expect(try put(Self.otherNpmToken) == "403", "any other npm_ token stays long-lived")

        let exchanges = server.requests.filter { $0.method == "POST" }
        #expect(exchanges.count == 1 && exchanges[0].header("Accept-Encoding") == "identity", "the minted token must not come compressed")
        #expect(server.requests.filter { $0.method == "PUT" }.count == 1)
        let events = try registry.serviceEvents()
        #expect(events.map { $0["decision"] as? String } == ["deny", "allow", "allow", "deny"])
        #expect(events[2]["credential_kind"] as? String == "token minted in this run")
        #expect(!(try String(contentsOfFile: registry.log, encoding: .utf8)).contains(Self.npmToken))
    }

    @Test func pypiMintsAtPyPIAndTheUploadCarriesTheTokenAsBasicAuth() async throws {
        let registry = try Self.registry(names: ["pypi.org", "upload.pypi.org"], minted: Self.pypiToken)
        let session = try await registry.session("""
          - service: pypi-upload
            allow:
              - { methods: [POST], paths: ["/_/oidc/mint-token"], credential: workload }
              - { methods: [POST], paths: ["/legacy/"], credential: short-lived }
        """, resolve: ["pypi.org:443", "upload.pypi.org:443"])
        defer { session.stop() }
        func upload() throws -> String {
            try Egress.curl(session, ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-u", "__token__:\(Self.pypiToken)",
                                      "-F", "name=pkg", "https://upload.pypi.org/legacy/"]).stdout
        }
        #expect(try upload() == "403")
        let jwt = registry.workloadToken
        let mint = try Egress.curl(session, ["-s", "-X", "POST", "-H", "Content-Type: application/json", "--data", #"{"token": "\#(jwt)"}"#,
                                             "https://pypi.org/_/oidc/mint-token"])
        #expect(mint.stdout.contains(Self.pypiToken), "\(mint.stderr)")
        #expect(try upload() == "200")
        let events = try registry.serviceEvents()
        #expect(events.map { $0["decision"] as? String } == ["deny", "allow", "allow"])
        #expect(events[2]["credential_kind"] as? String == "basic auth with token minted in this run")
    }
}
