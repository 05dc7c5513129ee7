import Foundation
import Testing
@testable import StepGuardPolicy

/// Loads `yaml` and returns its diagnostics (empty when valid).
func diagnostics(_ yaml: String) -> [PolicyDiagnostic] {
    do {
        _ = try PolicyLoader.load(yaml: yaml, source: "policy.yaml")
        return []
    } catch {
        return error.diagnostics
    }
}

@Suite struct PolicyLoaderTests {
    @Test func fullPolicyLoads() throws {
        let policy = try PolicyLoader.load(yaml: """
        version: 1
        mode: audit
        on_violation: fail
        grace_period: 2s
        identity:
          token: github
          issuer: https://token.actions.githubusercontent.com
          audience: stepguard
          jwks: https://token.actions.githubusercontent.com/.well-known/jwks
          algorithms: [RS256]
          claims: { repository_id: 957014466, ref: ["refs/heads/main", "refs/tags/v*"], repository: "octo/*" }
          lifetime: { max_ttl: 15m, max_age: 10m, leeway: 30s, min_remaining: 1m }
        credentials: { long_lived: strip, allow_vars: ["TEST_*"] }
        egress:
          default: deny
          allow: [github.com, "*.githubusercontent.com", "registry.npmjs.org:443", 10.1.0.0/16]
          deny: [169.254.169.254]
        services:
          - service: sigstore-fulcio
            allow: { claims: { ref: "refs/tags/v*" }, credential: workload, window: 5m }
        network:
          resolve: { "fulcio.sigstore.dev:443": "127.0.0.1:8443" }
        isolation: required
        limits: { processes: 512 }
        steps: { publish: { egress: { allow: [registry.npmjs.org] } }, build: }
        """, source: "policy.yaml")
        #expect(policy.mode == .audit)
        #expect(policy.onViolation == .fail)
        #expect(policy.gracePeriod.milliseconds == 2000)
        let identity = try #require(policy.identity)
        #expect(identity.token == .github)
        #expect(identity.algorithms == ["RS256"])
        #expect(identity.claims["repository_id"] == [.number(957014466)])
        #expect(identity.claims["ref"]?.count == 2)
        #expect(identity.lifetime.maxTTL?.milliseconds == 900_000)
        #expect(policy.credentials.longLived == .strip)
        #expect(policy.egress.allow.count == 4)
        #expect(policy.services.first?.allow.first?.window?.milliseconds == 300_000)
        #expect(policy.network.resolve[try HostPort("fulcio.sigstore.dev:443")] == (try HostPort("127.0.0.1:8443")))
        #expect(policy.isolation == .required)
        #expect(policy.limits.processes == 512)
        #expect(Set(policy.steps.keys) == ["publish", "build"])
    }

    @Test func unknownKeySuggestsNearest() throws {
        let found = diagnostics("version: 1\negres:\n  default: deny\n")
        let diagnostic = try #require(found.first)
        #expect(found.count == 1)
        #expect(diagnostic.location == SourceLocation(file: "policy.yaml", line: 2, column: 1))
        #expect(diagnostic.message.contains("unknown key 'egres'"))
        #expect(diagnostic.message.contains("did you mean 'egress'?"))
    }

    @Test func unknownNestedKey() throws {
        let found = diagnostics("version: 1\negress:\n  default: deny\n  alow: [x.com]\n")
        #expect(found.map(\.location.line) == [4])
        #expect(found.first?.location.column == 3)
        #expect(found.first?.message.contains("did you mean 'allow'?") == true)
    }

    @Test func wrongType() throws {
        let found = diagnostics("version: 1\negress: [github.com]\n")
        let diagnostic = try #require(found.first)
        #expect(diagnostic.location.line == 2 && diagnostic.location.column == 9)
        #expect(diagnostic.message.contains("egress must be a mapping, not a list"))
    }

    @Test func badEnumValue() throws {
        let found = diagnostics("version: 1\nmode: enforced\n")
        #expect(found.first?.location.line == 2)
        #expect(found.first?.message.contains("did you mean 'enforce'?") == true)
        #expect(found.first?.expected == "one of: enforce, audit")
    }

    @Test func badDuration() throws {
        let found = diagnostics("version: 1\ngrace_period: 5 minutes\n")
        #expect(found.first?.location == SourceLocation(file: "policy.yaml", line: 2, column: 15))
        #expect(found.first?.message.contains("bad grace_period") == true)
    }

    @Test func badGlob() throws {
        let found = diagnostics("version: 1\ncredentials:\n  allow_vars: ['TOKEN\\']\n")
        #expect(found.first?.location.line == 3)
        #expect(found.first?.message.contains("lone '\\'") == true)
    }

    @Test func badCIDRAndHostPort() throws {
        let found = diagnostics("""
        version: 1
        egress:
          allow: [10.0.0.0/33, "example.com:99999", "bad host"]
        network:
          resolve: { "fulcio.sigstore.dev": "127.0.0.1:8443", "rekor.sigstore.dev:443": "rekor.local:443" }
        """)
        #expect(found.count == 5)
        #expect(found.allSatisfy { $0.location.line == 3 || $0.location.line == 5 })
        #expect(found.contains { $0.message.contains("bad prefix length") })
        #expect(found.contains { $0.message.contains("bad port '99999'") })
        #expect(found.contains { $0.message.contains("has no port") })
        #expect(found.contains { $0.message.contains("not an IP address and port") })
    }

    @Test func reportsEveryProblemInOrder() {
        let found = diagnostics("version: 1\nmode: loud\non_violation: explode\nisolation: maybe\n")
        #expect(found.map(\.location.line) == [2, 3, 4])
    }

    @Test func missingVersionAndRequiredIdentityKeys() {
        let found = diagnostics("identity:\n  audience: x\n")
        #expect(found.contains { $0.message.contains("missing the required key 'version'") && $0.location.line == 1 })
        #expect(found.contains { $0.message.contains("missing the required key 'issuer'") && $0.location.line == 2 })
    }

    @Test func rejectsUnsafeAlgorithms() {
        let found = diagnostics("version: 1\nidentity:\n  issuer: https://issuer.test\n  audience: a\n  algorithms: [none, HS256, RS256, XY1]\n")
        #expect(found.count == 3)
        #expect(found.filter { $0.message.contains("never accepted") }.count == 2)
        #expect(found.allSatisfy { $0.location.line == 5 })
    }

    @Test func yamlSyntaxAndDuplicateKeys() {
        let syntax = diagnostics("version: 1\negress: {default: deny\n")
        #expect(syntax.first?.message.contains("YAML syntax error") == true)
        let duplicate = diagnostics("version: 1\nmode: audit\nmode: enforce\n")
        #expect(duplicate.first?.message.contains("duplicate key 'mode'") == true)
    }

    @Test func unsupportedVersion() {
        #expect(diagnostics("version: 2\n").first?.message.contains("unsupported policy version 2") == true)
    }

    @Test func stepOverrideWithUnknownKey() {
        let found = diagnostics("version: 1\nsteps:\n  publish:\n    egres: {}\n")
        #expect(found.first?.location.line == 4)
        #expect(found.first?.message.contains("unknown key 'egres' in steps.publish") == true)
    }

    @Test func filePathsResolveAgainstThePolicyDirectory() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sg-policy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("certs"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try "ca".write(to: directory.appendingPathComponent("certs/ca.pem"), atomically: true, encoding: .utf8)
        let file = directory.appendingPathComponent("p.yaml")
        try "version: 1\nnetwork:\n  upstream_ca: certs/ca.pem\n".write(to: file, atomically: true, encoding: .utf8)
        let policy = try PolicyLoader.load(file: file.path)
        #expect(policy.network.upstreamCA == directory.appendingPathComponent("certs/ca.pem").path)
        try "version: 1\nnetwork:\n  upstream_ca: certs/missing.pem\n".write(to: file, atomically: true, encoding: .utf8)
        #expect(throws: PolicyError.self) { try PolicyLoader.load(file: file.path) }
    }
}

@Suite struct StepOverrideTests {
    let policy: Policy

    init() throws {
        policy = try PolicyLoader.load(yaml: """
        version: 1
        identity: { issuer: "https://issuer.test", audience: a, claims: { ref: refs/heads/main } }
        egress: { default: deny, allow: [github.com] }
        steps:
          publish:
            mode: audit
            egress: { allow: [registry.npmjs.org] }
            identity: { claims: { ref: "refs/tags/v*" } }
          open:
            egress: { default: allow }
        """, source: "policy.yaml")
    }

    @Test func listsAddAndScalarsReplace() throws {
        let publish = try policy.effective(forStep: "publish")
        #expect(publish.mode == .audit)
        #expect(publish.egress.allow.map(\.description) == ["github.com", "registry.npmjs.org"])
        #expect(publish.egress.defaultAction == .deny)
        #expect(publish.identity?.claims["ref"] == [.glob(try Glob("refs/tags/v*"))])
        #expect(try policy.effective(forStep: "open").egress.defaultAction == .allow)
        #expect(try policy.effective(forStep: nil) == policy)
    }

    @Test func unknownStepIsAnError() throws {
        do {
            _ = try policy.effective(forStep: "publsh")
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("did you mean 'publish'?"))
            #expect(error.diagnostics.first?.expected == "one of: open, publish")
        }
    }
}

@Suite struct DefaultPolicyTests {
    @Test func builtInMatchesTheShippedFile() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let shipped = try String(contentsOf: root.appendingPathComponent("rules/policies/default.yaml"), encoding: .utf8)
        #expect(shipped == Policy.defaultPolicyYAML)
    }

    @Test func builtInDecisions() {
        let policy = Policy.builtInDefault()
        #expect(policy.identity == nil)
        #expect(policy.credentials.longLived == .deny)
        #expect(policy.egress.decide(host: "registry.npmjs.org", port: 443, addresses: []).allowed)
        #expect(!policy.egress.decide(host: "169.254.169.254", port: 80, addresses: []).allowed)
    }

    @Test func renderingShowsDefaults() throws {
        let text = Policy.builtInDefault().renderedYAML()
        #expect(text.contains("long_lived: deny"))
        #expect(text.contains("default: allow"))
        #expect(text.contains("identity: none"))
    }
}

@Suite struct ReadmeSyncTests {
    @Test func everyPolicyKeyIsDocumented() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        for key in PolicyLoader.topLevelKeys {
            #expect(readme.contains("| `\(key)` |"), "README's policy reference lacks '\(key)'")
        }
        for mode in EnforcementMode.allCases + [] { #expect(readme.contains("`\(mode.rawValue)`")) }
        for action in ViolationAction.allCases { #expect(readme.contains("`\(action.rawValue)`")) }
        for isolation in IsolationMode.allCases { #expect(readme.contains("`\(isolation.rawValue)`")) }
        for credential in ServiceAllowance.Credential.allCases { #expect(readme.contains(credential.rawValue)) }
        for path in FilesystemPolicy.defaultHidden { #expect(readme.contains("`\(path)`")) }
        for destination in EgressPolicy.protectedDestinations { #expect(readme.contains("`\(destination)`"), "README's Egress section lacks '\(destination)'") }
    }
}
