import Foundation
import Testing
import StepGuardYAML
@testable import StepGuardPipeline

/// The shipped GitHub actions and GitLab component: shape, no template injection, and clean checks.
@Suite struct ActionTests {
    let actionsDirectory = URL(fileURLWithPath: fixturesDirectory).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("actions").path

    func load(_ relative: String) throws -> Node {
        let text = try String(contentsOfFile: actionsDirectory + "/" + relative, encoding: .utf8)
        return try #require(try YAML.compose(yaml: text))
    }

    @Test(arguments: ["setup/action.yml", "run/action.yml"])
    func compositeActionShape(_ file: String) throws {
        let action = try load(file)
        #expect(action.value("name")?.text?.isEmpty == false)
        #expect(action.value("description")?.text?.isEmpty == false)
        #expect(action.value("branding")?.value("icon")?.text == "shield")
        #expect(action.value("runs")?.value("using")?.text == "composite")
        for step in action.value("runs")?.value("steps")?.items ?? [] {
            if let run = step.value("run")?.text {
                // Inputs reach scripts only through env: (no template injection).
                #expect(!run.contains("${{"), "\(file): run: must not interpolate expressions")
                #expect(step.value("shell") != nil)
            }
        }
    }

    @Test func runActionInputsAndOutputs() throws {
        let action = try load("run/action.yml")
        let inputs = Set(action.value("inputs")?.pairs.compactMap { $0.key.text } ?? [])
        #expect(inputs.isSuperset(of: ["policy", "step", "mode", "run"]))
        let outputs = Set(action.value("outputs")?.pairs.compactMap { $0.key.text } ?? [])
        #expect(outputs == ["verdict", "audit-log"])
        let env = action.value("runs")?.value("steps")?.items.first?.value("env")
        #expect(env?.value("STEPGUARD_INPUT_RUN")?.text == "${{ inputs.run }}")
    }

    @Test func workflowUsingTheActionsChecksClean() throws {
        #expect(try WorkflowChecker.check(file: actionsDirectory + "/tests/uses-actions.yml").isEmpty)
    }

    /// .github/workflows/release.yml: a v* tag builds both architectures with scripts/release.sh,
    /// only the publishing job may write, every action is pinned, and the workflow checks clean.
    @Test func releaseWorkflow() throws {
        let path = URL(fileURLWithPath: actionsDirectory).deletingLastPathComponent()
            .appendingPathComponent(".github/workflows/release.yml").path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let workflow = try #require(try YAML.compose(yaml: text))
        #expect(workflow.value("on")?.value("push")?.value("tags")?.items.compactMap(\.text) == ["v*"])
        #expect(workflow.value("permissions")?.value("contents")?.text == "read")
        let jobs = try #require(workflow.value("jobs"))
        var writers: [String] = []
        for (key, job) in jobs.pairs {
            let name = try #require(key.text)
            let permissions = try #require(job.value("permissions"), "job \(name) declares no permissions")
            for (scope, level) in permissions.pairs where level.text == "write" {
                writers.append("\(name):\(scope.text ?? "")")
            }
            for step in job.value("steps")?.items ?? [] {
                guard let uses = step.value("uses")?.text else { continue }
                let ref = uses.split(separator: "@").last.map(String.init) ?? ""
                #expect(ref.count == 40 && ref.allSatisfy(\.isHexDigit), "\(name): \(uses) is not pinned to a commit")
            }
        }
        #expect(writers == ["publish:contents"])
        let build = try #require(jobs.value("build"))
        let runners = build.value("strategy")?.value("matrix")?.value("include")?.items
            .compactMap { entry in entry.value("arch")?.text.map { ($0, entry.value("runner")?.text ?? "") } } ?? []
        #expect(Dictionary(uniqueKeysWithValues: runners) == ["x86_64": "ubuntu-24.04", "aarch64": "ubuntu-24.04-arm"])
        let scripts = build.value("steps")?.items.compactMap { $0.value("run")?.text } ?? []
        #expect(scripts.contains { $0.contains("scripts/release.sh \"$version\"") })
        #expect(!scripts.joined().contains("${{"), "inputs reach scripts through env:")
        #expect(text.contains("# v4.2.2"), "pinned actions carry their version as a comment")
        #expect(try WorkflowChecker.check(file: path).isEmpty)
    }

    @Test func gitlabComponent() throws {
        let text = try String(contentsOfFile: actionsDirectory + "/gitlab/stepguard.yml", encoding: .utf8)
        let documents = try YAML.composeAll(yaml: text)
        #expect(documents.count == 2)
        let inputs = Set(documents[0].value("spec")?.value("inputs")?.pairs.compactMap { $0.key.text } ?? [])
        #expect(inputs == ["policy", "step", "stage", "script", "version", "release-url", "checksum"])
        let job = try #require(documents[1].pairs.first?.value)
        #expect(job.value("id_tokens")?.value("STEPGUARD_ID_TOKEN")?.value("aud")?.text == "stepguard")
        let script = job.value("script")?.items.compactMap(\.text).joined(separator: "\n") ?? ""
        #expect(script.contains("stepguard run"))
        // Inputs reach the script through variables, except the three that choose the binary: those are
        // text inside the one quoted here-document (never expanded), each constrained by a regex that
        // admits no quote, space or newline.
        let heredoc = try #require(script.range(of: "<<'STEPGUARD_COMPONENT_INPUTS'\n"))
        let end = try #require(script.range(of: "\nSTEPGUARD_COMPONENT_INPUTS\n", range: heredoc.upperBound..<script.endIndex))
        let outside = String(script[..<heredoc.lowerBound]) + String(script[end.upperBound...])
        #expect(!outside.contains("$[["), "inputs must reach the script through variables, not as script text")
        let interpolated = script[heredoc.upperBound..<end.lowerBound].split(separator: "\n")
        #expect(interpolated == ["version=$[[ inputs.version ]]", "release-url=$[[ inputs.release-url ]]", "checksum=$[[ inputs.checksum ]]"])
        let spec = documents[0].value("spec")?.value("inputs")
        for name in ["version", "release-url", "checksum"] {
            let regex = try #require(spec?.value(name)?.value("regex")?.text, "\(name) needs a regex")
            for hostile in ["0.1.0'", "0.1.0 x", "0.1.0\nSTEPGUARD_COMPONENT_INPUTS", "$(id)", "`id`"] {
                #expect(hostile.range(of: regex, options: .regularExpression) == nil, "\(name) admits \(hostile)")
            }
        }
        #expect(try WorkflowChecker.check(file: actionsDirectory + "/gitlab/stepguard.yml").isEmpty)
    }
}

/// Runs actions/tests/test-actions.sh: the action scripts with GITHUB_OUTPUT, GITHUB_PATH,
/// GITHUB_STEP_SUMMARY and a fake OIDC token endpoint simulated on loopback.
@Suite struct ActionScriptTests {
    @Test(.timeLimit(.minutes(2))) func actionScriptsPassWithSimulatedGitHubEnvironment() throws {
        let script = URL(fileURLWithPath: fixturesDirectory).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("actions/tests/test-actions.sh").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script]
        // Output goes to a file, not a pipe: a helper that outlived the script must not hang the test.
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("stepguard-actions-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try handle.close()
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(process.terminationStatus == 0, "\(output)")
        #expect(output.contains("all action checks passed"))
        #expect(!output.contains("FAIL"))
    }
}
