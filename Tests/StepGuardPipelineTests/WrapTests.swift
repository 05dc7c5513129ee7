import Foundation
import StepGuardPolicy
import Testing
@testable import StepGuardPipeline

@Suite struct WrapTests {
    /// Removing every inserted text (and restoring replaced spans) gives back the original, byte for byte.
    func assertOnlyEdited(_ result: WrapResult, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        var bytes = Array(result.wrapped.utf8)
        let original = Array(result.original.utf8)
        var shift = 0
        var restored: [(Int, Int, [UInt8])] = []
        for edit in result.edits {
            restored.append((edit.offset + shift, edit.text.utf8.count, Array(original[edit.offset..<(edit.offset + edit.length)])))
            shift += edit.text.utf8.count - edit.length
        }
        for (offset, length, text) in restored.reversed() { bytes.replaceSubrange(offset..<(offset + length), with: text) }
        #expect(bytes == original, "bytes outside the edits changed", sourceLocation: sourceLocation)
    }

    let sample = """
    # Release — keep this comment, the quoting and the blank lines.
    name: "release"
    on:
      push:
        tags: ['v*']
    permissions:
      contents: read   # least privilege

    jobs:
      publish:
        runs-on: ubuntu-latest
        steps:
          - uses: actions/checkout@v4
            with: { persist-credentials: false }
          - name: Publish to npm
            run: |
              npm ci
              npm publish   # the real thing

          - run: >-
              cosign sign --yes
              "$IMAGE"
          - id: py
            shell: python
            run: print("hello")
      test:
        runs-on: ubuntu-latest
        steps:
          - run: make test
          - uses: actions/upload-artifact@v4
            with: {name: logs, path: logs/}

    """

    @Test func wrapsEveryRunStepAndKeepsTheRest() throws {
        let result = try WorkflowWrapper.wrap(text: sample, path: "release.yml")
        assertOnlyEdited(result)
        #expect(result.wrappedSteps == ["publish/publish-to-npm", "publish/publish-3", "publish/py", "test/test-1"])
        #expect(result.idTokenJobs == ["publish"])
        #expect(result.wrapped.contains("""
                  - name: Set up stepguard
                    uses: stepguard/stepguard/actions/setup@v0.1.0
                  - uses: actions/checkout@v4
            """))
        #expect(result.wrapped.contains("""
                  - name: Publish to npm
                    shell: stepguard run -- bash --noprofile --norc -eo pipefail {0}
                    run: |
            """))
        #expect(result.wrapped.contains("""
                  - shell: stepguard run -- bash --noprofile --norc -eo pipefail {0}
                    run: >-
            """))
        #expect(result.wrapped.contains("    shell: stepguard run -- python {0}\n"))
        #expect(result.wrapped.contains("  publish:\n    permissions:\n      contents: read\n      id-token: write\n    runs-on: ubuntu-latest\n"))
        #expect(!result.wrapped.contains("test:\n    permissions:"))
        #expect(result.wrapped.components(separatedBy: "Set up stepguard").count == 3)
    }

    @Test func wrappedWorkflowParsesAndChecksCleanOfUnguardedSteps() throws {
        let before = try WorkflowChecker.check(text: sample, path: "release.yml")
        #expect(before.contains { $0.rule == .unguardedServiceCall })
        let result = try WorkflowWrapper.wrap(text: sample, path: "release.yml")
        let after = try WorkflowChecker.check(text: result.wrapped, path: "release.yml")
        #expect(!after.contains { $0.rule == .unguardedServiceCall })
        #expect(!after.contains { $0.rule == .idTokenUnused })
    }

    @Test func wrapIsIdempotent() throws {
        let once = try WorkflowWrapper.wrap(text: sample, path: "release.yml")
        let twice = try WorkflowWrapper.wrap(text: once.wrapped, path: "release.yml")
        #expect(twice.wrapped == once.wrapped)
        #expect(twice.edits.isEmpty)
        #expect(twice.diff.isEmpty)
    }

    @Test func onlyMatchingStepsAndOptions() throws {
        let options = WrapOptions(only: try Glob("publish-*"), setupUses: "o/stepguard/actions/setup@0123456789abcdef0123456789abcdef01234567",
                                  setupVersion: "0.1.0", policy: "rules/policies/release.yaml", mode: "audit", policyDeclaresIdentity: true,
                                  policySteps: ["publish-to-npm"])
        let result = try WorkflowWrapper.wrap(text: sample, path: "release.yml", options: options)
        assertOnlyEdited(result)
        #expect(result.wrappedSteps == ["publish/publish-to-npm", "publish/publish-3"])
        #expect(result.wrapped.contains("shell: stepguard run --policy rules/policies/release.yaml --mode audit --step publish-to-npm -- bash"))
        #expect(result.wrapped.contains("      with:\n          version: 0.1.0\n"))
        #expect(result.wrapped.contains("shell: stepguard run --policy rules/policies/release.yaml --mode audit -- bash"))
        #expect(!result.wrapped.contains("--step publish-3"))
        #expect(result.wrapped.components(separatedBy: "Set up stepguard").count == 2)
    }

    @Test func identityPolicyGrantsIdTokenInExistingPermissions() throws {
        let text = """
        on: push
        jobs:
          build:
            runs-on: x
            permissions:
              contents: read
              id-token: none
            steps:
              - run: make
          other:
            runs-on: x
            permissions:
              packages: write
            steps:
              - run: make
        """
        let result = try WorkflowWrapper.wrap(text: text, path: "w.yml", options: WrapOptions(policyDeclaresIdentity: true))
        assertOnlyEdited(result)
        #expect(result.wrapped.contains("      contents: read\n      id-token: write\n"))
        #expect(result.wrapped.contains("    permissions:\n      id-token: write\n      packages: write\n"))
        #expect(result.idTokenJobs == ["build", "other"])
    }

    /// Flow-style mappings (`{...}`) are not edited line by line: a flow-style step is skipped, and
    /// flow-style permissions that need `id-token: write` fail without a change. (With Yams the
    /// style was always unknown, so `id-token: write` went in as a line above `permissions: {...}`:
    /// a job key, not a permission.)
    @Test func flowStyleStepsAndPermissionsAreNotEditedInPlace() throws {
        let step = "on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - {run: make}\n"
        let skipped = try WorkflowWrapper.wrap(text: step, path: "w.yml")
        #expect(skipped.wrapped == step)
        #expect(skipped.skipped.contains { $0.contains("flow-style step; not wrapped") })
        let permissions = "on: push\njobs:\n  a:\n    runs-on: x\n    permissions: {contents: read}\n    steps:\n      - run: make\n"
        #expect {
            try WorkflowWrapper.wrap(text: permissions, path: "w.yml", options: WrapOptions(policyDeclaresIdentity: true))
        } throws: { error in
            "\(error)".contains("cannot be edited in place")
        }
    }

    @Test func noIdTokenWhereNotNeeded() throws {
        let text = "on: push\npermissions: {contents: read}\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: make\n"
        let result = try WorkflowWrapper.wrap(text: text, path: "w.yml")
        assertOnlyEdited(result)
        #expect(result.idTokenJobs.isEmpty)
        #expect(!result.wrapped.contains("id-token"))
    }

    @Test func unsupportedShellsAreSkippedWithAReason() throws {
        let text = "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: Write-Host hi\n        shell: pwsh\n"
        let result = try WorkflowWrapper.wrap(text: text, path: "w.yml")
        #expect(result.wrapped == text)
        #expect(result.skipped.count == 1)
        #expect(result.skipped[0].hasPrefix("w.yml:6:14: shell 'pwsh'"))
    }

    @Test func gitlabAndInvalidInputAreErrors() {
        #expect(throws: PipelineError.self) { try WorkflowWrapper.wrap(text: "stages: [a]\nj:\n  script: [x]\n", path: ".gitlab-ci.yml") }
        #expect(throws: PipelineError.self) { try WorkflowWrapper.wrap(text: "on: [", path: "w.yml") }
    }

    @Test func fixturesRoundTrip() throws {
        for name in ["cosign-release.yml", "npm-publish.yml", "pypi-publish.yml", "docker-push.yml", "terraform-aws.yml", "guarded-release.yml"] {
            let result = try WorkflowWrapper.wrap(file: fixture(name))
            assertOnlyEdited(result)
            let after = try WorkflowChecker.check(text: result.wrapped, path: name)
            #expect(!after.contains { $0.rule == .unguardedServiceCall }, "\(name)")
        }
    }

    @Test func unifiedDiffShowsOnlyInsertions() throws {
        let result = try WorkflowWrapper.wrap(text: sample, path: "release.yml")
        let diff = result.diff
        #expect(diff.hasPrefix("--- a/release.yml\n+++ b/release.yml\n@@ -"))
        let removed = diff.split(separator: "\n").filter { $0.hasPrefix("-") && !$0.hasPrefix("---") }
        // Only steps whose first key is `run:` have that line re-flowed; an existing shell: gets its new value.
        #expect(removed == ["-      - run: >-", "-        shell: python", "-      - run: make test"])
    }
}

@Suite struct WrapLineEndingTests {
    @Test func crlfFilesGetCrlfInsertions() throws {
        let text = "on: push\r\njobs:\r\n  a:\r\n    runs-on: x\r\n    steps:\r\n      - name: Push\r\n        run: docker push x\r\n"
        let result = try WorkflowWrapper.wrap(text: text, path: "w.yml")
        #expect(!result.wrapped.replacingOccurrences(of: "\r\n", with: "").contains("\n"))
        #expect(result.wrapped.contains("        shell: stepguard run -- bash --noprofile --norc -eo pipefail {0}\r\n        run: docker push x\r\n"))
        #expect(!(try WorkflowChecker.check(text: result.wrapped, path: "w.yml")).contains { $0.rule == .unguardedServiceCall })
    }
}

/// Issue #21: `wrap` changes nothing when it cannot finish, leaves non-Linux jobs alone, grants
/// `id-token: write` only for services that need the job's token, and pins the setup step with `--ref`.
@Suite struct WrapSafetyTests {
    @Test func unplaceableSetupStepChangesNothing() throws {
        // The first step is an anchored mapping: there is no `- ` to put a new item before.
        let text = "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - &checkout\n        uses: actions/checkout@v4\n      - run: make\n"
        #expect(throws: PipelineError.self) { try WorkflowWrapper.wrap(text: text, path: "w.yml") }
    }

    @Test func dashOnItsOwnLineTakesTheSetupStepAbove() throws {
        let text = "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      -\n        name: Checkout\n        uses: actions/checkout@v4\n      -\n        run: make\n"
        let result = try WorkflowWrapper.wrap(text: text, path: "w.yml")
        #expect(result.wrapped.contains("    steps:\n      - name: Set up stepguard\n        uses: stepguard/stepguard/actions/setup@v0.1.0\n      -\n        name: Checkout\n"))
        #expect(result.wrappedSteps == ["a/a-2"])
        _ = try WorkflowChecker.check(text: result.wrapped, path: "w.yml")
    }

    @Test func windowsAndMacOSJobsAreLeftAlone() throws {
        let text = """
        on: push
        permissions: {contents: read}
        jobs:
          win:
            runs-on: windows-latest
            steps:
              - run: make
          mac:
            runs-on: [self-hosted, macOS]
            steps:
              - run: make
          matrix:
            runs-on: ${{ matrix.os }}
            strategy:
              matrix:
                os: [ubuntu-latest, windows-latest]
            steps:
              - run: make
          linux:
            runs-on: ${{ matrix.os }}
            strategy:
              matrix:
                os: [ubuntu-22.04, ubuntu-24.04]
            steps:
              - run: make
        """
        let result = try WorkflowWrapper.wrap(text: text, path: "w.yml")
        #expect(result.wrappedSteps == ["linux/linux-1"])
        #expect(result.skipped.count == 3)
        #expect(result.skipped.allSatisfy { $0.contains("needs a Linux runner") })
        #expect(result.skipped[2].contains("`windows-latest`"))
    }

    @Test func idTokenOnlyForServicesThatNeedTheJobsToken() throws {
        func grants(_ run: String, env: String = "") throws -> Bool {
            let text = "on: push\npermissions: {contents: read}\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: \(run)\n\(env)"
            return !(try WorkflowWrapper.wrap(text: text, path: "w.yml")).idTokenJobs.isEmpty
        }
        #expect(try grants("cosign sign --yes img"))
        #expect(try grants("npm publish"))
        #expect(!(try grants("cosign sign --key env://KEY img")))
        #expect(!(try grants("npm publish", env: "        env: {NODE_AUTH_TOKEN: \"${{ secrets.NPM }}\"}\n")))
        #expect(!(try grants("gh attestation verify x --owner o")))
        #expect(!(try grants("vault kv get -address=http://127.0.0.1:8200 secret/x")))
        #expect(!(try grants("aws --endpoint-url http://localhost:4566 secretsmanager get-secret-value --secret-id x")))
    }

    @Test func refPinsTheSetupStep() throws {
        let sha = String(repeating: "0123456789", count: 4)
        #expect(WrapOptions.pinned(WrapOptions.defaultSetupUses, to: sha) == "stepguard/stepguard/actions/setup@\(sha)")
        #expect(WrapOptions.pinned(WrapOptions.defaultSetupUses, to: "v1") == nil)
        let text = "on: push\npermissions: {contents: read}\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: cosign sign --yes img\n"
        let options = WrapOptions(setupUses: WrapOptions.pinned(WrapOptions.defaultSetupUses, to: sha)!)
        let pinned = try WorkflowWrapper.wrap(text: text, path: "w.yml", options: options)
        #expect(!(try WorkflowChecker.check(text: pinned.wrapped, path: "w.yml")).contains { $0.rule == .unpinnedAction })
        let placeholder = try WorkflowWrapper.wrap(text: text, path: "w.yml")
        #expect((try WorkflowChecker.check(text: placeholder.wrapped, path: "w.yml")).contains { $0.rule == .unpinnedAction })
    }
}
