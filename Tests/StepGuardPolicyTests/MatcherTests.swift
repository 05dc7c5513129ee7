import Testing
@testable import StepGuardPolicy

@Suite struct GlobTests {
    /// Each pattern, texts it matches and texts it must not match.
    static let cases: [(pattern: String, matches: [String], misses: [String])] = [
        ("refs/tags/v*", ["refs/tags/v1.2.3", "refs/tags/v"], ["refs/heads/main", "xrefs/tags/v1"]),
        ("a?c", ["abc"], ["ac"]),
        ("*a*b*", ["xxaxxbxx"], []),
        ("*a*b", [], ["xxaxxbxx"]),
        ("a\\*b", ["a*b"], ["axb"]),
    ]

    @Test(arguments: cases)
    func wildcardsAndEscapes(_ example: (pattern: String, matches: [String], misses: [String])) throws {
        let glob = try Glob(example.pattern)
        for text in example.matches { #expect(glob.matches(text), "\(text)") }
        for text in example.misses { #expect(!glob.matches(text), "\(text)") }
    }

    @Test func escapesAndCase() throws {
        #expect(try Glob("ABC", caseInsensitive: true).matches("abc"))
        #expect(try !Glob("ABC").matches("abc"))
        #expect(throws: MatcherError.self) { try Glob("oops\\") }
    }

    @Test func pathologicalPatternStaysFast() throws {
        let glob = try Glob(String(repeating: "*a", count: 30) + "b")
        #expect(!glob.matches(String(repeating: "a", count: 5000)))
    }
}

@Suite struct HostPatternTests {
    /// Each pattern, hosts it matches and hosts it must not match.
    static let cases: [(pattern: String, matches: [String], misses: [String])] = [
        ("GitHub.com.", ["github.com", "GITHUB.COM."], ["api.github.com"]),
        ("*.githubusercontent.com", ["raw.githubusercontent.com", "a.b.githubusercontent.com"],
         ["githubusercontent.com", "evilgithubusercontent.com"]),
    ]

    @Test(arguments: cases)
    func caseTrailingDotAndWildcardSubdomains(_ example: (pattern: String, matches: [String], misses: [String])) throws {
        let pattern = try HostPattern(example.pattern)
        for host in example.matches { #expect(pattern.matches(host), "\(host)") }
        for host in example.misses { #expect(!pattern.matches(host), "\(host)") }
    }

    @Test func rejectsBadHosts() {
        #expect(throws: MatcherError.self) { try HostPattern("exa mple.com") }
        #expect(throws: MatcherError.self) { try HostPattern("a..b") }
        #expect(throws: MatcherError.self) { try HostPattern("http://x") }
        #expect(throws: MatcherError.self) { try HostPattern("") }
    }
}

@Suite struct AddressTests {
    @Test func everySpellingOfAnIPv4Address() throws {
        let expected = IPAddress("127.0.0.3")!
        for spelling in ["127.0.0.3", "2130706435", "0x7f000003", "0177.0.0.3", "127.0.3", "0x7f.0.0.3", "[::ffff:127.0.0.3]", "::ffff:7f00:3", "127.0.0.3."] {
            #expect(IPAddress(anySpelling: spelling) == expected, "spelling \(spelling)")
        }
        #expect(IPAddress(anySpelling: "2852039166") == IPAddress("169.254.169.254"))
        #expect(IPAddress(anySpelling: "256.0.0.1") == nil)
        #expect(IPAddress(anySpelling: "example.com") == nil)
        #expect(IPAddress(anySpelling: "08.0.0.1") == nil)  // 8 is not an octal digit
    }

    @Test func standardParsingIsStrict() {
        #expect(IPAddress("2130706435") == nil)
        #expect(IPAddress("127.0.0.1")?.description == "127.0.0.1")
        #expect(IPAddress("fd00:ec2:0::254")?.description == "fd00:ec2::254")
    }

    @Test func cidrContainment() throws {
        let v4 = try CIDR("10.1.0.0/16")
        #expect(v4.contains(IPAddress("10.1.200.3")!))
        #expect(!v4.contains(IPAddress("10.2.0.1")!))
        #expect(v4.contains(IPAddress("::ffff:10.1.0.9")!))
        let v6 = try CIDR("fd00::/8")
        #expect(v6.contains(IPAddress("fd00:ec2::254")!))
        #expect(!v6.contains(IPAddress("fe80::1")!))
        #expect(try CIDR("0.0.0.0/0").contains(IPAddress("8.8.8.8")!))
        #expect(try CIDR("169.254.169.254").prefixLength == 32)
    }

    @Test func cidrErrors() {
        #expect(throws: MatcherError.self) { try CIDR("10.1.0.0/33") }
        #expect(throws: MatcherError.self) { try CIDR("10.1.0.1/16") }
        #expect(throws: MatcherError.self) { try CIDR("10.1.0/16") }
        #expect(throws: MatcherError.self) { try CIDR("fd00::/129") }
    }

    @Test func loopback() {
        #expect(IPAddress("127.9.9.9")!.isLoopback)
        #expect(IPAddress("::1")!.isLoopback)
        #expect(!IPAddress("10.0.0.1")!.isLoopback)
    }
}

@Suite struct EgressRuleTests {
    @Test func forms() throws {
        #expect(try EgressRule("registry.npmjs.org:443").port == 443)
        #expect(try EgressRule("[::1]:8443").description == "[::1]:8443")
        #expect(try EgressRule("10.0.0.0/8").description == "10.0.0.0/8")
        #expect(try EgressRule("127.0.0.1:8080").matches(host: "127.0.0.1", address: nil, port: 8080))
        #expect(try !EgressRule("127.0.0.1:8080").matches(host: "127.0.0.1", address: nil, port: 8081))
        #expect(throws: MatcherError.self) { try EgressRule("example.com:0") }
        #expect(throws: MatcherError.self) { try EgressRule("example.com:99999") }
        #expect(throws: MatcherError.self) { try EgressRule("10.0.0.0/8:443") }
    }

    @Test func networkRulesJudgeResolvedAddresses() throws {
        let rule = try EgressRule("10.1.0.0/16")
        #expect(rule.matches(host: "cache.internal", address: IPAddress("10.1.2.3"), port: 443))
        #expect(!rule.matches(host: "cache.internal", address: IPAddress("10.9.2.3"), port: 443))
        #expect(rule.matches(host: "0x0a010203", address: nil, port: 443))
    }

    @Test func hostPortParsing() throws {
        #expect(try HostPort("fulcio.sigstore.dev:443") == HostPort(host: "fulcio.sigstore.dev", port: 443))
        #expect(try HostPort("[::1]:8443").host == "::1")
        #expect(throws: MatcherError.self) { try HostPort("fulcio.sigstore.dev") }
    }
}

@Suite struct DurationTests {
    @Test func parsesUnits() throws {
        #expect(try PolicyDuration(parsing: "30s").milliseconds == 30_000)
        #expect(try PolicyDuration(parsing: "5m").milliseconds == 300_000)
        #expect(try PolicyDuration(parsing: "1h30m").milliseconds == 5_400_000)
        #expect(try PolicyDuration(parsing: "250ms").milliseconds == 250)
        #expect(try PolicyDuration(parsing: "2d").milliseconds == 172_800_000)
        #expect(try PolicyDuration(parsing: "1h30m").description == "1h30m")
    }

    @Test func rejectsBadDurations() {
        for text in ["5", "5 m", "-1s", "m", "1y", "", "1.5h", "99999999999999999d"] {
            #expect(throws: MatcherError.self, "\(text)") { try PolicyDuration(parsing: text) }
        }
    }
}

@Suite struct EgressDecisionTests {
    func policy(_ yaml: String) throws -> Policy { try PolicyLoader.load(yaml: "version: 1\n" + yaml, source: "p.yaml") }

    @Test func denyBeatsAllowAndDefaultApplies() throws {
        let egress = try policy("egress:\n  default: deny\n  allow: ['*.example.com', '10.0.0.0/8']\n  deny: [bad.example.com, 10.9.0.0/16]\n  resolve_names_for_address_rules: true").egress
        #expect(egress.decide(host: "api.example.com", port: 443, addresses: []).allowed)
        #expect(!egress.decide(host: "bad.example.com", port: 443, addresses: []).allowed)
        #expect(!egress.decide(host: "other.test", port: 443, addresses: []).allowed)
        #expect(egress.decide(host: "cache", port: 80, addresses: [IPAddress("10.1.1.1")!]).allowed)
        let denied = egress.decide(host: "cache", port: 80, addresses: [IPAddress("10.1.1.1")!, IPAddress("10.9.0.1")!])
        #expect(!denied.allowed)
        #expect(denied.rule == "egress.deny: 10.9.0.0/16")
    }

    @Test func metadataEndpointsNeedAnExplicitAllow() throws {
        let open = try policy("egress:\n  default: allow\n  allow: ['*']").egress
        for (host, destination) in [("169.254.169.254", "169.254.169.254"), ("2852039166", "169.254.169.254"), ("metadata.google.internal", "metadata.google.internal"),
                                    ("METADATA.google.internal.", "metadata.google.internal"), ("[fd00:ec2::254]", "fd00:ec2::254")] {
            let verdict = open.decide(host: host, port: 80, addresses: [])
            #expect(!verdict.allowed, "\(host)")
            #expect(verdict.rule == "built-in: protected \(destination)")
        }
        #expect(!open.decide(host: "innocent.test", port: 80, addresses: [IPAddress("169.254.169.254")!]).allowed)
        let explicit = try policy("egress:\n  allow: [169.254.169.254]").egress
        #expect(explicit.decide(host: "169.254.169.254", port: 80, addresses: []).allowed)
    }
}
