import Testing
@testable import StepGuardPipeline

/// Issue #21: patterns that were reported wrongly (or described wrongly) on real workflows, each with
/// a minimal workflow that must be reported and one that must not.
@Suite struct UnpinnedReferenceTests {
    @Test func sameRepositoryReferencesAreNotUnpinned() throws {
        let text = gitHubWorkflow(jobs: """
          build:
            runs-on: x
            steps:
              - uses: ./.github/actions/build
                with: {token: "${{ secrets.API_TOKEN }}"}
          call:
            uses: ./.github/workflows/release.yml
            secrets: {token: "${{ secrets.API_TOKEN }}"}
        """)
        #expect(try check(text).isEmpty)
    }

    @Test func dockerImagesArePinnedByDigest() throws {
        let digest = String(repeating: "0123456789abcdef", count: 4)
        let text = singleJobWorkflow(steps: """
              - uses: docker://alpine:3.20
                with: {token: "${{ secrets.API_TOKEN }}"}
              - uses: docker://alpine@sha256:\(digest)
                with: {token: "${{ secrets.API_TOKEN }}"}
        """)
        let finding = try onlyFinding(text, is: "unpinned-action@7:15")
        #expect(finding.message.contains("not pinned to a digest"))
        #expect(finding.remedy.contains("@sha256:"))
        #expect(!finding.remedy.contains("commit SHA"))
    }

    @Test func reusableWorkflowAtABranchIsDescribedAsSuch() throws {
        let sha = String(repeating: "0123456789", count: 4)
        let text = gitHubWorkflow(jobs: """
          moving:
            uses: octo/repo/.github/workflows/release.yml@main
            secrets: {token: "${{ secrets.API_TOKEN }}"}
          pinned:
            uses: octo/repo/.github/workflows/release.yml@\(sha)
            secrets: {token: "${{ secrets.API_TOKEN }}"}
        """)
        let finding = try onlyFinding(text, is: "unpinned-action@5:11")
        #expect(finding.message.contains("reusable workflow '.github/workflows/release.yml' of octo/repo is called at 'main'"))
        #expect(finding.remedy.contains("`./.github/workflows/release.yml`"))
    }

    @Test func thirdPartyActionMessageNamesTheRef() throws {
        let text = singleJobWorkflow(steps: """
              - uses: some/action@v2
                with: {token: "${{ secrets.API_TOKEN }}"}
        """)
        let finding = try onlyFinding(text, is: "unpinned-action@7:15")
        #expect(finding.message.contains("ref 'v2' can move"))
    }
}

@Suite struct PermissionsMissingTests {
    /// No workflow-level permissions; job `a` declares read-only ones, job `b` declares `b` (nothing when nil).
    func twoJobs(b: String?) -> String {
        let permissions = b.map { "\n    permissions: \($0)" } ?? ""
        return gitHubWorkflow(permissions: nil, jobs: """
          a:
            runs-on: x
            permissions: {contents: read}
            steps:
              - run: make
          b:
            runs-on: x\(permissions)
            steps:
              - run: make test
        """)
    }

    @Test func everyJobDeclaringItsOwnPermissionsIsEnough() throws {
        #expect(try check(twoJobs(b: "{}")).isEmpty)
    }

    @Test func oneJobWithoutPermissionsStillGetsTheDefault() throws {
        #expect(compact(try check(twoJobs(b: nil))) == ["permissions-missing@1:1"])
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

@Suite struct PersistCredentialsTests {
    /// A job that checks out with `checkout` (a `uses:` line) and uploads `path`.
    func workflow(checkout: String, checkoutPath: String? = nil, upload: String) -> String {
        let with = checkoutPath.map { "\n        with: {path: \($0)}" } ?? ""
        return singleJobWorkflow(job: "build", steps: """
              - uses: \(checkout)\(with)
              - run: make
              - uses: actions/upload-artifact@v4
                with:
                  path: \(upload)
        """)
    }

    @Test func oldCheckoutUploadingTheWorkspaceIsReported() throws {
        #expect(compact(try check(workflow(checkout: "actions/checkout@v4", upload: "."))) == ["checkout-persist-credentials@7:15"])
        #expect(compact(try check(workflow(checkout: "actions/checkout@v5.0.0", upload: "'**/*.log'"))) == ["checkout-persist-credentials@7:15"])
        // The checkout went into the uploaded directory.
        #expect(compact(try check(workflow(checkout: "actions/checkout@v4", checkoutPath: "src", upload: "src/"))) == ["checkout-persist-credentials@7:15"])
    }

    @Test func checkoutV6KeepsTheCredentialOutsideGitConfig() throws {
        let sha = String(repeating: "0123456789", count: 4)
        #expect(try check(workflow(checkout: "actions/checkout@v6", upload: ".")).isEmpty)
        #expect(try check(workflow(checkout: "actions/checkout@v6.0.1", upload: ".")).isEmpty)
        #expect(try check(workflow(checkout: "actions/checkout@\(sha) # v6.0.0", upload: ".")).isEmpty)
        // A SHA without a version comment, or commented with an older version, is still reported.
        #expect(compact(try check(workflow(checkout: "actions/checkout@\(sha)", upload: "."))) == ["checkout-persist-credentials@7:15"])
        #expect(compact(try check(workflow(checkout: "actions/checkout@\(sha) # v4.2.2", upload: "."))) == ["checkout-persist-credentials@7:15"])
        #expect(compact(try check(workflow(checkout: "actions/checkout@v60x", upload: "."))) == ["checkout-persist-credentials@7:15"])
    }

    @Test func uploadsThatExcludeGitAreNotReported() throws {
        #expect(try check(workflow(checkout: "actions/checkout@v4", upload: "dist/")).isEmpty)
        #expect(try check(workflow(checkout: "actions/checkout@v4", upload: "|\n            build/out\n            ./reports")).isEmpty)
        #expect(try check(workflow(checkout: "actions/checkout@v4", upload: "|\n            .\n            !.git")).isEmpty)
        // Checked out into src/, the workspace's dist/ holds no .git.
        #expect(try check(workflow(checkout: "actions/checkout@v4", checkoutPath: "src", upload: "dist")).isEmpty)
        // An uploaded list with one path that holds .git is reported.
        #expect(compact(try check(workflow(checkout: "actions/checkout@v4", upload: "|\n            dist\n            .git/config"))) == ["checkout-persist-credentials@7:15"])
    }
}

@Suite struct SecretNameTests {
    @Test func userNamesAreNotPasswords() throws {
        let text = gitHubWorkflow(jobs: """
          push:
            runs-on: x
            env:
              DOCKERHUB_USER: ${{ secrets.DOCKERHUB_USER }}
              REGISTRY_USERNAME: ${{ secrets.DOCKERHUB_USERNAME }}
              DOCKERHUB_PASSWORD: ${{ secrets.DOCKERHUB_PASSWORD }}
            steps:
              - run: make
        """)
        #expect(try onlyFinding(text, is: "long-lived-credential@9:31").message.contains("secrets.DOCKERHUB_PASSWORD"))
        #expect(!CredentialKind.isUserName("DOCKERHUB_TOKEN") && CredentialKind.isUserName("NPM_USER"))
        let gitlab = "publish:\n  script:\n    - docker login -u \"$DOCKERHUB_USERNAME\" -p \"$DOCKERHUB_TOKEN\"\n"
        #expect(compact(try check(gitlab, path: ".gitlab-ci.yml")) == ["long-lived-credential@3:49"])
    }

    @Test func pnPublishIsFoundLikeNpmPublish() throws {
        let text = singleJobWorkflow(job: "release", steps: """
              - run: pn publish --no-git-checks
                env: {NPM_TOKEN: "${{ secrets.NPM_TOKEN }}"}
              - run: pnpm publish
              - run: echo 'pn publish'
        """)
        #expect(compact(try check(text)) == ["unguarded-service-call@7:14", "long-lived-credential@8:31", "unguarded-service-call@9:14"])
    }

    @Test func passwordsFetchedAtRunTimeAreHeldCredentials() throws {
        let text = singleJobWorkflow(job: "deploy", steps: """
              - uses: some/deployer@v1
              - run: |
                  DB=$(aws ssm get-parameter --name /db/pw --with-decryption --query Parameter.Value)
                  aws ssm get-parameter --name /app/region
                  KEY=$(aws --region eu-west-1 secretsmanager get-secret-value --secret-id deploy)
                  stepguard run -- aws secretsmanager get-secret-value --secret-id guarded
        """)
        let findings = try check(text)
        #expect(compact(findings) == [
            "unpinned-action@7:15",
            "long-lived-credential@9:16",
            "long-lived-credential@11:17",
            "unguarded-service-call@11:17",
        ])
        #expect(findings.contains { $0.message.contains("`aws ssm get-parameter --with-decryption` fetches a stored secret from AWS SSM Parameter Store") })
        // The same job without the fetches holds nothing: the unpinned action is not reported.
        let plain = text.components(separatedBy: "\n").prefix(8).joined(separator: "\n") + "\n          aws ssm get-parameter --name /app/region\n"
        #expect(try check(plain).isEmpty)
        let gitlab = "deploy:\n  script:\n    - export PW=$(aws ssm get-parameters --names pw --with-decryption)\n"
        #expect(compact(try check(gitlab, path: ".gitlab-ci.yml")) == ["long-lived-credential@3:19"])
    }
}

@Suite struct WriteTokenTests {
    func workflow(top: String, job: String?) -> String {
        let jobPermissions = job.map { "\n    permissions: \($0)" } ?? ""
        return """
        on: pull_request
        permissions: \(top)
        jobs:
          label:
            runs-on: x\(jobPermissions)
            steps:
              - uses: some/labeler@v1
              - uses: actions/labeler@v5
        """
    }

    @Test func writeScopedTokenIsAHeldCredential() throws {
        let jobWrite = try onlyFinding(workflow(top: "{contents: read}", job: "{pull-requests: write}"), is: "unpinned-action@8:15")
        #expect(jobWrite.message.contains("which holds a write-scoped GITHUB_TOKEN"))
        #expect(compact(try check(workflow(top: "{contents: write}", job: nil))) == ["unpinned-action@7:15"])
        // write-all also grants id-token: write, reported at the top level.
        #expect(compact(try check(workflow(top: "write-all", job: nil))) == ["id-token-workflow-level@2:14", "permissions-broad@2:14", "unpinned-action@7:15"])
    }

    @Test func readOnlyTokenHoldsNothing() throws {
        #expect(try check(workflow(top: "{contents: read}", job: "{pull-requests: read}")).isEmpty)
        // The job's own read-only permissions replace the workflow's write scopes.
        #expect(try check(workflow(top: "{contents: write}", job: "{contents: read}")).isEmpty)
        // read-all is only reported as broad (low): it holds no write scope.
        #expect(try check(workflow(top: "read-all", job: nil)).map(\.rule) == [.permissionsBroad])
    }
}

@Suite struct ParsingTests {
    func gitlab(merges: String, own: String = "") -> String {
        """
        .quiet: &quiet
          image: alpine
          before_script: [echo quiet]
        .publish: &publish
          image: node
          before_script: [npm publish]
        job:
        \(merges)\(own)
          script: [make]
        """
    }

    @Test func repeatedMergeKeysAreAcceptedAndTheLastWins() throws {
        #expect(compact(try check(gitlab(merges: "  <<: *quiet\n  <<: *publish"), path: ".gitlab-ci.yml")) == ["unguarded-service-call@6:19"])
        #expect(try check(gitlab(merges: "  <<: *publish\n  <<: *quiet"), path: ".gitlab-ci.yml").isEmpty)
        // Three merge keys, and a merge list (whose earlier entry wins).
        #expect(compact(try check(gitlab(merges: "  <<: *quiet\n  <<: *quiet\n  <<: *publish"), path: ".gitlab-ci.yml")) == ["unguarded-service-call@6:19"])
        #expect(compact(try check(gitlab(merges: "  <<: [*publish, *quiet]"), path: ".gitlab-ci.yml")) == ["unguarded-service-call@6:19"])
        // A single merge key is resolved too (before, the merged script was never read).
        #expect(compact(try check(gitlab(merges: "  <<: *publish"), path: ".gitlab-ci.yml")) == ["unguarded-service-call@6:19"])
        // As in GitLab (Ruby Psych), keys are applied in file order: an own key after the merges wins,
        // a merge after an own key wins over it (a script hidden that way is still read).
        #expect(try check(gitlab(merges: "  <<: *quiet\n  <<: *publish", own: "\n  before_script: [echo own]"), path: ".gitlab-ci.yml").isEmpty)
        #expect(compact(try check(gitlab(merges: "  before_script: [echo own]\n  <<: *publish"), path: ".gitlab-ci.yml")) == ["unguarded-service-call@6:19"])
    }

    @Test func otherDuplicateKeysStillFailWithTheirLocation() throws {
        let twice = gitlab(merges: "  <<: *quiet\n  <<: *publish", own: "\n  script: [echo one]")
        #expect {
            try check(twice, path: ".gitlab-ci.yml")
        } throws: { error in
            guard let error = error as? PipelineError else { return false }
            return error.isInvalidInput && error.location.line == 10 && error.location.column == 3
                && error.description.contains("'script' appear twice") && !error.description.contains("\n")
                && error.description.contains("near `script: [echo one]`")
        }
        // A quoted "<<" is an ordinary key: two of them are duplicates.
        #expect(throws: PipelineError.self) { try check("job:\n  \"<<\": 1\n  \"<<\": 2\n  script: [x]\n", path: ".gitlab-ci.yml") }
    }

    @Test func parseErrorsCarryTheRealPositionAndOneLine() throws {
        let padding = (1...30).map { "      - run: echo step \($0)" }.joined(separator: "\n")
        let text = "on: push\njobs:\n  a:\n    steps:\n\(padding)\n      - run: [unclosed\n\(padding)\n"
        #expect {
            try check(text, path: "long.yml")
        } throws: { error in
            guard let error = error as? PipelineError else { return false }
            return error.location.line > 30 && error.location.column > 1 && !error.description.contains("\n")
                && !error.description.contains("echo step 2") && error.description.count < 300
        }
        let token = "tok" + String(repeating: "x7", count: 12)
        #expect {
            try check("on: push\njobs: {a: [\(token)\n", path: "secret.yml")
        } throws: { error in
            guard let error = error as? PipelineError else { return false }
            return !error.description.contains(token) && !error.description.contains("\n")
        }
    }
}
