import Foundation
import StepGuardPolicy
import StepGuardSecrets
import Testing
@testable import StepGuardIdentity

/// A detector standing in for the secret scanner's rules in tests that only exercise the classifier's decisions.
struct PrefixDetector: CredentialDetector {
    func credentials(in value: String) -> [CredentialMatch] {
        var found: [CredentialMatch] = []
        if value.contains("ghp_") { found.append(CredentialMatch(ruleID: "github-pat", description: "GitHub personal access token", lifetime: .longLived)) }
        if value.contains("AKIA") { found.append(CredentialMatch(ruleID: "aws-access-key-id", description: "AWS access key id", lifetime: .longLived)) }
        if value.contains("ghs_") { found.append(CredentialMatch(ruleID: "github-app-installation-token", description: "GitHub installation token", lifetime: .shortLived)) }
        return found
    }
}

@Suite("Credential classifier decisions")
struct CredentialClassifierTests {
    let environment = [
        "GH_PAT": "ghp_" + String(repeating: "a", count: 36),
        "AWS_ACCESS_KEY_ID": "AKIA" + String(repeating: "B", count: 16),
        "GITHUB_TOKEN": "ghs_" + String(repeating: "c", count: 36),
        "PATH": "/usr/bin:/bin",
        "DEPLOY_KEY_ALLOWED": "ghp_" + String(repeating: "d", count: 36),
    ]

    @Test func denyNamesVariablesNeverValues() {
        let verdict = CredentialClassifier(detector: PrefixDetector(), allowVariables: [try! Glob("DEPLOY_KEY_*")]).classify(environment: environment, action: .deny)
        #expect(verdict.decision == .deny)
        #expect(verdict.longLived.map(\.variable) == ["AWS_ACCESS_KEY_ID", "GH_PAT"])
        #expect(verdict.findings.first { $0.variable == "GITHUB_TOKEN" }?.lifetime == .shortLived)
        #expect(verdict.findings.first { $0.variable == "DEPLOY_KEY_ALLOWED" }?.exempted == true)
        #expect(verdict.summary == "blocked: long-lived credentials in the step environment: AWS_ACCESS_KEY_ID, GH_PAT")
        for value in environment.values where value.count > 10 {
            #expect(!verdict.summary.contains(value))
            #expect(!verdict.findings.map(\.reason).joined().contains(value))
        }
    }

    @Test func stripRemovesOnlyNonExemptLongLived() {
        let verdict = CredentialClassifier(detector: PrefixDetector(), allowVariables: [try! Glob("DEPLOY_KEY_*")]).classify(environment: environment, action: .strip)
        #expect(verdict.decision == .allow)
        #expect(verdict.stripped == ["AWS_ACCESS_KEY_ID", "GH_PAT"])
        #expect(verdict.environment["GH_PAT"] == nil)
        #expect(verdict.environment["GITHUB_TOKEN"] != nil)
        #expect(verdict.environment["DEPLOY_KEY_ALLOWED"] != nil)
        #expect(verdict.environment["PATH"] == "/usr/bin:/bin")
    }

    @Test func allowKeepsEverything() {
        let verdict = CredentialClassifier(detector: PrefixDetector()).classify(environment: environment, action: .allow)
        #expect(verdict.decision == .allow)
        #expect(verdict.environment == environment)
        #expect(verdict.longLived.count == 3)
    }

    @Test func jwtLifetimeDecidesItsClass() {
        let issuer = TestIssuer.shared
        let short = issuer.token()
        let long = issuer.token(claims: TestIssuer.claims(["exp": .number(JSONNumber(TestIssuer.now + 90 * 86400))]))
        let forever = issuer.token(claims: TestIssuer.claims(["exp": nil]))
        let verdict = CredentialClassifier(detector: PrefixDetector(), maxJWTLifetime: 3600)
            .classify(environment: ["ID_TOKEN": short, "SERVICE_JWT": long, "NO_EXP": forever], action: .deny)
        #expect(verdict.findings.first { $0.variable == "ID_TOKEN" }?.lifetime == .shortLived)
        #expect(verdict.longLived.map(\.variable) == ["NO_EXP", "SERVICE_JWT"])
        #expect(verdict.decision == .deny)
    }

    @Test func cleanEnvironmentIsAllowed() {
        let verdict = CredentialClassifier(detector: PrefixDetector()).classify(environment: ["HOME": "/root", "CI": "true"], action: .deny)
        #expect(verdict.decision == .allow)
        #expect(verdict.findings.isEmpty)
        #expect(verdict.summary == "no long-lived credentials in the step environment")
    }
}
