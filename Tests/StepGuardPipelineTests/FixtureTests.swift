import Testing
@testable import StepGuardPipeline

/// The fixture workflows (modelled on real release workflows) and exactly what `check` reports on them.
@Suite struct FixtureTests {
    @Test func keylessCosignRelease() throws {
        let findings = try WorkflowChecker.check(file: fixture("cosign-release.yml"))
        #expect(compact(findings) == [
            "id-token-workflow-level@11:3",
            "unpinned-action@24:15",
            "unpinned-action@25:15",
            "unguarded-service-call@33:11",
            "unguarded-service-call@36:14",
        ])
        #expect(findings.first { $0.rule == .unguardedServiceCall }?.message.contains("cosign sign-blob") == true)
    }

    @Test func npmPublishWithToken() throws {
        let findings = try WorkflowChecker.check(file: fixture("npm-publish.yml"))
        #expect(compact(findings) == [
            "permissions-missing@2:1",
            "unguarded-service-call@29:14",
            "long-lived-credential@31:32",
        ])
        let credential = try #require(findings.first { $0.rule == .longLivedCredential })
        #expect(credential.remedy.contains("npm trusted publishing"))
        #expect(credential.message.contains("secrets.NPM_TOKEN"))
    }

    @Test func pypiPublishWithTokens() throws {
        let findings = try WorkflowChecker.check(file: fixture("pypi-publish.yml"))
        #expect(compact(findings) == [
            "unpinned-action@34:15",
            "long-lived-credential@36:25",
            "id-token-unused@42:7",
            "unguarded-service-call@51:11",
            "long-lived-credential@54:31",
        ])
        #expect(findings.filter { $0.rule == .longLivedCredential }.allSatisfy { $0.remedy.contains("PyPI trusted publishing") })
    }

    @Test func dockerHubPushAndReusableWorkflow() throws {
        let findings = try WorkflowChecker.check(file: fixture("docker-push.yml"))
        #expect(compact(findings) == [
            "unpinned-action@17:15",
            "long-lived-credential@20:25",
            "unpinned-action@21:15",
            "unguarded-service-call@25:11",
            "secrets-tojson@30:20",
            "unpinned-action@35:11",
            "secrets-inherit@36:14",
        ])
        let credential = try #require(findings.first { $0.rule == .longLivedCredential })
        #expect(credential.remedy.contains("ghcr.io"))
    }

    @Test func terraformWithStaticAWSKeys() throws {
        let findings = try WorkflowChecker.check(file: fixture("terraform-aws.yml"))
        #expect(compact(findings) == [
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
        ])
        #expect(findings.first { $0.rule == .untrustedCheckout }?.severity == .critical)
        #expect(findings.first { $0.rule == .longLivedCredential }?.remedy.contains("role-to-assume") == true)
    }

    @Test func guardedReleaseIsClean() throws {
        #expect(try WorkflowChecker.check(file: fixture("guarded-release.yml")).isEmpty)
    }

    @Test func gitlabReleasePipeline() throws {
        let findings = try WorkflowChecker.check(file: fixture("release.gitlab-ci.yml"))
        #expect(compact(findings) == [
            "unguarded-service-call@11:7",
            "long-lived-credential@19:46",
            "unguarded-service-call@20:7",
        ])
    }

    @Test func directoryScanCoversEveryFixture() {
        let report = WorkflowChecker.check(paths: [fixturesDirectory])
        #expect(report.errors.isEmpty)
        #expect(report.files.count == 7)
        #expect(report.findings.count == 5 + 3 + 5 + 7 + 10 + 0 + 3)
    }
}
