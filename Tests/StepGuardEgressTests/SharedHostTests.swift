import Foundation
import NIOCore
import StepGuardPolicy
import StepGuardTestSupport
import Testing
@testable import StepGuardEgress

/// Two services on one host (github-app-token and github-actions-secrets both on api.github.com):
/// each request is decided by the service whose catalog endpoints it is, a request that is an
/// endpoint of none (or of several that disagree) is denied, and the order of `services:` never
/// decides. On plain values: no socket, no clock but the one each test passes in.
@Suite struct SharedHostTests {
    static let appToken = "  - service: github-app-token\n    allow: { methods: [POST], credential: any }\n"
    static let secrets = "  - service: github-actions-secrets\n    allow: { credential: workload }\n"

    /// A long-lived GitHub token, made at run time (the repository scans itself).
    static let pat = "gh" + "p_" + String((0..<36).map { _ in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".randomElement()! })

    func decider(_ services: String) throws -> EgressDecider {
        let policy = try Egress.policy("version: 1\nservices:\n" + services)
        return EgressDecider(egress: policy.egress, services: try ServiceCatalog.builtIn.bind(policy.services), resolveOverrides: [:])
    }

    func route(_ host: String) throws -> Route {
        Route(host: try #require(HostName.normalise(host)), port: 443, addresses: [try #require(IPAddress("127.0.0.1"))],
              connectAddress: try SocketAddress(ipAddress: "127.0.0.1", port: 443))
    }

    let context = ServiceContext(inspector: BuiltInCredentialInspector(verifier: nil, identity: nil, detector: Egress.detector),
                                 identity: nil, stepStarted: Date())

    /// Decides `method uri` with `authorization` at api.github.com, through the service the decider gives that host.
    func decide(_ decider: EgressDecider, _ method: String, _ uri: String, authorization: String, host: String = "api.github.com") throws -> ServiceRequestDecision {
        let route = try route(host)
        let service = try #require(decider.service(for: route.host))
        let target = try RequestTarget.intercepted(uri, hostFields: [host], route: route).normalisedForService(encodedSlashes: service.definition.encodedSlashes)
        return context.decide(method: method, target: target, headers: [("Authorization", authorization)], body: nil, route: route,
                              service: service, now: Date())
    }

    @Test(arguments: [true, false])
    func eachRequestIsDecidedByTheServiceWhoseEndpointItIs(appTokenFirst: Bool) throws {
        let decider = try decider(appTokenFirst ? Self.appToken + Self.secrets : Self.secrets + Self.appToken)
        let shared = try #require(decider.service(for: .name("api.github.com")))
        #expect(shared.members.map(\.definition.name).sorted() == ["github-actions-secrets", "github-app-token"])

        // The App-token exchange: github-app-token's, allowed with any credential, its mint captured for it.
        let mint = try decide(decider, "POST", "/app/installations/42/access_tokens", authorization: "Bearer \(Self.pat)")
        #expect(mint.record.allowed, "\(mint.record.reason)")
        #expect(mint.record.service == "github-app-token" && mint.record.rule == "services.github-app-token.allow[0]")
        #expect(mint.mint?.service == "github-app-token" && mint.mint?.field == "token")

        // A PUT of an Actions secret: github-actions-secrets', which wants a workload credential.
        let put = try decide(decider, "PUT", "/repos/acme/app/actions/secrets/DEPLOY_KEY", authorization: "Bearer \(Self.pat)")
        #expect(!put.record.allowed)
        #expect(put.record.service == "github-actions-secrets" && put.record.rule == "services.github-actions-secrets.allow[0]", "\(put.record.rule)")
        #expect(put.record.reason.contains("credential 'workload' is required"), "\(put.record.reason)")
        #expect(put.mint == nil)
        #expect(!put.record.reason.contains(Self.pat))

        // A request that is an endpoint of neither: denied, naming both, whatever the order.
        for (method, uri) in [("GET", "/repos/acme/app"), ("POST", "/app/installations/42/access_tokens/extra"), ("GET", "/app/installations/42/access_tokens")] {
            let neither = try decide(decider, method, uri, authorization: "Bearer \(Self.pat)")
            #expect(!neither.record.allowed, "\(method) \(uri)")
            #expect(neither.record.reason.contains("is an endpoint of none of them"), "\(neither.record.reason)")
            #expect(neither.record.reason.contains("github-app-token") && neither.record.reason.contains("github-actions-secrets"))
            #expect(neither.record.rule.hasSuffix("(shared host)") && neither.mint == nil)
        }
        // Path tricks are normalised before the endpoint is chosen: this is a secrets PUT, not a mint.
        let dotted = try decide(decider, "PUT", "/app/installations/42/../../../repos/acme/app/actions/secrets/X", authorization: "Bearer \(Self.pat)")
        #expect(!dotted.record.allowed && dotted.record.service == "github-actions-secrets", "\(dotted.record.reason)")
    }

    /// Two services whose endpoints overlap cannot be bound together (the policy is refused), but
    /// should they meet on a host all the same, a request that is an endpoint of both is allowed
    /// only when both allow it; when they disagree it is denied, naming each verdict.
    @Test func endpointsOfSeveralServicesThatDisagreeAreDenied() throws {
        // Two Vault-like services with the same endpoints; only vault-a declares the login as a mint.
        func service(_ name: String, mints: String) throws -> ServiceDefinition {
            try ServiceCatalog.parse(yaml: """
                name: \(name)
                hosts: [shared.example.test]
                sensitive:
                  - { methods: [POST], paths: ["/v1/*"] }
                credentials:
                  - { in: header, name: Authorization }
                \(mints)
                """, file: "\(name).yaml")
        }
        let catalog = ServiceCatalog(services: [try service("vault-a", mints: #"mints: [{ methods: [POST], paths: ["/v1/auth/*/login"], json: auth.client_token }]"#),
                                                try service("vault-b", mints: "")])
        func bound(_ yaml: String) throws -> BoundService {
            try #require(try catalog.bind(try Egress.policy("version: 1\nservices:\n" + yaml).services).first)
        }
        #expect(throws: EgressError.self) {
            try catalog.bind(try Egress.policy("version: 1\nservices:\n  - service: vault-a\n  - service: vault-b\n").services)
        }
        let any = try bound("  - service: vault-a\n    allow: { credential: any }\n")
        let workload = try bound("  - service: vault-b\n    allow: { credential: workload }\n")
        let anyB = try bound("  - service: vault-b\n    allow: { credential: any }\n")
        let route = try route("shared.example.test")
        let target = try RequestTarget.intercepted("/v1/auth/jwt/login", hostFields: ["shared.example.test"], route: route)
        func decide(_ members: [BoundService]) -> ServiceRequestDecision {
            context.decide(method: "POST", target: target, headers: [("Authorization", "Bearer \(Self.pat)")], body: nil, route: route,
                           service: BoundService(sharing: members), now: Date())
        }
        for members in [[any, workload], [workload, any]] {
            let split = decide(members)
            #expect(!split.record.allowed && split.mint == nil)
            #expect(split.record.reason.contains("vault-a allows it") && split.record.reason.contains("vault-b denies it"), "\(split.record.reason)")
        }
        for members in [[any, anyB], [anyB, any]] {
            let both = decide(members)
            #expect(both.record.allowed, "\(both.record.reason)")
            #expect(both.mint?.service == "vault-a", "the exchange is captured for the service whose mint it is")
        }
    }

    /// `network.resolve` placing a shared host places every service on it: none of their names is
    /// looked up when the run starts. Until 9e6b50d only the first service on the host counted as
    /// placed, so the second's `api.github.com` was sent to the resolver although the policy pins it.
    @Test(arguments: [true, false])
    func placingASharedHostPlacesEveryServiceOnIt(appTokenFirst: Bool) throws {
        let policy = try Egress.policy("version: 1\nservices:\n" + (appTokenFirst ? Self.appToken + Self.secrets : Self.secrets + Self.appToken)
                                       + "network:\n  resolve: { \"api.github.com:443\": \"127.0.0.1:8443\" }\n")
        let decider = EgressDecider(egress: policy.egress, services: try ServiceCatalog.builtIn.bind(policy.services), resolveOverrides: policy.network.resolve)
        #expect(decider.serviceAddresses.placed == ["github-app-token", "github-actions-secrets"])
        #expect(ServiceAddresses.namesToResolve(decider.services, placed: decider.serviceAddresses.placed).isEmpty)
    }

    /// A service that declares no endpoints cannot share a host: none of its requests could be told apart.
    @Test func aServiceWithoutEndpointsCannotShareAHost() throws {
        let bare = try ServiceCatalog.parse(yaml: "name: bare\nhosts: [api.github.com]\n", file: "bare.yaml")
        let catalog = ServiceCatalog(services: [bare, try #require(ServiceCatalog.builtIn.definition(named: "github-app-token"))])
        let policy = try Egress.policy("version: 1\nservices:\n  - service: github-app-token\n  - service: bare\n")
        #expect(throws: EgressError.self) { try catalog.bind(policy.services) }
        do { _ = try catalog.bind(policy.services) } catch {
            #expect(error.description.contains("'bare' declares no endpoints"), "\(error)")
        }
    }

    @Test func globsOverlapWhenOneTextMatchesBoth() throws {
        for (a, b, overlap) in [("/repos/*/actions/secrets*", "/app/installations/*/access_tokens", false), ("/v1/*", "/*", true),
                                ("/a*c", "/ab*", true), ("/a?c", "/abd", false), ("*", "", true), ("/x", "/x", true), ("a*b*c", "*bd", false),
                                ("/v1/*", "/api/v1/signingCert", false), ("/*/x", "/y/*", true)] {
            let (left, right) = (try Glob(a), try Glob(b))
            #expect(left.overlaps(right) == overlap && right.overlaps(left) == overlap, "\(a) ∩ \(b)")
        }
    }
}
