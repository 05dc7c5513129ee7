import Foundation
import Testing
@testable import StepGuardPipeline

/// A throw-away repository checkout (`ROOT/.github/workflows/w.yml` and the files its steps run),
/// removed when the test ends.
struct Checkout: ~Copyable {
    let root: String

    init(_ files: [String: String]) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("sg-repo-\(UUID().uuidString)").path
        for (path, text) in files {
            let full = (root as NSString).appendingPathComponent(path)
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: full, atomically: true, encoding: .utf8)
        }
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    /// Checks `.github/workflows/w.yml` (written with `text`) inside the checkout.
    func check(_ text: String, name: String = "w.yml") throws -> [Finding] {
        let path = (root as NSString).appendingPathComponent(".github/workflows/" + name)
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return try WorkflowChecker.check(file: path)
    }
}

/// A job with `id-token: write` whose steps are `steps` (YAML list items, indented 6).
func idTokenJob(_ steps: String) -> String {
    """
    on: push
    permissions: {contents: read}
    jobs:
      release:
        runs-on: ubuntu-latest
        permissions:
          id-token: write
        steps:
    \(steps)
    """
}

/// Issue #21: `id-token-unused` sees the OIDC consumers real release jobs use.
@Suite struct OIDCConsumerTests {
    func unused(_ findings: [Finding]) -> Bool { findings.contains { $0.rule == .idTokenUnused } }

    @Test func actionsThatRequestTheTokenThemselves() throws {
        #expect(!unused(try check(idTokenJob("      - uses: actions/publish-immutable-action@4bc8754ffc40f27910afb20287dbbbb675a4e978"))))
        #expect(!unused(try check(idTokenJob("      - uses: CodSpeedHQ/action@0123456789012345678901234567890123456789\n        with: {run: make bench}"))))
        // An action configured for OIDC by its inputs (a token-exchange broker).
        #expect(!unused(try check(idTokenJob("      - uses: some/sts-exchange@0123456789012345678901234567890123456789\n        with: {audience: https://sts.example}"))))
        #expect(unused(try check(idTokenJob("      - uses: actions/checkout@v6\n      - run: make test"))))
        // Verifying needs no token.
        #expect(unused(try check(idTokenJob("      - run: gh attestation verify dist/x --owner o"))))
        #expect(unused(try check(idTokenJob("      - uses: codecov/codecov-action@v5\n        with: {use_oidc: false}"))))
        #expect(!unused(try check(idTokenJob("      - uses: codecov/codecov-action@v5\n        with: {use_oidc: true}"))))
        #expect(!unused(try check(idTokenJob("      - uses: hynek/build-and-inspect-python-package@v2\n        with: {attest-build-provenance-github: 'true'}"))))
        // Any other third-party action may request the token itself: not judged.
        #expect(!unused(try check(idTokenJob("      - uses: some/pr-push@0123456789012345678901234567890123456789"))))
    }

    @Test func scriptsThatSignOrPublishKeylessly() throws {
        #expect(!unused(try check(idTokenJob("      - run: python -m sigstore sign dist/*"))))
        #expect(!unused(try check(idTokenJob("      - run: uv run sigstore --staging sign README.md"))))
        #expect(!unused(try check(idTokenJob("      - run: npm publish --provenance --access public"))))
        #expect(!unused(try check(idTokenJob("      - run: pnpm changeset publish"))))
        #expect(!unused(try check(idTokenJob("      - run: ./release.sh\n        env: {NPM_CONFIG_PROVENANCE: true}"))))
        #expect(unused(try check(idTokenJob("      - run: python -m sigstore verify identity dist/x"))))
    }

    @Test func repositoryScriptsMakefilesAndPackageScriptsAreRead() throws {
        let consumers = try Checkout([
            "Makefile": "sign:\n\tcurl -H \"Authorization: bearer $$ACTIONS_ID_TOKEN_REQUEST_TOKEN\" \"$$ACTIONS_ID_TOKEN_REQUEST_URL\"\n",
            "scripts/vault-login.sh": "#!/bin/sh\nvault write auth/jwt/login role=ci jwt=\"$VAULT_ID_TOKEN\"\n",
            "package.json": #"{"scripts": {"release": "npm publish --provenance"}}"#,
        ])
        #expect(!unused(try consumers.check(idTokenJob("      - run: make sign"))))
        #expect(!unused(try consumers.check(idTokenJob("      - run: ./scripts/vault-login.sh"))))
        #expect(!unused(try consumers.check(idTokenJob("      - run: npm run release"))))
        let others = try Checkout([
            "tools/Makefile": "test:\n\tgo test ./...\n",
            "scripts/build.sh": "#!/bin/sh\ngo build ./...\n",
            "package.json": #"{"scripts": {"build": "tsc"}}"#,
        ])
        #expect(unused(try others.check(idTokenJob("      - run: make -C tools test"))))
        #expect(unused(try others.check(idTokenJob("      - run: bash scripts/build.sh"))))
        #expect(unused(try others.check(idTokenJob("      - run: npm run build"))))
        // A path that leaves the checkout is not read.
        #expect(unused(try others.check(idTokenJob("      - run: sh ../../etc/profile.sh"))))
    }

    @Test func repositoryCodeThatRequestsTheTokenMakesItsTestsConsumers() throws {
        let library = try Checkout(["src/ambient.py": "import os\nURL = os.environ['ACTIONS_ID_TOKEN_REQUEST_URL']\n"])
        #expect(!unused(try library.check(idTokenJob("      - run: python -m pytest"))))
        // Steps that run none of the repository's code still do not use it.
        #expect(unused(try library.check(idTokenJob("      - run: echo done"))))
        let plain = try Checkout(["src/app.py": "print('hi')\n"])
        #expect(unused(try plain.check(idTokenJob("      - run: python -m pytest"))))
    }

    @Test func localActionsAreReadWhenTheCheckoutIsThere() throws {
        let checkout = try Checkout([
            ".github/actions/sign/action.yml": "name: sign\nruns:\n  using: composite\n  steps:\n    - run: cosign sign-blob --yes x\n      shell: bash\n",
            ".github/actions/nested/action.yml": "name: n\nruns:\n  using: composite\n  steps:\n    - uses: ./.github/actions/sign\n",
            ".github/actions/lint/action.yml": "name: lint\nruns:\n  using: composite\n  steps:\n    - run: make lint\n      shell: bash\n",
            ".github/actions/js/action.yml": "name: js\nruns:\n  using: node20\n  main: index.js\n",
        ])
        #expect(!unused(try checkout.check(idTokenJob("      - uses: ./.github/actions/sign"))))
        #expect(!unused(try checkout.check(idTokenJob("      - uses: ./.github/actions/nested"))))
        #expect(unused(try checkout.check(idTokenJob("      - uses: ./.github/actions/lint"))))
        // A JavaScript action may call getIDToken: not judged.
        #expect(!unused(try checkout.check(idTokenJob("      - uses: ./.github/actions/js"))))
        // Without the checkout a local action cannot be read: not judged either.
        #expect(!unused(try check(idTokenJob("      - uses: ./.github/actions/lint"))))
    }
}

@Suite struct TemplateInjectionTests {
    @Test func attackerControlledFieldsInScripts() throws {
        let text = gitHubWorkflow(on: "[issues, pull_request_target]", jobs: """
          triage:
            runs-on: x
            steps:
              - run: echo "${{ github.event.issue.title }}"
              - uses: actions/github-script@v7
                with:
                  script: console.log("${{ github.head_ref }}")
          deploy:
            runs-on: x
            steps:
              - run: |
                  echo ok
                  git log -1 "${{ github.event.pull_request.head.ref }}" --token ${{ secrets.DEPLOY_TOKEN }}
        """)
        let findings = try check(text).filter { $0.rule == .templateInjection }
        #expect(compact(findings) == ["template-injection@7:20", "template-injection@10:32", "template-injection@16:23"])
        // Index notation reads the same fields.
        for spelling in ["github.event['issue']['title']", "github.event[\"issue\"].title", "toJSON(github.event.issue)", "github.event.commits[0].message"] {
            let variant = singleJobWorkflow(on: "[issues, push]", permissions: "{}", steps: "      - run: echo ${{ \(spelling) }}")
            #expect(try check(variant).contains { $0.rule == .templateInjection }, "\(spelling)")
        }
        #expect(findings.map(\.severity) == [.high, .high, .critical])
        #expect(findings[2].message.contains("github.event.pull_request.head.ref"))
    }

    @Test func safeUsesAreNotReported() throws {
        let text = singleJobWorkflow(on: "[push, issues]", steps: """
              - run: echo "$TITLE" "${{ github.event.issue.number }}" "${{ github.sha }}"
                env: {TITLE: "${{ github.event.issue.title }}"}
              - run: echo "${{ github.event.pull_request.title }}"
        """)
        // The second run reads a field no trigger of this workflow fills (no pull_request event).
        #expect(!(try check(text)).contains { $0.rule == .templateInjection })
    }

    @Test func gitlabVariablesReparsedAsCode() throws {
        let text = """
        stages: [test]
        lint:
          script:
            - eval "echo $CI_MERGE_REQUEST_TITLE"
            - echo "$CI_MERGE_REQUEST_TITLE"
            - sh -c "git log ${CI_COMMIT_BRANCH}"
            - sh -c "echo $CI_COMMIT_SHA"
        """
        let findings = try check(text, path: ".gitlab-ci.yml").filter { $0.rule == .templateInjection }
        #expect(compact(findings) == ["template-injection@4:18", "template-injection@6:22"])
    }
}

@Suite struct TriggerAndScopeTests {
    @Test func privilegedTriggerWithTheDefaultTokenIsReported() throws {
        let text = singleJobWorkflow(on: "pull_request_target", permissions: nil, job: "test", steps: """
              - uses: actions/checkout@v4
                with: {ref: "${{ github.event.pull_request.head.sha }}"}
              - run: make test
        """)
        let finding = try #require(try check(text).first { $0.rule == .untrustedCheckout })
        #expect(finding.message.contains("default GITHUB_TOKEN"))
        #expect(!(try check(text.replacingOccurrences(of: "jobs:", with: "permissions: {}\njobs:"))).contains { $0.rule == .untrustedCheckout })
    }

    @Test func broadScopes() throws {
        let text = """
        on: push
        permissions:
          contents: write
        jobs:
          a:
            runs-on: x
            steps:
              - run: cargo test
          b:
            runs-on: x
            steps:
              - run: git push origin HEAD:main
          c:
            runs-on: x
            permissions: write-all
            steps:
              - run: gh release create v1
          d:
            runs-on: x
            permissions: {packages: write, contents: read}
            steps:
              - uses: actions/checkout@v4
              - run: cargo build --locked
        """
        let findings = try check(text).filter { $0.rule == .permissionsBroad }
        #expect(compact(findings) == ["permissions-broad@3:3", "permissions-broad@15:18", "permissions-broad@20:19"])
        #expect(findings[0].message.contains("all 2 jobs"))
        #expect(findings[1].severity == .high)
        #expect(findings[2].message.contains("job 'd' gets packages: write"))
    }

    @Test func usedOrSingleJobScopesAreNotReported() throws {
        let text = """
        on: push
        permissions:
          contents: write
        jobs:
          release:
            runs-on: x
            steps:
              - uses: softprops/action-gh-release@v2
          pages:
            runs-on: x
            permissions: {contents: read, packages: write}
            steps:
              - run: docker push ghcr.io/o/r
        """
        #expect(!(try check(text)).contains { $0.rule == .permissionsBroad })
    }

    @Test func untrustedDataWrittenToTheEnvironmentFile() throws {
        let text = gitHubWorkflow(on: "issue_comment", jobs: """
          a:
            runs-on: x
            env: {BODY: "${{ github.event.comment.body }}", NUMBER: "${{ github.event.issue.number }}"}
            steps:
              - run: |
                  echo "NUMBER=$NUMBER" >> "$GITHUB_ENV"
                  echo "COMMENT=$BODY" >> "$GITHUB_ENV"
                env: {TOKEN: "${{ secrets.BOT_TOKEN }}"}
        """)
        let findings = try check(text).filter { $0.rule == .untrustedEnvWrite }
        #expect(compact(findings) == ["untrusted-env-write@10:9"])
        #expect(findings.first?.message.contains("$BODY (set from github.event.comment.body)") == true)
        // The same job without any credential: nothing to steal.
        let bare = text.replacingOccurrences(of: "\n        env: {TOKEN: \"${{ secrets.BOT_TOKEN }}\"}", with: "")
        #expect(bare != text)
        #expect(!(try check(bare)).contains { $0.rule == .untrustedEnvWrite })
    }

    @Test func spoofableBotChecks() throws {
        let text = gitHubWorkflow(on: "pull_request_target", permissions: "{contents: write}", jobs: """
          merge:
            if: github.actor == 'dependabot[bot]'
            runs-on: x
            steps:
              - run: gh pr merge --auto "$PR"
          safe:
            if: github.event.pull_request.user.login == 'dependabot[bot]' && github.actor == 'dependabot[bot]'
            runs-on: x
            steps:
              - run: gh pr merge --auto "$PR"
          either:
            if: github.event.pull_request.user.login == 'dependabot[bot]' || github.actor == 'dependabot[bot]'
            runs-on: x
            steps:
              - run: gh pr merge --auto "$PR"
        """)
        #expect(compact(try check(text).filter { $0.rule == .spoofableBotCheck }) == ["spoofable-bot-check@5:9", "spoofable-bot-check@15:70"])
        let onPush = text.replacingOccurrences(of: "on: pull_request_target", with: "on: push")
        #expect(!(try check(onPush)).contains { $0.rule == .spoofableBotCheck })
    }

    @Test func cachePoisoningFromAPrivilegedTrigger() throws {
        let text = singleJobWorkflow(on: "pull_request_target", permissions: "{}", job: "build", steps: """
              - uses: actions/checkout@v4
                with: {ref: "${{ github.event.pull_request.head.sha }}"}
              - uses: actions/setup-node@v4
                with: {cache: npm}
              - run: npm ci && npm test
        """)
        #expect(compact(try check(text).filter { $0.rule == .cachePoisoning }) == ["cache-poisoning@9:15"])
        let base = text.replacingOccurrences(of: "        with: {ref: \"${{ github.event.pull_request.head.sha }}\"}\n", with: "")
        #expect(!(try check(base)).contains { $0.rule == .cachePoisoning })
    }

    @Test func artifactPoisoningFromTheTriggeringRun() throws {
        let publish = """
        on:
          workflow_run:
            workflows: [CI]
            types: [completed]
        permissions: {contents: read}
        jobs:
          comment:
            runs-on: x
            steps:
              - uses: actions/checkout@v4
              - uses: actions/download-artifact@v4
                with: {run-id: "${{ github.event.workflow_run.id }}", github-token: "${{ secrets.PAT }}"}
              - run: npm ci && npm run comment
        """
        let forks = try Checkout([".github/workflows/ci.yml": "name: CI\non: [push, pull_request]\njobs: {a: {runs-on: x, steps: [{run: make}]}}\n"])
        #expect(compact(try forks.check(publish).filter { $0.rule == .artifactPoisoning }) == ["artifact-poisoning@11:15"])
        // Downloaded outside the workspace and only read as data: not reported.
        let apart = publish.replacingOccurrences(of: "github-token: \"${{ secrets.PAT }}\"}", with: "github-token: \"${{ secrets.PAT }}\", path: \"${{ runner.temp }}/report\"}")
            .replacingOccurrences(of: "npm ci && npm run comment", with: "gh pr comment 1 --body-file \"$RUNNER_TEMP/report/comment.md\"")
        #expect(apart != publish)
        #expect(!(try forks.check(apart)).contains { $0.rule == .artifactPoisoning })
        // The only workflow that triggers it runs on push: its artifacts are the repository's own.
        let pushOnly = try Checkout([".github/workflows/ci.yml": "name: CI\non: push\njobs: {a: {runs-on: x, steps: [{run: make}]}}\n"])
        #expect(!(try pushOnly.check(publish)).contains { $0.rule == .artifactPoisoning })
    }

    @Test func gitlabAudiences() throws {
        let text = """
        release:
          script: [./release.sh "$AWS_TOKEN" "$NPM_ID_TOKEN" "$OTHER"]
          id_tokens:
            AWS_TOKEN: {aud: sts.amazonaws.com}
            NPM_ID_TOKEN:
              aud: $CI_SERVER_URL
            OTHER:
              aud: [https://a.example, https://b.example]
        """
        let findings = try check(text, path: ".gitlab-ci.yml").filter { $0.rule == .idTokenAudience }
        #expect(compact(findings) == ["id-token-audience@6:12", "id-token-audience@8:12"])
    }
}

/// Issue #21, second slice: false positives the hand-labelled sample of real workflows showed.
@Suite struct SampleFindingTests {
    @Test func sameCommitReusableWorkflowIsNotUnpinned() throws {
        let text = gitHubWorkflow(jobs: """
          build:
            uses: $/.github/workflows/build.yml
            secrets: {token: "${{ secrets.API_TOKEN }}"}
          other:
            uses: octo/repo/.github/workflows/build.yml@v1
            secrets: {token: "${{ secrets.API_TOKEN }}"}
        """)
        #expect(compact(try check(text)) == ["unpinned-action@8:11"])
    }

    /// A job that checks out with actions/checkout v4 and uploads `path` (PersistCredentialsTests' workflow).
    func upload(_ path: String, checkoutPath: String? = nil) -> String {
        PersistCredentialsTests().workflow(checkout: "actions/checkout@v4", checkoutPath: checkoutPath, upload: path)
    }

    @Test func globsAndExpressionsThatCannotReachGitConfig() throws {
        #expect(try check(upload("|\n            dist/*.tar.gz\n            dist/*.rpm")).isEmpty)
        #expect(try check(upload("${{ matrix.action }}/dist/")).isEmpty)
        #expect(try check(upload("build/results_*.xml", checkoutPath: "source")).isEmpty)
        // Ones that can are still reported.
        #expect(compact(try check(upload("${{ matrix.dir }}"))) == ["checkout-persist-credentials@7:15"])
        #expect(compact(try check(upload("${{ matrix.dir }}/config"))) == ["checkout-persist-credentials@7:15"])
        #expect(compact(try check(upload("source/*", checkoutPath: "source"))) == ["checkout-persist-credentials@7:15"])
    }

    @Test func s3CompatibleStoresAndOptionalCallerSecrets() throws {
        let r2 = singleJobWorkflow(job: "mirror", steps: """
              - run: aws s3 sync dist s3://bucket
                env:
                  AWS_ACCESS_KEY_ID: ${{ secrets.R2_KEY_ID }}
                  AWS_ENDPOINT_URL: https://account.r2.cloudflarestorage.com
        """)
        #expect(try check(r2).isEmpty)
        #expect(compact(try check(r2.replacingOccurrences(of: "account.r2.cloudflarestorage.com", with: "s3.eu-west-1.amazonaws.com")))
                == ["long-lived-credential@9:34"])
        let callee = """
        on:
          workflow_call:
            secrets:
              registry-password: {description: optional}
              pypi-token: {required: true}
        jobs:
          push:
            runs-on: x
            steps:
              - run: ./push.sh
                env:
                  REGISTRY_PASSWORD: ${{ secrets.registry-password }}
                  TWINE_PASSWORD: ${{ secrets.pypi-token }}
        """
        #expect(compact(try check(callee)) == ["long-lived-credential@13:31"])
    }

    @Test func registryPasswordsOfOtherRegistriesAreNotDockerHub() throws {
        func login(_ registry: String?) -> String {
            let line = registry.map { "\n          registry: \($0)" } ?? ""
            return singleJobWorkflow(job: "push", steps: """
                  - uses: docker/login-action@0123456789012345678901234567890123456789
                    with:\(line)
                      password: ${{ secrets.REGISTRY_PASSWORD }}
            """)
        }
        #expect(compact(try check(login(nil))) == ["long-lived-credential@9:25"])
        #expect(compact(try check(login("docker.io"))) == ["long-lived-credential@10:25"])
        #expect(try check(login("harbor.example.com")).isEmpty)
    }
}
