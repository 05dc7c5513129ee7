import StepGuardCore
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
        let issuer = JOSEFixture.shared
        let short = issuer.token()
        let long = issuer.token(claims: JOSEFixture.claims(["exp": .number(JSONNumber(JOSEFixture.now + 90 * 86400))]))
        let forever = issuer.token(claims: JOSEFixture.claims(["exp": nil]))
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

/// Names, encodings, pieces and pairs, with the secret scanner's real rules (issue #16, hole 8).
@Suite("Credential classifier: names, encodings, pairs")
struct CredentialFormClassifierTests {
    let classifier = CredentialClassifier(detector: try! SecretDetector.builtIn(prefilter: .keywords))
    static func random(_ count: Int, _ alphabet: String = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") -> String {
        String((0..<count).map { _ in alphabet.randomElement()! })
    }
    let pat = "gh" + "p_" + random(36)

    @Test func encodedAndCaseChangedValuesAreDecoded() {
        let forms = EncodedValue.forms(of: Data(pat.uppercased().utf8).base64EncodedString())
        #expect(forms.contains(pat.uppercased()))
        #expect(forms.contains(pat.uppercased().lowercased()))
        #expect(EncodedValue.base64Text(Self.random(40, "0123456789abcdef")) == nil, "binary is not text")
        let labelled = EncodedValue.forms(of: "Basic \"" + Data(("user:" + pat).utf8).base64EncodedString() + "\"")
        #expect(labelled.contains("user:" + pat))
        #expect(EncodedValue.forms(of: "0x" + Data(pat.utf8).map { String(format: "%02x", $0) }.joined()).contains(pat))
    }

    /// The byte-level shortcuts of the name checks answer as the character-level originals did.
    @Test func nameChecksOnBytesAgreeWithTheirOriginals() {
        let pieces = ["AWS", "_", "SECRET", "ACCESS", "KEY", "ID", "TOKEN", "API", "PAT", "PATH", "pass", "Word", "USER", "NAME", "é", "ſ", "X", "1"]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<3_000 {
            let name = (0..<Int.random(in: 1...5, using: &generator)).map { _ in pieces.randomElement(using: &generator)! }.joined()
            #expect(CredentialNames.pairStem(name) == CredentialNamesDifferentialTests.originalPairStem(name), "\(name)")
        }
        let piecePieces = ["TOKEN", "_", "A", "b", "1", "23", "PART", "KEY", "é", "_1", "9"]
        for _ in 0..<3_000 {
            let name = (0..<Int.random(in: 1...5, using: &generator)).map { _ in piecePieces.randomElement(using: &generator)! }.joined()
            let (new, old) = (CredentialNames.piece(name), CredentialNamesDifferentialTests.originalPiece(name))
            #expect(new?.stem == old?.stem && new?.order == old?.order, "\(name)")
        }
        #expect(CredentialNames.secretByName("DB_PAſſWORD", value: "hunter22") != nil, "ſ upper-cases to S")
        #expect(CredentialNames.secretByName("GITHUB_PATH", value: Self.random(40)) == nil)
        #expect(CredentialNames.secretByName("MY_api_KEY", value: Self.random(40)) != nil)
    }

    @Test func secretNamesNeedASecretLookingValue() {
        let cases: [(String, String, Bool)] = [
            ("DB_PASSWORD", "hunter22", true), ("DB_PASSWORD", "${DB_PASSWORD}", false), ("DB_PASSWORD", "short", false),
            ("APP_SECRET_KEY", Self.random(24), true), ("SECRET_NAME", "prod-db-credentials", false),
            ("NPM_TOKEN", Self.random(36), true), ("NPM_TOKEN", "aaaaaaaaaaaaaaaaaaaa", false), ("TOKEN_TTL", "3600", false),
            ("VAULT_TOKEN_PATH", "/run/secrets/token", false), ("GOOGLE_APPLICATION_CREDENTIALS", "/tmp/key.json", false),
            ("TOKEN_URL", "https://auth.example.org/oauth/token", false), ("PWD", "/home/runner/work", false),
        ]
        for (name, value, expected) in cases {
            #expect((CredentialNames.secretByName(name, value: value) != nil) == expected, "\(name)")
        }
    }

    @Test func jobScopedCITokensAreShortLivedButRealLongLivedTokensInThemAreNot() {
        let verdict = classifier.classify(environment: [
            "CI_JOB_TOKEN": Self.random(24), "CI_REGISTRY_PASSWORD": Self.random(24), "ACTIONS_RUNTIME_TOKEN": Self.random(200),
            "CI_BUILD_TOKEN": pat,
        ], action: .deny)
        #expect(verdict.longLived.map(\.variable) == ["CI_BUILD_TOKEN"])
        #expect(verdict.findings.filter { $0.lifetime == .shortLived }.map(\.variable) == ["ACTIONS_RUNTIME_TOKEN", "CI_JOB_TOKEN", "CI_REGISTRY_PASSWORD"])
    }

    @Test func pairsShareTheirClass() {
        let secret = Self.random(40)
        let temporary = classifier.classify(environment: ["AWS_ACCESS_KEY_ID": "AS" + "IA" + Self.random(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"),
                                                          "AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": Self.random(300)], action: .deny)
        #expect(temporary.decision == .allow)
        let lonely = classifier.classify(environment: ["AWS_SECRET_ACCESS_KEY": secret], action: .deny)
        #expect(lonely.longLived.map(\.variable) == ["AWS_SECRET_ACCESS_KEY"])
        let exemptSecret = CredentialClassifier(detector: try! SecretDetector.builtIn(prefilter: .keywords), allowVariables: [try! Glob("DB_PASSWORD")])
            .classify(environment: ["DB_PASSWORD": Self.random(16), "DB_USER": "app"], action: .strip)
        #expect(exemptSecret.stripped.isEmpty, "an exempt secret does not drag its user name along")
        let uuid = "\(UUID())".lowercased()
        let azure = classifier.classify(environment: ["AZURE_CLIENT_ID": uuid, "AZURE_TENANT_ID": uuid, "AZURE_CLIENT_SECRET": Self.random(40),
                                                      "AZURE_SUBSCRIPTION_ID": uuid], action: .strip)
        #expect(azure.stripped == ["AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID"], "the service principal goes as a whole")
        let split = classifier.classify(environment: ["PIECE_A": String(pat.prefix(10)), "PIECE_B": String(pat.dropFirst(10)), "PIECE_C": ""], action: .strip)
        #expect(split.stripped == ["PIECE_A", "PIECE_B", "PIECE_C"])
    }
}
