import Foundation
import StepGuardPolicy
import Testing
@testable import StepGuardEgress

/// Which addresses are a service's: `network.resolve` targets of its hosts (that port only), and
/// the addresses its plain names resolve to (every port); glob hosts are never looked up.
@Suite struct ServiceAddressTests {
    static func services() throws -> ([BoundService], Policy) {
        let policy = try Egress.policy("""
        version: 1
        services:
          - service: hashicorp-vault
            hosts: [vault.example.test, "*.vault.example.test"]
            allow: { credential: any }
          - service: sigstore-fulcio
            allow: { credential: any }
        network:
          resolve: { "vault.example.test:8200": "127.0.0.1:18200", "other.example.test:443": "127.0.0.1:18443" }
        """)
        return (try ServiceCatalog.builtIn.bind(policy.services), policy)
    }

    static func route(_ host: String, _ addresses: [String], port: Int) throws -> Route {
        let parsed = addresses.compactMap { IPAddress(anySpelling: $0) }
        return Route(host: try #require(HostName.normalise(host)), port: UInt16(port), addresses: parsed,
                     connectAddress: try ProxyState.socketAddress(parsed[0], port: UInt16(port)))
    }

    @Test func resolveTargetsAreTheServicesOnTheirPortOnly() throws {
        let (services, policy) = try Self.services()
        let book = ServiceAddresses(services: services, resolveOverrides: policy.network.resolve)
        #expect(try book.service(at: Self.route("127.0.0.1", ["127.0.0.1"], port: 18200)) == "hashicorp-vault")
        #expect(try book.service(at: Self.route("::ffff:127.0.0.1", ["::ffff:127.0.0.1"], port: 18200)) == "hashicorp-vault")
        #expect(try book.service(at: Self.route("alias.example.test", ["::1", "127.0.0.1"], port: 18200)) == "hashicorp-vault")
        #expect(try book.service(at: Self.route("127.0.0.1", ["127.0.0.1"], port: 18443)) == nil)
        #expect(try book.service(at: Self.route("127.0.0.2", ["127.0.0.2"], port: 18200)) == nil)
    }

    @Test func resolvedAddressesAreTheServicesOnEveryPort() throws {
        let (services, policy) = try Self.services()
        let book = ServiceAddresses(services: services, resolveOverrides: policy.network.resolve)
        // Vault is placed by network.resolve: none of its hosts is looked up (its glob never is);
        // Fulcio's names are, unless the policy places Fulcio too.
        let names = ServiceAddresses.namesToResolve(services, placed: ["hashicorp-vault"]).map(\.name)
        #expect(!names.contains("vault.example.test") && !names.contains { $0.contains("*") })
        #expect(names.contains("fulcio.sigstore.dev") && names.contains("fulcio.sigstage.dev"))
        #expect(ServiceAddresses.namesToResolve(services, placed: ["hashicorp-vault", "sigstore-fulcio"]).isEmpty)
        book.learn([IPAddress(anySpelling: "127.0.0.7")!], port: nil, service: "sigstore-fulcio")
        #expect(try book.service(at: Self.route("127.0.0.7", ["127.0.0.7"], port: 8443)) == "sigstore-fulcio")
        #expect(try book.service(at: Self.route("fulcio.example", ["::1", "127.0.0.7"], port: 80)) == "sigstore-fulcio")
        #expect(try book.service(at: Self.route("127.0.0.8", ["127.0.0.8"], port: 443)) == nil)
    }
}
