import StepGuardCore
import Foundation
@testable import StepGuardEgress
import StepGuardPolicy
import StepGuardTestSupport
import Testing

@Suite struct HostNameTests {
    @Test(arguments: ["2130706435", "0x7f000003", "0177.0.0.3", "[::ffff:127.0.0.3]", "127.0.0.3", "127.0.3", "0x7f.0.0.3", "::ffff:7f00:3"])
    func everyAddressSpellingIsTheAddress(spelling: String) {
        #expect(HostName.normalise(spelling) == .address(IPAddress("127.0.0.3")!))
    }

    @Test func namesAreLowerCasedWithoutTrailingDot() {
        #expect(HostName.normalise("GitHub.COM.") == .name("github.com"))
    }

    @Test func unicodeNamesBecomeALabels() {
        #expect(HostName.normalise("Bücher.example") == .name("xn--bcher-kva.example"))
        #expect(HostName.normalise("münchen.de") == .name("xn--mnchen-3ya.de"))
        #expect(HostName.normalise("例え.テスト") == .name("xn--r8jz45g.xn--zckzah"))
    }

    @Test(arguments: ["", "a..b", "exa mple.com", "evil.com/x", "1.2.3.4.5", "[zz::1]"])
    func malformedHostsAreRefused(host: String) {
        #expect(HostName.normalise(host) == nil)
    }

    /// The shortcut for names already in normal form takes only names the full path returns unchanged.
    @Test func theShortcutAgreesWithTheFullNormalisation() {
        let hosts = ["github.com", "a.b-c_d.example", "x1.y2", "localhost", "1.2.3.4", "1.2.3.x", "0x7f.0.0.1", "a.0x7f", "a.0xg",
                     "127.1", "abc.123", "123.abc", "a..b", ".a", "a.", "GitHub.com", "münchen.de", "a b", "a/b", "[::1]", "-",
                     String(repeating: "a", count: 63) + ".com", String(repeating: "a", count: 64) + ".com", "0", "00.1", "a.0"]
        for host in hosts where HostName.isAlreadyNormal(host) {
            #expect(HostName.fullyNormalised(host) == .name(host), "\(host)")
        }
        for host in hosts { #expect(HostName.normalise(host) == HostName.fullyNormalised(host), "\(host)") }
        #expect(HostName.isAlreadyNormal("github.com") && !HostName.isAlreadyNormal("GitHub.com") && !HostName.isAlreadyNormal("1.2.3.4"))
    }
}

/// A name the policy denies whatever it resolves to is denied before any lookup: the DNS query
/// would already carry data out. Checked in the decision engine (a lookup would leave loopback).
@Suite struct DecisionBeforeResolvingTests {
    func egress(_ yaml: String) throws -> EgressPolicy { try Egress.policy("version: 1\negress: \(yaml)\n").egress }

    @Test func namesDeniedWhateverTheyResolveToAreNotLookedUp() throws {
        let denyGlob = try egress("{ default: allow, deny: [\"*.exfil.example\"] }")
        #expect(denyGlob.decideBeforeResolving(host: "c2ZjcmV0.exfil.example", port: 443)?.rule == "egress.deny: *.exfil.example")
        #expect(denyGlob.decideBeforeResolving(host: "github.com", port: 443) == nil)
        let allowList = try egress("{ default: deny, allow: [github.com, \"*.npmjs.org:443\"] }")
        #expect(allowList.decideBeforeResolving(host: "c2ZjcmV0.attacker.example", port: 443)?.rule == "egress.default: deny")
        #expect(allowList.decideBeforeResolving(host: "registry.npmjs.org", port: 80)?.rule == "egress.default: deny")
        #expect(allowList.decideBeforeResolving(host: "registry.npmjs.org", port: 443) == nil, "allowed by name: its addresses are checked next")
        #expect(try egress("{ default: allow }").decideBeforeResolving(host: "metadata.google.internal", port: 80)?.rule == "built-in: protected metadata.google.internal")
        #expect(try egress("{ default: allow }").decideBeforeResolving(host: "db.localhost", port: 5432)?.rule == "built-in: protected *.localhost")
    }

    /// Address rules alone never get a name looked up (hole 6 of issue #16): the query would carry
    /// the name out whatever the verdict.
    @Test func namesAllowedByNoNameRuleAreNotLookedUpForAddressRules() throws {
        for rules in ["[10.0.0.0/8]", "[\"127.0.0.1:18777\"]", "[github.com, 10.0.0.0/8]"] {
            let verdict = try egress("{ default: deny, allow: \(rules) }").decideBeforeResolving(host: "ghp-secret-0123.exfil.attacker.test", port: 18777)
            #expect(verdict?.allowed == false, "\(rules)")
            #expect(verdict?.rule == "egress.default: deny")
            #expect(verdict?.reason.contains("egress.resolve_names_for_address_rules: true") == true)
        }
        #expect(try egress("{ default: deny, allow: [github.com, 10.0.0.0/8] }").decideBeforeResolving(host: "github.com", port: 443) == nil)
        #expect(try egress("{ default: allow, deny: [10.0.0.0/8] }").decideBeforeResolving(host: "build-cache.internal", port: 443) == nil,
                "allowed whatever it resolves to unless its address is denied: it is connected to anyway")
    }

    @Test func theOptInLooksUpNamesWhoseAddressesMayDecide() throws {
        let optIn = "resolve_names_for_address_rules: true"
        #expect(try egress("{ default: deny, allow: [10.0.0.0/8], \(optIn) }").decideBeforeResolving(host: "build-cache.internal", port: 443) == nil)
        #expect(try egress("{ default: deny, allow: [\"10.1.2.3:8080\"], \(optIn) }").decideBeforeResolving(host: "build-cache.internal", port: 443)?.allowed == false)
        #expect(try egress("{ default: deny, allow: [\"10.1.2.3:8080\"], \(optIn) }").decideBeforeResolving(host: "build-cache.internal", port: 8080) == nil)
        #expect(try egress("{ default: deny, allow: [github.com], \(optIn) }").decideBeforeResolving(host: "exfil.attacker.test", port: 443)?.allowed == false,
                "no address rule: nothing to test the addresses against")
        #expect(try egress("{ default: deny, allow: [10.0.0.0/8], deny: [\"*.attacker.test\"], \(optIn) }")
            .decideBeforeResolving(host: "exfil.attacker.test", port: 443)?.rule == "egress.deny: *.attacker.test")
    }
}

/// The metadata-endpoint rule is checked in the decision engine, never on the wire.
@Suite struct MetadataDecisionTests {
    @Test(arguments: [("169.254.169.254", "169.254.169.254"), ("2852039166", "169.254.169.254"), ("0xa9fea9fe", "169.254.169.254"),
                      ("0251.0376.0251.0376", "169.254.169.254"), ("[::ffff:169.254.169.254]", "169.254.169.254"), ("fd00:ec2::254", "fd00:ec2::254"),
                      ("metadata.google.internal", "metadata.google.internal"), ("METADATA.google.internal.", "metadata.google.internal"),
                      ("169.254.170.2", "169.254.170.2"), ("[::ffff:a9fe:aa02]", "169.254.170.2"), ("168.63.129.16", "168.63.129.16"),
                      ("100.100.100.200", "100.100.100.200"), ("127.0.0.2", "127.0.0.0/8"), ("127.1", "127.0.0.0/8"), ("0", "0.0.0.0/8"),
                      ("[::]", "::"), ("[::1]", "::1"), ("[::127.0.0.1]", "127.0.0.0/8"), ("[64:ff9b::a9fe:a9fe]", "169.254.169.254"),
                      ("[fe80::1]", "fe80::/10"), ("LocalHost.", "localhost")])
    func protectedDestinationsAreDeniedInEverySpelling(spelling: String, destination: String) throws {
        var egress = EgressPolicy()
        egress.defaultAction = .allow
        let host = try #require(HostName.normalise(spelling))
        let addresses: [IPAddress] = if case .address(let address) = host { [address] } else { [] }
        let verdict = egress.decide(host: host.text, port: 80, addresses: addresses)
        #expect(!verdict.allowed)
        #expect(verdict.rule == "built-in: protected \(destination)")
    }

    @Test func aNameResolvingToMetadataIsDenied() {
        var egress = EgressPolicy()
        egress.defaultAction = .allow
        #expect(!egress.decide(host: "innocent.example", port: 80, addresses: [IPAddress("169.254.169.254")!]).allowed)
    }
}

@Suite struct CredentialClassificationTests {
    let inspector = BuiltInCredentialInspector(verifier: nil, identity: nil, detector: Egress.detector)

    func classify(_ headers: [(String, String)], target: String = "/", body: String? = nil, locations: [CredentialLocation] = []) -> CredentialFinding {
        inspector.inspect(InspectedRequest(method: "POST", target: target, headers: headers.map { (name: $0.0, value: $0.1) },
                                           body: body.map { Array($0.utf8) }, locations: locations), now: Date())
    }

    @Test(arguments: ["ghp_0123456789abcdefghijklmnopqrstuvwxyz", "github_pat_11ABCDEFG0123456789_abc", "npm_abcdefghijklmnopqrstuvwxyz0123456789",
                      "pypi-AgEIcHlwaS5vcmcCJGFiY2RlZg", "dckr_pat_abcdefghijklmnop", "some-opaque-static-token"])
    func longLivedTokensAreLongLived(token: String) {
        let finding = classify([("Authorization", "Bearer \(token)")])
        #expect(finding.credentialClass == .longLived)
        #expect(!finding.redacted.contains(token))
        #expect(!finding.detail.contains(token))
    }

    @Test func shortLivedTokensKnownToTheSecretRulesAreShortLived() {
        let installation = "gh" + "s_" + String(repeating: "Ab3d", count: 9)
        let finding = classify([("Authorization", "Bearer \(installation)")])
        #expect(finding.credentialClass == .shortLived)
        #expect(finding.detail.contains("github-installation-token"))
    }

    @Test func awsSigV4KeysAreClassifiedByKind() {
        let akia = classify([("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=abc")])
        #expect(akia.credentialClass == .longLived && akia.kind == "AWS SigV4 (AKIA)")
        let asia = classify([("Authorization", "AWS4-HMAC-SHA256 Credential=ASIAIOSFODNN7EXAMPLE/20260101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=abc"),
                             ("X-Amz-Security-Token", "FwoGZXIvYXdzE")])
        #expect(asia.credentialClass == .shortLived)
        let asiaWithoutSession = classify([("Authorization", "AWS4-HMAC-SHA256 Credential=ASIAIOSFODNN7EXAMPLE/x, Signature=abc")])
        #expect(asiaWithoutSession.credentialClass == .invalid)
        let presigned = classify([], target: "/?X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20260101%2Fus-east-1", locations: [CredentialLocation(place: .query, name: "X-Amz-Credential")])
        #expect(presigned.credentialClass == .longLived)
    }

    @Test func basicAuthIsStatic() {
        let finding = classify([("Authorization", "Basic " + Data("ci:hunter2".utf8).base64EncodedString())])
        #expect(finding.credentialClass == .longLived && finding.kind == "basic auth")
    }

    @Test func jwtsAreJudgedByLifetimeAndIdentity() throws {
        let issuer = TestOIDCIssuer()
        let job = issuer.identity(subject: "repo:acme/app:ref:refs/heads/main")
        let withVerifier = BuiltInCredentialInspector(verifier: issuer.verifier(for: job), identity: job, detector: Egress.detector)
        func classOf(_ token: String, _ inspector: BuiltInCredentialInspector) -> CredentialClass {
            inspector.inspect(InspectedRequest(method: "GET", target: "/", headers: [(name: "Authorization", value: "Bearer \(token)")]), now: Date()).credentialClass
        }
        #expect(classOf(issuer.token(subject: job.subject), withVerifier) == .workload)
        #expect(classOf(issuer.token(subject: job.subject), inspector) == .longLived)  // nothing verifies it
        #expect(classOf(issuer.token(subject: "repo:evil/fork:ref:refs/heads/main"), withVerifier) == .shortLived)
        #expect(classOf(issuer.token(subject: job.subject, lifetime: 30 * 24 * 3600), withVerifier) == .longLived)
        #expect(classOf(issuer.token(subject: job.subject, issuedAt: Date().addingTimeInterval(-7200)), withVerifier) == .invalid)
        #expect(classOf(issuer.token(subject: job.subject, key: .init()), withVerifier) == .invalid)
        var expiredJob = job
        expiredJob.expiresAt = Date().addingTimeInterval(-1)
        let afterExpiry = BuiltInCredentialInspector(verifier: issuer.verifier(for: expiredJob), identity: expiredJob, detector: Egress.detector)
        #expect(classOf(issuer.token(subject: job.subject), afterExpiry) == .shortLived)
    }

    /// JWTs are read by one strict reader (StepGuardCore's CompactJWT). A token shaped like a JWT that
    /// it refuses — padded, standard base64, duplicate claims — may still be read by a lenient
    /// server, so it is never trusted (`invalid`); dotted text that is no JWT is no credential.
    @Test func jwtShapedTokensTheStrictReaderRefusesAreInvalid() throws {
        let issuer = TestOIDCIssuer()
        let token = issuer.token(subject: "repo:acme/app:ref:refs/heads/main")
        let parts = token.split(separator: ".").map(String.init)
        let padded = parts[0] + String(repeating: "=", count: (4 - parts[0].count % 4) % 4 == 0 ? 2 : (4 - parts[0].count % 4) % 4) + "." + parts[1] + "." + parts[2]
        let jsonBody = [CredentialLocation(place: .json, name: "jwt")]  // the body is read as JSON
        let duplicate = "eyJhbGciOiJSUzI1NiJ9." + Base64URL.encode(Array(#"{"exp":1,"exp":9999999999}"#.utf8)) + "." + parts[2]
        for (name, value) in [("padded header", padded), ("duplicate claim", duplicate)] {
            let header = classify([("Authorization", "Bearer \(value)")])
            #expect(header.credentialClass == .invalid && header.detail.contains("not strictly encoded"), "\(name): \(header.detail)")
            let inBody = classify([], body: #"{"note":"\#(value)"}"#, locations: jsonBody)
            #expect(inBody.credentialClass == .invalid, "\(name) in an unnamed body field: \(inBody.detail)")
        }
        for text in ["registry.npmjs.org", "example.com.au", "v1.2.3", "eyJ.a.b"] {
            #expect(classify([], body: #"{"note":"\#(text)"}"#, locations: jsonBody).credentialClass == .none, "\(text)")
        }
    }

    @Test func credentialsInBodiesAreFound() {
        let token = "ghp_0123456789abcdefghijklmnopqrstuvwxyz"
        let json = classify([], body: #"{"role":"ci","jwt":"\#(token)"}"#, locations: [CredentialLocation(place: .json, name: "jwt")])
        #expect(json.credentialClass == .longLived && json.location == "json jwt")
        let form = classify([], body: "Action=AssumeRoleWithWebIdentity&WebIdentityToken=\(token)", locations: [CredentialLocation(place: .form, name: "WebIdentityToken")])
        #expect(form.credentialClass == .longLived)
        #expect(classify([]).credentialClass == CredentialClass.none)
    }

    @Test func longLivedNeverSatisfiesWorkloadOrShortLived() {
        #expect(!CredentialClass.longLived.satisfies(.workload))
        #expect(!CredentialClass.longLived.satisfies(.shortLived))
        #expect(CredentialClass.longLived.satisfies(.any))
        #expect(CredentialClass.workload.satisfies(.shortLived))
        #expect(!CredentialClass.none.satisfies(.any))
        #expect(CredentialClass.none.satisfies(.none))
    }
}

@Suite struct ServiceCatalogTests {
    static let required = ["sigstore-fulcio", "sigstore-rekor", "sigstore-tsa", "aws-sts", "aws-kms", "aws-secretsmanager", "aws-ssm",
                           "gcp-sts", "gcp-iamcredentials", "gcp-kms", "gcp-secretmanager", "azure-keyvault", "hashicorp-vault",
                           "npm-publish", "pypi-upload", "github-actions-secrets", "github-oidc-token", "container-registry-push"]

    @Test func builtInCatalogMatchesTheFilesAndHasEveryService() throws {
        let directory = StepGuardBinary.packageRoot.appendingPathComponent("rules/services").path
        let files = try ServiceCatalog.load(directory: directory)
        #expect(files.names == ServiceCatalog.builtIn.names)
        for (name, definition) in files.services {
            #expect(ServiceCatalog.builtIn.definition(named: name) == definition.withoutExamples, "\(name): regenerate with bench/egress/gen-catalog.sh")
        }
        for name in Self.required { #expect(files.definition(named: name) != nil, "missing \(name)") }
    }

    @Test func unknownServiceIsAnErrorAtItsLocation() throws {
        let policy = try Egress.policy("version: 1\nservices:\n  - service: sigstore-fulcoi\n    allow: { credential: workload }\n")
        #expect(throws: EgressError.self) { try ServiceCatalog.builtIn.bind(policy.services) }
        do {
            _ = try ServiceCatalog.builtIn.bind(policy.services)
        } catch {
            #expect(error.description.hasPrefix("test-policy.yaml:3:14: error: unknown service 'sigstore-fulcoi'"))
            #expect(error.description.contains("Did you mean 'sigstore-fulcio'?"))
            #expect(error.category == .configuration)
        }
    }

    /// Two services that intercept the same host are bound together when each request there can be
    /// given to one of them by its endpoints (SharedHostTests); policy check refuses only what stays
    /// ambiguous, at the second service's line, saying why and what to do.
    @Test(arguments: [
        // aws-sts's endpoints are any GET or POST: Vault's requests there would be both services'.
        ("  - service: aws-sts\n  - service: hashicorp-vault\n    hosts: [sts.amazonaws.com]\n", "sts.amazonaws.com", "an endpoint of both", 4),
        // npm reads an encoded '/' in paths, the timestamp authority does not.
        ("  - service: npm-publish\n  - service: sigstore-tsa\n    hosts: [registry.npmjs.org]\n", "registry.npmjs.org", "encoded '/'", 4),
        // One service named twice with overlapping hosts (a wildcard): the same endpoints twice.
        ("  - service: hashicorp-vault\n    hosts: [vault.example.test]\n  - service: hashicorp-vault\n    hosts: [\"*.example.test\"]\n",
         "vault.example.test", "an endpoint of both", 5),
    ])
    func servicesThatShareAHostAreRefused(services: String, host: String, why: String, line: Int) throws {
        let policy = try Egress.policy("version: 1\nservices:\n" + services)
        do {
            _ = try ServiceCatalog.builtIn.bind(policy.services)
            Issue.record("bound services that share \(host) ambiguously")
        } catch {
            #expect(error.description.hasPrefix("test-policy.yaml:\(line):"), "\(error)")
            #expect(error.description.contains("both intercept \(host)") && error.description.contains(why), "\(error)")
            #expect(error.description.contains("Name one of the two, or give one of them hosts: of its own"))
            #expect(error.category == .configuration)
        }
        #expect(EgressSession.problems(in: policy).contains { $0.description.contains("both intercept \(host)") })
        // Services whose endpoints are apart share a host: each request goes to the one it is an endpoint of.
        for apart in ["  - service: github-app-token\n    allow: { credential: any }\n  - service: github-actions-secrets\n    allow: { credential: workload }\n",
                      "  - service: hashicorp-vault\n    hosts: [\"*.vault.example.test\"]\n  - service: sigstore-fulcio\n    hosts: [eu.vault.example.test]\n",
                      "  - service: github-app-token\n    allow: { credential: any }\n  - service: sigstore-fulcio\n"] {
            #expect(try ServiceCatalog.builtIn.bind(try Egress.policy("version: 1\nservices:\n" + apart).services).count == 2, "\(apart)")
        }
    }

    @Test func vaultNeedsHostsFromThePolicy() throws {
        let policy = try Egress.policy("version: 1\nservices:\n  - service: hashicorp-vault\n")
        #expect(throws: EgressError.self) { try ServiceCatalog.builtIn.bind(policy.services) }
        let given = try Egress.policy("version: 1\nservices:\n  - service: hashicorp-vault\n    hosts: [vault.example.test]\n")
        #expect(try ServiceCatalog.builtIn.bind(given.services).first?.hosts.map(\.pattern) == ["vault.example.test"])
    }
}

@Suite struct ServiceDecisionTests {
    func bound(_ yaml: String) throws -> BoundService {
        try ServiceCatalog.builtIn.bind(try Egress.policy("version: 1\nservices:\n" + yaml).services)[0]
    }

    func request(_ method: String, _ path: String, _ cls: CredentialClass, query: [(String, String)] = []) -> ServiceRequest {
        ServiceRequest(method: method, path: path, query: query,
                       credential: CredentialFinding(credentialClass: cls, kind: "test", location: "header Authorization", redacted: "test…#0", detail: "test"))
    }

    @Test func conditionsAreAllChecked() throws {
        let service = try bound("""
          - service: sigstore-fulcio
            allow: { methods: [POST], paths: ["/api/v2/*"], claims: { ref: "refs/tags/v*" }, credential: workload, window: 5m }
        """)
        let tag = JobIdentity(issuer: "i", subject: "s", claims: ["ref": .string("refs/tags/v1.2.0")])
        let branch = JobIdentity(issuer: "i", subject: "s", claims: ["ref": .string("refs/heads/main")])
        let now = Date()
        #expect(service.decide(request("POST", "/api/v2/signingCert", .workload), identity: tag, stepStarted: now, now: now).allowed)
        #expect(service.decide(request("POST", "/api/v2/signingCert", .workload), identity: tag, stepStarted: now, now: now).sensitive)
        #expect(!service.decide(request("GET", "/api/v2/signingCert", .workload), identity: tag, stepStarted: now, now: now).allowed)
        #expect(!service.decide(request("POST", "/api/v1/signingCert", .workload), identity: tag, stepStarted: now, now: now).allowed)
        #expect(!service.decide(request("POST", "/api/v2/signingCert", .workload), identity: branch, stepStarted: now, now: now).allowed)
        #expect(!service.decide(request("POST", "/api/v2/signingCert", .shortLived), identity: tag, stepStarted: now, now: now).allowed)
        let late = service.decide(request("POST", "/api/v2/signingCert", .workload), identity: tag, stepStarted: now.addingTimeInterval(-301), now: now)
        #expect(!late.allowed && late.reason.contains("just-in-time window"))
    }

    @Test func audienceOfTokenRequestsIsRestricted() throws {
        let service = try bound("""
          - service: github-oidc-token
            allow: { audience: [sigstore], credential: short-lived }
        """)
        let now = Date()
        #expect(service.decide(request("GET", "/token", .shortLived, query: [("audience", "sigstore")]), identity: nil, stepStarted: now, now: now).allowed)
        #expect(!service.decide(request("GET", "/token", .shortLived, query: [("audience", "sts.amazonaws.com")]), identity: nil, stepStarted: now, now: now).allowed)
        #expect(!service.decide(request("GET", "/token", .shortLived), identity: nil, stepStarted: now, now: now).allowed)
    }

    /// The README's service examples (cosign, Vault, npm) load, bind to the catalog and decide as they say.
    @Test func theReadmeExamplesDecideAsDocumented() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let section = try #require(readme.range(of: "#### Examples").flatMap { start in
            readme.range(of: "### Workload identity", range: start.upperBound..<readme.endIndex).map { readme[start.upperBound..<$0.lowerBound] } })
        let blocks = section.components(separatedBy: "```yaml\n").dropFirst().map { $0.components(separatedBy: "```")[0] }
        try #require(blocks.count == 3)
        var services: [String: BoundService] = [:]
        for block in blocks {
            for service in try ServiceCatalog.builtIn.bind(try Egress.policy("version: 1\n" + block).services) { services[service.definition.name] = service }
        }
        let now = Date()
        func allowed(_ name: String, _ method: String, _ path: String, _ cls: CredentialClass, ref: String = "refs/tags/v1.0.0",
                     query: [(String, String)] = [], started: Date = now) -> Bool {
            let identity = JobIdentity(issuer: "i", subject: "s", claims: ["ref": .string(ref), "repository": .string("acme/app")])
            return services[name]!.decide(request(method, path, cls, query: query), identity: identity, stepStarted: started, now: now).allowed
        }
        #expect(allowed("github-oidc-token", "GET", "/token", .shortLived, query: [("audience", "sigstore")]))
        #expect(allowed("sigstore-fulcio", "POST", "/api/v2/signingCert", .workload))
        #expect(!allowed("sigstore-fulcio", "POST", "/api/v2/signingCert", .workload, ref: "refs/heads/main"))
        #expect(!allowed("sigstore-fulcio", "POST", "/api/v2/signingCert", .workload, started: now.addingTimeInterval(-301)))
        #expect(allowed("sigstore-rekor", "POST", "/api/v1/log/entries", .none))
        #expect(allowed("hashicorp-vault", "POST", "/v1/auth/jwt/login", .workload))
        #expect(allowed("hashicorp-vault", "GET", "/v1/secret/data/ci/deploy", .longLived))
        #expect(!allowed("hashicorp-vault", "GET", "/v1/secret/data/prod/db", .longLived))
        #expect(allowed("npm-publish", "POST", "/-/npm/v1/oidc/token/exchange/package/@acme%2fpkg", .workload))
        #expect(allowed("npm-publish", "PUT", "/@acme%2fpkg", .shortLived))
        #expect(!allowed("npm-publish", "PUT", "/@acme%2fpkg", .longLived))
        #expect(!allowed("npm-publish", "PUT", "/@other%2fpkg", .shortLived))
    }

    @Test func aServiceWithoutAllowDeniesEverything() throws {
        let service = try bound("  - service: aws-kms\n")
        #expect(!service.decide(request("POST", "/", .workload), identity: nil, stepStarted: Date(), now: Date()).allowed)
    }
}
