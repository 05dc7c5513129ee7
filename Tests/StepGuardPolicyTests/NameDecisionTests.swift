import Foundation
import Testing
@testable import StepGuardPolicy

/// Issue #18 (DNS): which names the step's resolver may look up (``EgressPolicy/decideName(_:)``),
/// and the `network.dns` key.
@Suite struct NameDecisionTests {
    func egress(_ yaml: String) throws -> EgressPolicy { try PolicyLoader.load(yaml: "version: 1\negress: \(yaml)\n", source: "p.yaml").egress }

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    func shipped(_ name: String) throws -> Policy { try PolicyLoader.load(file: Self.root.appendingPathComponent("rules/policies/\(name).yaml").path) }

    @Test func theReleasePolicyResolvesOnlyTheNamesItAllows() throws {
        let egress = try shipped("release").egress
        for name in ["github.com", "objects.githubusercontent.com", "registry.npmjs.org"] {
            #expect(egress.decideName(name) == nil, "\(name)")
        }
        let secretHex = Array("ghp_" + String(repeating: "a1", count: 18)).map { String(format: "%02x", $0.asciiValue!) }.joined()
        for name in ["attacker.example", "\(secretHex).attacker.example", "github.com.attacker.example", "githubusercontent.com", "metadata.google.internal"] {
            let verdict = try #require(egress.decideName(name), "\(name)")
            #expect(!verdict.allowed)
        }
        let denied = try #require(egress.decideName("attacker.example"))
        #expect(denied.rule == EgressPolicy.defaultDenyRule)
        #expect(denied.reason.contains("attacker.example is allowed by no egress.allow rule at any port") && denied.reason.contains("not resolved"))
    }

    @Test func theDefaultPolicyResolvesEveryNameButTheProtectedOnes() throws {
        let egress = try shipped("default").egress
        #expect(egress.decideName("example.org") == nil)
        for name in ["metadata.google.internal", "metadata", "instance-data", "localhost", "db.localhost"] {
            let verdict = try #require(egress.decideName(name), "\(name)")
            #expect(verdict.rule.hasPrefix("built-in: protected "), "\(name): \(verdict.rule)")
            #expect(!verdict.reason.contains("\(name):"), "the reason speaks of the name, not of a port: \(verdict.reason)")
        }
        #expect(try shipped("demo").egress.decideName("localhost") == nil, "demo.yaml names localhost explicitly")
    }

    @Test func aNameAllowedAtOnePortIsResolvedUnlessEveryPortIsDenied() throws {
        #expect(try egress("{ default: deny, allow: ['db.example:5432'] }").decideName("db.example") == nil)
        #expect(try egress("{ default: deny, allow: ['db.example:5432'], deny: ['db.example:22'] }").decideName("db.example") == nil)
        let sameport = try #require(try egress("{ default: deny, allow: ['db.example:5432'], deny: ['db.example:5432'] }").decideName("db.example"))
        #expect(sameport.rule == EgressPolicy.defaultDenyRule)
        let everyPort = try #require(try egress("{ default: allow, deny: ['*.evil.example'] }").decideName("x.evil.example"))
        #expect(everyPort.rule == "egress.deny: *.evil.example" && everyPort.reason.contains("at every port"))
        #expect(try egress("{ default: allow, deny: ['evil.example:443'] }").decideName("evil.example") == nil, "other ports stay open")
        #expect(try egress("{ default: deny, allow: ['*'], deny: [evil.example] }").decideName("evil.example") != nil)
    }

    @Test func addressRulesOpenNamesOnlyWhenThePolicyAsksToResolveThem() throws {
        #expect(try egress("{ default: deny, allow: [10.0.0.0/8] }").decideName("internal.example") != nil)
        #expect(try egress("{ default: deny, allow: [10.0.0.0/8], resolve_names_for_address_rules: true }").decideName("internal.example") == nil)
        #expect(try egress("{ default: deny, allow: ['10.0.0.1:443'], resolve_names_for_address_rules: true }").decideName("internal.example") == nil)
        #expect(try egress("{ default: deny, resolve_names_for_address_rules: true }").decideName("internal.example") != nil, "no address rule")
    }

    // MARK: network.dns

    @Test func networkDNSIsLoadedRenderedAndValidated() throws {
        let policy = try PolicyLoader.load(yaml: "version: 1\nnetwork:\n  dns: 10.0.0.2:53\n", source: "p.yaml")
        #expect(policy.network.dns == HostPort(host: "10.0.0.2", port: 53))
        #expect(policy.renderedYAML().contains("  dns: \"10.0.0.2:53\""))
        #expect(try PolicyLoader.load(yaml: "version: 1\nnetwork: { dns: 'Resolver.Internal:5353' }\n", source: "p.yaml").network.dns
                == HostPort(host: "resolver.internal", port: 5353))
        #expect(try PolicyLoader.load(yaml: "version: 1\nnetwork: { dns: '[::1]:53' }\n", source: "p.yaml").network.dns == HostPort(host: "::1", port: 53))
        for (bad, message) in [("10.0.0.2", "has no port"), ("'10.0.0.2:0'", "bad port"), ("'*.example:53'", "neither an IP address nor a host name"),
                               ("[a, b]", "network.dns"), ("'dns.example:99999'", "bad port")] {
            do {
                _ = try PolicyLoader.load(yaml: "version: 1\nnetwork:\n  resolve: {}\n  dns: \(bad)\n", source: "p.yaml")
                Issue.record("\(bad) was accepted")
            } catch {
                let first = try #require(error.diagnostics.first)
                #expect(first.location.line == 4 && first.location.column == 8, "\(bad): \(first.location)")
                #expect(first.message.contains(message), "\(bad): \(first.message)")
            }
        }
        do {
            _ = try PolicyLoader.load(yaml: "version: 1\nnetwork:\n  dns_server: 10.0.0.2:53\n", source: "p.yaml")
            Issue.record("an unknown network key was accepted")
        } catch {
            #expect(error.diagnostics.first?.location.line == 3)
        }
    }
}
