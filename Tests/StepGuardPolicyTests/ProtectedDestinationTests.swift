import Testing
@testable import StepGuardPolicy

/// Hole 5 of issue #16: loopback, link-local and cloud credential endpoints are denied by every
/// policy unless an allow rule names them explicitly.
@Suite struct ProtectedDestinationTests {
    func egress(_ yaml: String) throws -> EgressPolicy { try PolicyLoader.load(yaml: "version: 1\negress: \(yaml)\n", source: "p.yaml").egress }
    func address(_ text: String) -> IPAddress { IPAddress(anySpelling: text)! }

    /// The widest policies that do not name the destinations: none of them reaches one.
    static let openPolicies = ["{ default: allow }", "{ default: allow, allow: ['*'] }", "{ default: deny, allow: ['*', 0.0.0.0/0, '::/0'] }",
                               "{ default: deny, allow: [100.64.0.0/10, 168.0.0.0/8, 192.0.0.0/24, 'fd00::/8', '::/96', '64:ff9b::/96'] }"]

    @Test(arguments: openPolicies)
    func credentialEndpointsAndLoopbackAreDeniedByOpenPolicies(policy: String) throws {
        let egress = try egress(policy)
        let hosts = ["169.254.170.2", "169.254.170.23", "168.63.129.16", "100.100.100.200", "192.0.0.192", "169.254.169.254", "fd00:ec2::254",
                     "fd00:ec2::23", "169.254.1.1", "fe80::1", "127.0.0.1", "127.0.0.2", "127.255.255.254", "2130706433", "0x7f.1", "0", "0.0.0.0",
                     "::", "::1", "[::ffff:127.0.0.1]", "::127.0.0.1", "64:ff9b::7f00:1", "localhost", "LOCALHOST.", "registry.localhost",
                     "metadata", "metadata.google.internal", "instance-data"]
        for host in hosts {
            let verdict = egress.decide(host: host, port: 80, addresses: [])
            #expect(!verdict.allowed, "\(host) under \(policy)")
            #expect(verdict.rule.hasPrefix("built-in: protected "), "\(host): \(verdict.rule)")
        }
    }

    @Test(arguments: openPolicies)
    func namesResolvingToProtectedAddressesAreDenied(policy: String) throws {
        let egress = try egress(policy)
        for addresses in [["127.0.0.1"], ["10.0.0.7", "169.254.170.2"], ["::1"], ["::ffff:168.63.129.16"], ["fe80::1"]] {
            let verdict = egress.decide(host: "rebind.example", port: 443, addresses: addresses.map(address))
            #expect(!verdict.allowed, "\(addresses)")
        }
        #expect(try self.egress("{ default: allow }").decide(host: "registry.npmjs.org", port: 443, addresses: [address("104.16.0.35")]).allowed)
    }

    @Test func theDenialNamesTheMostSpecificDestinationAndHowToOpenIt() throws {
        let verdict = try egress("{ default: allow }").decide(host: "169.254.170.2", port: 80, addresses: [])
        #expect(verdict.rule == "built-in: protected 169.254.170.2")
        #expect(verdict.reason.contains("ECS") && verdict.reason.contains("'169.254.170.2:80'"))
        let loopback = try egress("{ default: allow }").decide(host: "db.example", port: 5432, addresses: [address("127.0.0.2")])
        #expect(loopback.rule == "built-in: protected 127.0.0.0/8")
        #expect(loopback.reason.contains("resolved to 127.0.0.2") && loopback.reason.contains("'127.0.0.2:5432'"))
    }

    @Test func anAddressOrNetworkInsideTheDestinationOpensIt() throws {
        let port = try egress("{ default: allow, allow: ['127.0.0.1:18777'] }")
        #expect(port.decide(host: "127.0.0.1", port: 18777, addresses: []).allowed)
        #expect(!port.decide(host: "127.0.0.1", port: 22, addresses: []).allowed, "another port is not named")
        #expect(!port.decide(host: "127.0.0.2", port: 18777, addresses: []).allowed)
        #expect(!port.decide(host: "::1", port: 18777, addresses: []).allowed)
        let network = try egress("{ default: deny, allow: [127.0.0.0/8, '::1'] }")
        #expect(network.decide(host: "127.0.0.2", port: 5432, addresses: []).allowed)
        #expect(network.decide(host: "::1", port: 5432, addresses: []).allowed)
        #expect(!network.decide(host: "0.0.0.0", port: 5432, addresses: []).allowed, "0.0.0.0 is protected on its own")
        let linkLocal = try egress("{ default: deny, allow: [169.254.0.0/16] }")
        #expect(linkLocal.decide(host: "169.254.1.1", port: 80, addresses: []).allowed)
        #expect(!linkLocal.decide(host: "169.254.169.254", port: 80, addresses: []).allowed, "the metadata address must be named on its own")
        #expect(!linkLocal.decide(host: "169.254.170.2", port: 80, addresses: []).allowed)
        #expect(try egress("{ default: deny, allow: [169.254.170.2] }").decide(host: "169.254.170.2", port: 80, addresses: []).allowed)
    }

    @Test func aNameRuleOpensTheNameButNotTheAddresses() throws {
        let byName = try egress("{ default: deny, allow: [localhost, metadata.google.internal, build.example] }")
        #expect(byName.decide(host: "localhost", port: 8080, addresses: []).allowed, "the name may be looked up")
        #expect(!byName.decide(host: "localhost", port: 8080, addresses: [address("127.0.0.1")]).allowed)
        #expect(!byName.decide(host: "metadata.google.internal", port: 80, addresses: [address("169.254.169.254")]).allowed)
        #expect(!byName.decide(host: "build.example", port: 80, addresses: [address("127.0.0.1")]).allowed, "no DNS rebinding to the loopback")
        let both = try egress("{ default: deny, allow: [localhost, '127.0.0.1:8080', '[::1]:8080'] }")
        #expect(both.decide(host: "localhost", port: 8080, addresses: [address("127.0.0.1"), address("::1")]).allowed)
        #expect(!both.decide(host: "localhost", port: 8081, addresses: [address("127.0.0.1")]).allowed)
        #expect(try !egress("{ default: deny, allow: ['127.0.0.1:8080'] }").decide(host: "localhost", port: 8080, addresses: []).allowed,
                "the name localhost is protected too: an address rule does not open it")
        #expect(try !egress("{ default: allow, allow: ['*.localhost'] }").decide(host: "db.localhost", port: 80, addresses: []).allowed,
                "a glob names no host explicitly")
    }

    @Test func denyRulesStillWinAndNetworkResolveTargetsAreExplicit() throws {
        #expect(try !egress("{ default: deny, allow: [127.0.0.1], deny: [127.0.0.0/8] }").decide(host: "127.0.0.1", port: 80, addresses: []).allowed)
        let loopback = [address("127.0.0.1")]
        let open = try egress("{ default: allow }")
        #expect(open.decide(host: "fulcio.sigstore.dev", port: 443, addresses: loopback, addressesFromPolicy: true).allowed)
        #expect(!open.decide(host: "fulcio.sigstore.dev", port: 443, addresses: loopback).allowed)
        let closed = try egress("{ default: deny, deny: [fulcio.sigstore.dev] }")
        #expect(!closed.decide(host: "fulcio.sigstore.dev", port: 443, addresses: loopback, addressesFromPolicy: true).allowed)
        #expect(!closed.decide(host: "rekor.sigstore.dev", port: 443, addresses: loopback, addressesFromPolicy: true).allowed, "still needs an allow rule")
    }

    @Test func everyEntryParsesAndCoversItself() {
        for destination in EgressPolicy.protectedDestinations {
            let host: String = switch destination.target {
            case .host(let pattern): pattern.pattern.replacingOccurrences(of: "*", with: "x")
            case .network(let network): network.network.description
            }
            #expect(destination.covers(host: host, address: nil), "\(destination)")
            #expect(!EgressPolicy().decide(host: host, port: 443, addresses: []).allowed, "\(destination)")
        }
    }

    @Test func policyShowListsTheProtectedSet() throws {
        let text = Policy.builtInDefault().renderedYAML()
        for destination in EgressPolicy.protectedDestinations {
            #expect(text.contains("#   \(destination) ") && text.contains(destination.what), "\(destination)")
        }
        for spelled in ["169.254.170.2", "168.63.129.16", "100.100.100.200", "127.0.0.0/8", "169.254.0.0/16", "fe80::/10"] {
            #expect(text.contains("#   \(spelled) "), "\(spelled)")
        }
        #expect(text.contains("resolve_names_for_address_rules: false"))
    }
}

/// Hole 6 of issue #16: the opt-in that lets names be looked up for address rules.
@Suite struct ResolveNamesOptionTests {
    @Test func loadsRendersAndIsReplacedByAStep() throws {
        let yaml = """
        version: 1
        egress:
          default: deny
          allow: [10.0.0.0/8]
          resolve_names_for_address_rules: true
        steps:
          strict: { egress: { resolve_names_for_address_rules: false } }
          other: { egress: { allow: [github.com] } }
        """
        let policy = try PolicyLoader.load(yaml: yaml, source: "p.yaml")
        #expect(policy.egress.resolveNamesForAddressRules)
        #expect(policy.renderedYAML().contains("resolve_names_for_address_rules: true"))
        #expect(try !policy.effective(forStep: "strict").egress.resolveNamesForAddressRules)
        #expect(try policy.effective(forStep: "other").egress.resolveNamesForAddressRules)
        #expect(!EgressPolicy().resolveNamesForAddressRules, "off unless the policy opts in")
    }

    /// After resolution too (what `mode: audit` records, and `network.resolve` routes), an address
    /// rule allows a name only under the opt-in or through the policy's own `network.resolve`.
    @Test func addressRulesAllowNamesOnlyWhenTheirLookupWasAllowed() throws {
        let yaml = "version: 1\negress: { default: deny, allow: [10.0.0.0/8, github.com] }\n"
        let strict = try PolicyLoader.load(yaml: yaml, source: "p.yaml").egress
        var optIn = strict
        optIn.resolveNamesForAddressRules = true
        let cache = [IPAddress("10.1.2.3")!]
        #expect(!strict.decide(host: "cache.internal", port: 443, addresses: cache).allowed)
        #expect(strict.decide(host: "cache.internal", port: 443, addresses: cache).reason.contains("resolve_names_for_address_rules"))
        #expect(strict.decide(host: "cache.internal", port: 443, addresses: cache, addressesFromPolicy: true).allowed)
        #expect(strict.decide(host: "10.1.2.3", port: 443, addresses: cache).allowed, "an IP literal is its own address")
        #expect(strict.decide(host: "github.com", port: 443, addresses: [IPAddress("140.82.121.4")!]).allowed)
        #expect(optIn.decide(host: "cache.internal", port: 443, addresses: cache).allowed)
        #expect(!optIn.decide(host: "cache.internal", port: 443, addresses: [IPAddress("192.0.2.1")!]).allowed)
    }

    @Test func aWrongValueIsAnErrorWithItsLocation() {
        #expect {
            try PolicyLoader.load(yaml: "version: 1\negress:\n  resolve_names_for_address_rules: \"yes\"\n", source: "p.yaml")
        } throws: { error in
            "\(error)".contains("p.yaml:3:") && "\(error)".contains("egress.resolve_names_for_address_rules must be true or false")
        }
    }
}
