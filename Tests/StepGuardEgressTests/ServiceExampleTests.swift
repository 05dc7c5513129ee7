import Foundation
@testable import StepGuardEgress
import StepGuardSecrets
import StepGuardTestSupport
import Testing

/// Every `examples:` entry of `rules/services/*.yaml` goes through what the proxy does with an
/// intercepted request: the service's host patterns (as a policy binds them), its sensitive
/// operations and token exchanges, and the credential inspector reading the places the catalog
/// names. The examples also have to show each of those places at work.
@Suite struct ServiceExampleTests {
    static let catalog: ServiceCatalog = {
        try! ServiceCatalog.load(directory: StepGuardBinary.packageRoot.appendingPathComponent("rules/services").path)
    }()

    /// The catalog's names, for a parameterised test per service.
    static let names = catalog.names

    @Test(arguments: names) func examplesDecideAsTheySay(_ name: String) throws {
        let definition = try #require(Self.catalog.definition(named: name))
        let examples = definition.examples
        #expect(examples.count >= 2, "\(name): give at least two examples")
        #expect(examples.contains { $0.sensitive }, "\(name): no example of a sensitive request")
        let shown = Set(examples.compactMap(\.foundIn))
        for location in definition.credentials {
            #expect(shown.contains("\(location.place.rawValue) \(location.name)"),
                    "\(name): no example finds the credential in \(location.place.rawValue) \(location.name)")
        }
        let issuer = TestOIDCIssuer()
        // `{jwt}` tokens verify with the issuer's keys but are another job's than the run's: short-lived
        // (an unverifiable JWT is long-lived).
        let job = issuer.identity(subject: "repo:acme/other:ref:refs/heads/main")
        let inspector = BuiltInCredentialInspector(verifier: issuer.verifier(for: job), identity: job, detector: Egress.detector)
        for (index, example) in examples.enumerated() {
            let label = "\(name) examples[\(index)] \(example.method) \(example.url)"
            let request = try Self.expanded(example, issuer: issuer)
            let service = try Self.bound(definition, host: request.host)
            #expect(service.matches(host: request.host), "\(label): the service's hosts do not match \(request.host)")
            #expect(definition.isSensitive(method: example.method, path: request.path) == example.sensitive, "\(label): sensitive")
            #expect((definition.mint(method: example.method, path: request.path) != nil) == example.mints, "\(label): mints")
            if let audience = example.audience {
                let parameter = try #require(definition.audienceParameter, "\(label): audience given, but the service has no audience_parameter")
                #expect(request.query.first { $0.0 == parameter }?.1 == audience, "\(label): audience")
            }
            let finding = inspector.inspect(InspectedRequest(method: example.method, target: request.target, headers: request.headers,
                                                             body: definition.credentialInBody ? request.body : nil,
                                                             locations: definition.credentials, service: name), now: Date())
            #expect(finding.credentialClass == example.credential, "\(label): \(finding.kind) in \(finding.location): \(finding.detail)")
            if let foundIn = example.foundIn { #expect(finding.location == foundIn, "\(label): found in") }
        }
    }

    /// A catalog file whose examples are malformed is refused with the file, the example and the key.
    @Test func malformedExamplesAreRefusedWithTheirPlace() {
        let base = "name: s\nhosts: [s.example]\nexamples:\n"
        for (yaml, problem) in [
            ("  - { request: POST /x, sensitive: true, credential: none }", "examples[0]: 'request' must be 'METHOD https://host/path'"),
            ("  - { request: POST https://s.example/, credential: none }", "examples[0]: 'sensitive' (true or false) is missing"),
            ("  - { request: POST https://s.example/, sensitive: true, credential: workload }", "examples[0]: 'credential' must be one of"),
            ("  - { request: GET https://s.example/, sensitive: false, credential: none, basic: [only-user] }", "examples[0]: 'basic' must be [user, password]"),
            ("  - { request: GET https://s.example/, sensitive: false, credential: none, expect: x }", "examples[0]: unknown key 'expect'"),
        ] {
            #expect(throws: EgressError.self, "\(problem)") { try ServiceCatalog.parse(yaml: base + yaml, file: "s.yaml") }
            do { _ = try ServiceCatalog.parse(yaml: base + yaml, file: "s.yaml") } catch {
                #expect(error.description.contains("s.yaml") && error.description.contains(problem), "\(error.description)")
            }
        }
    }

    /// An example request after its templates are expanded.
    struct ExpandedRequest {
        var host: String
        var target: String
        var path: String
        var query: [(String, String)]
        var headers: [(name: String, value: String)]
        var body: [UInt8]?
    }

    /// `{jwt}` (valid for 10 minutes), `{jwt:long}` (30 days) and `{jwt:expired}` are JWTs from
    /// `issuer`; the rest of each template is expanded by ``ExampleTemplate``.
    static func expand(_ template: String, issuer: TestOIDCIssuer) -> String {
        let now = Date()
        let text = template
            .replacingOccurrences(of: "{jwt}", with: issuer.token(subject: "repo:acme/app:ref:refs/tags/v1"))
            .replacingOccurrences(of: "{jwt:long}", with: issuer.token(subject: "repo:acme/app:ref:refs/tags/v1", lifetime: 30 * 86_400))
            .replacingOccurrences(of: "{jwt:expired}", with: issuer.token(subject: "repo:acme/app:ref:refs/tags/v1", issuedAt: now.addingTimeInterval(-1200)))
        return ExampleTemplate.expand(text)
    }

    static func expanded(_ example: ServiceExample, issuer: TestOIDCIssuer) throws -> ExpandedRequest {
        let url = expand(example.url, issuer: issuer)
        let afterScheme = try #require(url.split(separator: "://", maxSplits: 1).last.map(String.init))
        let authority = String(afterScheme.prefix { $0 != "/" && $0 != "?" })
        let target = String(afterScheme.dropFirst(authority.count))
        let host = String(authority.prefix { $0 != ":" }).lowercased()
        let path = String(target.prefix { $0 != "?" })
        var headers = example.headers.sorted { $0.key < $1.key }.map { (name: $0.key, value: expand($0.value, issuer: issuer)) }
        if let basic = example.basic {
            let pair = expand(basic[0], issuer: issuer) + ":" + expand(basic[1], issuer: issuer)
            headers.append((name: "Authorization", value: "Basic " + Data(pair.utf8).base64EncodedString()))
        }
        let inspected = InspectedRequest(method: example.method, target: target.isEmpty ? "/" : target, headers: [])
        return ExpandedRequest(host: host, target: target.isEmpty ? "/" : target, path: path.isEmpty ? "/" : path,
                               query: inspected.queryItems, headers: headers,
                               body: example.body.map { Array(expand($0, issuer: issuer).utf8) })
    }

    /// The service bound as a policy names it; a service whose hosts come from the policy gets the example's host.
    static func bound(_ definition: ServiceDefinition, host: String) throws -> BoundService {
        let hosts = definition.hostsFromPolicy ? "\n    hosts: [\(host)]" : ""
        let policy = try Egress.policy("version: 1\nservices:\n  - service: \(definition.name)\(hosts)\n")
        return try #require(try ServiceCatalog(services: [definition]).bind(policy.services).first)
    }
}

extension ServiceDefinition {
    /// The definition as the built-in copy holds it: `bench/egress/gen-catalog.sh` leaves the examples out.
    var withoutExamples: ServiceDefinition {
        ServiceDefinition(name: name, description: description, hosts: hosts, hostsFromPolicy: hostsFromPolicy, sensitive: sensitive,
                          credentials: credentials, audienceParameter: audienceParameter, mints: mints, examples: [], encodedSlashes: encodedSlashes)
    }
}
