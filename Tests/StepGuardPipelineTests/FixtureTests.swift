import Testing
@testable import StepGuardPipeline

/// The fixture workflows (modelled on real release workflows) and exactly what `check` reports on them.
@Suite struct FixtureTests {
    /// Each fixture and the findings `check` reports on it, in position order.
    static let expected: [(file: String, findings: [String])] = [
        ("cosign-release.yml", [
            "id-token-workflow-level@11:3",
            "unpinned-action@24:15",
            "unpinned-action@25:15",
            "unguarded-service-call@33:11",
            "unguarded-service-call@36:14",
        ]),
        ("npm-publish.yml", [
            "permissions-missing@2:1",
            "unguarded-service-call@29:14",
            "long-lived-credential@31:32",
        ]),
        ("pypi-publish.yml", [
            "unpinned-action@34:15",
            "long-lived-credential@36:25",
            "id-token-unused@42:7",
            "unguarded-service-call@51:11",
            "long-lived-credential@54:31",
        ]),
        ("docker-push.yml", [
            "unpinned-action@17:15",
            "long-lived-credential@20:25",
            "unpinned-action@21:15",
            "unguarded-service-call@25:11",
            "secrets-tojson@30:20",
            "unpinned-action@35:11",
            "secrets-inherit@36:14",
        ]),
        ("terraform-aws.yml", [
            "permissions-broad@12:3",
            "untrusted-checkout@20:16",
            "unpinned-action@21:15",
            "unpinned-action@22:15",
            "long-lived-credential@24:34",
            "long-lived-credential@25:38",
            "long-lived-credential@40:25",
            "unguarded-service-call@40:25",
            "long-lived-credential@43:34",
            "long-lived-credential@44:38",
        ]),
        ("guarded-release.yml", []),
        ("release.gitlab-ci.yml", [
            "unguarded-service-call@11:7",
            "long-lived-credential@19:46",
            "unguarded-service-call@20:7",
        ]),
    ]

    func checked(_ file: String) throws -> [Finding] { try WorkflowChecker.check(file: fixture(file)) }

    @Test(arguments: expected)
    func reportsExactlyTheseFindings(file: String, findings expected: [String]) throws {
        #expect(compact(try checked(file)) == expected)
    }

    @Test func keylessCosignReleaseNamesTheSigningCommand() throws {
        #expect(try checked("cosign-release.yml").first { $0.rule == .unguardedServiceCall }?.message.contains("cosign sign-blob") == true)
    }

    @Test func npmTokenPointsToTrustedPublishing() throws {
        let credential = try #require(try checked("npm-publish.yml").first { $0.rule == .longLivedCredential })
        #expect(credential.remedy.contains("npm trusted publishing"))
        #expect(credential.message.contains("secrets.NPM_TOKEN"))
    }

    @Test func pypiTokensPointToTrustedPublishing() throws {
        #expect(try checked("pypi-publish.yml").filter { $0.rule == .longLivedCredential }.allSatisfy { $0.remedy.contains("PyPI trusted publishing") })
    }

    @Test func dockerHubPasswordPointsToGHCR() throws {
        let credential = try #require(try checked("docker-push.yml").first { $0.rule == .longLivedCredential })
        #expect(credential.remedy.contains("ghcr.io"))
    }

    @Test func terraformUntrustedCheckoutIsCriticalAndKeysPointToARole() throws {
        let findings = try checked("terraform-aws.yml")
        #expect(findings.first { $0.rule == .untrustedCheckout }?.severity == .critical)
        #expect(findings.first { $0.rule == .longLivedCredential }?.remedy.contains("role-to-assume") == true)
    }

    @Test func directoryScanCoversEveryFixture() {
        let report = WorkflowChecker.check(paths: [fixturesDirectory])
        #expect(report.errors.isEmpty)
        #expect(report.files.count == Self.expected.count)
        #expect(report.findings.count == Self.expected.map(\.findings.count).reduce(0, +))
    }
}
