import Foundation
import Testing
@testable import StepGuardPipeline

@Suite struct CheckRuleTests {
    @Test func jobLevelIdTokenWithConsumerIsFine() throws {
        let text = gitHubWorkflow(jobs: """
          deploy:
            runs-on: ubuntu-latest
            permissions:
              id-token: write
            steps:
              - uses: aws-actions/configure-aws-credentials@e3dd6a429d7300a6a4c196c26e071d42e0343502
                with:
                  role-to-assume: arn:aws:iam::123456789012:role/deploy
          lint:
            runs-on: ubuntu-latest
            permissions:
              id-token: write
            steps:
              - run: make lint
        """)
        #expect(compact(try check(text)) == ["id-token-unused@15:7"])
    }

    @Test func writeAllAtTopLevelGrantsIdToken() throws {
        let text = singleJobWorkflow(permissions: "write-all", steps: "      - run: echo")
        #expect(compact(try check(text)) == ["id-token-workflow-level@2:14", "permissions-broad@2:14"])
    }

    @Test func workflowRunCheckoutOfHeadWithIdToken() throws {
        let text = """
        on:
          workflow_run:
            workflows: [ci]
            types: [completed]
        permissions:
          contents: read
          id-token: write
        jobs:
          report:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
                with:
                  ref: ${{ github.event.workflow_run.head_sha }}
              - run: gh attestation verify x
        """
        #expect(compact(try check(text)) == ["id-token-workflow-level@7:3", "untrusted-checkout@14:16"])
    }

    @Test func pullRequestTargetWithoutSecretsIsNotFlagged() throws {
        let text = gitHubWorkflow(on: "pull_request_target", permissions: "{}", jobs: """
          label:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
                with:
                  ref: ${{ github.event.pull_request.head.sha }}
              - run: make check
        """)
        #expect(try check(text).isEmpty)
    }

    @Test func unpinnedActionOnlyMattersWithSecretsOrIdToken() throws {
        let text = gitHubWorkflow(jobs: """
          plain:
            runs-on: x
            steps:
              - uses: some/action@v1
          secretive:
            runs-on: x
            steps:
              - uses: some/action@v1
                with: {token: "${{ secrets.API_TOKEN }}"}
              - uses: some/action@0123456789abcdef0123456789abcdef01234567
                with: {token: "${{ secrets.API_TOKEN }}"}
              - uses: docker://alpine:3
                with: {token: "${{ secrets.API_TOKEN }}"}
        """)
        #expect(compact(try check(text)) == ["unpinned-action@11:15", "unpinned-action@15:15"])
    }

    @Test func ignoreCommentsOnTheLineOrAbove() throws {
        let text = """
        on: push # stepguard: ignore[permissions-missing]
        jobs:
          a:
            runs-on: x
            steps:
              # stepguard: ignore[unguarded-service-call]
              - run: docker push x
              - run: |
                  docker push y   # stepguard: ignore[unguarded-service-call]
                  docker push z
              - run: docker push w # stepguard: ignore[other-rule]
        """
        #expect(compact(try check(text)) == ["unguarded-service-call@10:11", "unguarded-service-call@11:14"])
    }

    @Test func toJSONSecretsAnySpelling() throws {
        let text = singleJobWorkflow(permissions: "{}", steps: "      - run: echo \"${{ tojson( secrets ) }}\"")
        #expect(compact(try check(text)) == ["secrets-tojson@7:24"])
    }

    @Test func invalidYAMLFailsClosedWithLocation() {
        let text = "on: push\njobs:\n  a:\n    steps: [\n      - run: x\n"
        #expect {
            try WorkflowChecker.check(text: text, path: "bad.yml")
        } throws: { error in
            guard let error = error as? PipelineError else { return false }
            return error.isInvalidInput && error.location.file == "bad.yml" && error.location.line > 1
                && error.description.contains("invalid YAML") && error.description.contains("fix the YAML")
        }
    }

    /// A workflow whose aliases stand for 10^9 nodes ("billion laughs"): before StepGuardYAML bounded
    /// the expansion, every audit walked the whole tree and `workflow check` did not end (killed after
    /// 20 s on 58ff773); now it is invalid YAML at the alias that crosses the limit, at once.
    @Test func aliasBombFailsClosedAtOnce() {
        var text = "on: push\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for level in 1...8 { text += "a\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ") + "]\n" }
        text += "jobs:\n  j:\n    runs-on: x\n    steps:\n      - run: make\n        env: {X: *a8}\n"
        #expect {
            try WorkflowChecker.check(text: text, path: "bomb.yml")
        } throws: { error in
            guard let error = error as? PipelineError else { return false }
            return error.isInvalidInput && error.location.line == 7 && error.description.contains("through its aliases")
        }
    }

    @Test func notAWorkflowIsAnError() {
        #expect(throws: PipelineError.self) { try WorkflowChecker.check(text: "name: x\nvalue: 3\n", path: "x.yml") }
        #expect(throws: PipelineError.self) { try WorkflowChecker.check(text: "", path: "empty.yml") }
    }

    /// What the report says about the check (the executable's ExitStatus turns it into 0, 1, 2 or 78).
    @Test func reportOutcomes() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sg-pipeline-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let empty = WorkflowChecker.check(paths: [directory])
        #expect(empty.errors.count == 1 && empty.errors[0].kind == .noWorkflows && !empty.errors[0].isInvalidInput)
        #expect(WorkflowChecker.check(paths: [directory + "/missing.yml"]).errors.map(\.isInvalidInput) == [true])
        let bad = directory + "/bad.yml"
        try "on: [".write(toFile: bad, atomically: true, encoding: .utf8)
        let report = WorkflowChecker.check(paths: [bad, fixture("npm-publish.yml")])
        #expect(report.errors.map(\.isInvalidInput) == [true])
        #expect(report.findings.count == 3)
        let guarded = WorkflowChecker.check(paths: [fixture("guarded-release.yml")])
        #expect(guarded.errors.isEmpty && guarded.findings.isEmpty)
    }
}

@Suite struct ShellScanTests {
    func calls(_ script: String) -> [String] {
        let lines = script.split(separator: "\n", omittingEmptySubsequences: false).enumerated().map { (String($1), $0 + 1, 1) }
        return ShellScan.serviceCalls(in: lines).map { "\($0.command)@\($0.line):\($0.column)\($0.guarded ? " guarded" : "")" }
    }

    @Test func recognizesServiceCommands() {
        #expect(calls("cosign sign --yes img") == ["cosign sign@1:1"])
        #expect(calls("cosign verify img").isEmpty)
        #expect(calls("aws --region eu-west-1 kms sign --key-id k") == ["aws kms@1:1"])
        #expect(calls("X=$(aws secretsmanager get-secret-value --secret-id s)") == ["aws secretsmanager@1:5"])
        #expect(calls("vault kv get secret/x") == ["vault kv@1:1"])
        #expect(calls("npm ci && npm publish") == ["npm publish@1:11"])
        #expect(calls("python -m twine upload dist/*") == ["twine upload@1:11"])
        #expect(calls("docker buildx build --push -t x .") == ["docker buildx --push@1:1"])
        #expect(calls("gh secret set FOO < f") == ["gh secret@1:1"])
        #expect(calls("echo 'npm publish'").isEmpty)
        #expect(calls("# npm publish").isEmpty)
    }

    @Test func stepguardRunGuardsTheLogicalLine() {
        #expect(calls("stepguard run --step p -- npm publish") == ["npm publish@1:27 guarded"])
        #expect(calls("stepguard run --step p -- \\\n  docker push x") == ["docker push@2:3 guarded"])
        #expect(calls("stepguard run -- make\ndocker push x") == ["docker push@2:1"])
    }
}

@Suite struct FormatTests {
    func report() -> CheckReport { WorkflowChecker.check(paths: [fixture("npm-publish.yml")]) }

    @Test func jsonRoundTrips() throws {
        struct Decoded: Decodable { let findings: [Finding]; let files: [String] }
        let decoded = try JSONDecoder().decode(Decoded.self, from: Data(FindingFormat.json.render(report()).utf8))
        #expect(decoded.findings == report().findings)
        #expect(FindingFormat.json.render(report()).contains("\"id\" : \"long-lived-credential\""))
    }

    @Test func sarifHasRulesAndRegions() throws {
        let object = try JSONSerialization.jsonObject(with: Data(FindingFormat.sarif.render(report()).utf8)) as? [String: Any]
        #expect(object?["version"] as? String == "2.1.0")
        let run = (object?["runs"] as? [[String: Any]])?.first
        let results = run?["results"] as? [[String: Any]]
        #expect(results?.count == 3)
        let rules = ((run?["tool"] as? [String: Any])?["driver"] as? [String: Any])?["rules"] as? [[String: Any]]
        #expect(rules?.count == RuleID.allCases.count)
        let region = (((results?.first?["locations"] as? [[String: Any]])?.first?["physicalLocation"] as? [String: Any])?["region"] as? [String: Any])
        #expect(region?["startLine"] as? Int == 2)
    }

    @Test func githubAnnotations() {
        let lines = FindingFormat.github.render(report()).split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines.contains { $0.hasPrefix("::error file=") && $0.contains("line=31,col=32,title=stepguard long-lived-credential::") })
        #expect(lines.contains { $0.hasPrefix("::warning ") && $0.contains("permissions-missing") })
    }

    @Test func textNamesLocationSeverityAndRemedy() {
        let text = FindingFormat.text.render(report())
        #expect(text.contains("npm-publish.yml:29:14: high[unguarded-service-call]:"))
        #expect(text.contains("    remedy: "))
        #expect(text.hasSuffix("1 file checked, 3 findings\n"))
    }
}
