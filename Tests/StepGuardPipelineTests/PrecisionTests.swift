import Testing
@testable import StepGuardPipeline

/// Issue #21: patterns that were reported wrongly (or described wrongly) on real workflows, each with
/// a minimal workflow that must be reported and one that must not.
@Suite struct UnpinnedReferenceTests {
    @Test func sameRepositoryReferencesAreNotUnpinned() throws {
        let text = """
        on: push
        permissions: {contents: read}
        jobs:
          build:
            runs-on: x
            steps:
              - uses: ./.github/actions/build
                with: {token: "${{ secrets.API_TOKEN }}"}
          call:
            uses: ./.github/workflows/release.yml
            secrets: {token: "${{ secrets.API_TOKEN }}"}
        """
        #expect(try check(text).isEmpty)
    }

    @Test func dockerImagesArePinnedByDigest() throws {
        let digest = String(repeating: "0123456789abcdef", count: 4)
        let text = """
        on: push
        permissions: {contents: read}
        jobs:
          a:
            runs-on: x
            steps:
              - uses: docker://alpine:3.20
                with: {token: "${{ secrets.API_TOKEN }}"}
              - uses: docker://alpine@sha256:\(digest)
                with: {token: "${{ secrets.API_TOKEN }}"}
        """
        let findings = try check(text)
        #expect(compact(findings) == ["unpinned-action@7:15"])
        let finding = try #require(findings.first)
        #expect(finding.message.contains("not pinned to a digest"))
        #expect(finding.remedy.contains("@sha256:"))
        #expect(!finding.remedy.contains("commit SHA"))
    }

    @Test func reusableWorkflowAtABranchIsDescribedAsSuch() throws {
        let sha = String(repeating: "0123456789", count: 4)
        let text = """
        on: push
        permissions: {contents: read}
        jobs:
          moving:
            uses: octo/repo/.github/workflows/release.yml@main
            secrets: {token: "${{ secrets.API_TOKEN }}"}
          pinned:
            uses: octo/repo/.github/workflows/release.yml@\(sha)
            secrets: {token: "${{ secrets.API_TOKEN }}"}
        """
        let findings = try check(text)
        #expect(compact(findings) == ["unpinned-action@5:11"])
        let finding = try #require(findings.first)
        #expect(finding.message.contains("reusable workflow '.github/workflows/release.yml' of octo/repo is called at 'main'"))
        #expect(finding.remedy.contains("`./.github/workflows/release.yml`"))
    }

    @Test func thirdPartyActionMessageNamesTheRef() throws {
        let text = """
        on: push
        permissions: {contents: read}
        jobs:
          a:
            runs-on: x
            steps:
              - uses: some/action@v2
                with: {token: "${{ secrets.API_TOKEN }}"}
        """
        let finding = try #require(try check(text).first)
        #expect(finding.rule == .unpinnedAction)
        #expect(finding.message.contains("ref 'v2' can move"))
    }
}

@Suite struct PermissionsMissingTests {
    @Test func everyJobDeclaringItsOwnPermissionsIsEnough() throws {
        let text = """
        on: push
        jobs:
          a:
            runs-on: x
            permissions: {contents: read}
            steps:
              - run: make
          b:
            runs-on: x
            permissions: {}
            steps:
              - run: make test
        """
        #expect(try check(text).isEmpty)
    }

    @Test func oneJobWithoutPermissionsStillGetsTheDefault() throws {
        let text = """
        on: push
        jobs:
          a:
            runs-on: x
            permissions: {contents: read}
            steps:
              - run: make
          b:
            runs-on: x
            steps:
              - run: make test
        """
        #expect(compact(try check(text)) == ["permissions-missing@1:1"])
    }

    @Test func reusableWorkflowRunsWithTheCallersToken() throws {
        let callee = """
        on:
          workflow_call:
            inputs: {version: {type: string}}
        jobs:
          a:
            runs-on: x
            steps:
              - run: make
        """
        #expect(try check(callee).isEmpty)
        // Also triggered on its own: it then runs with the repository's default token.
        let both = callee.replacingOccurrences(of: "  workflow_call:", with: "  push:\n  workflow_call:")
        #expect(compact(try check(both)) == ["permissions-missing@1:1"])
    }
}
