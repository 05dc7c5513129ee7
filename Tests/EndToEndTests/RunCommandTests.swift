import Foundation
import StepGuardTestSupport
import Testing

/// End-to-end: the built `stepguard run` around real steps (sh, cat, sleep).
@Suite struct RunExitCodeTests {
    @Test(arguments: [("exit 0", Int32(0)), ("exit 3", 3), ("kill -KILL $$", 137), ("kill -TERM $$", 143)])
    func exitCodeFidelity(script: String, expected: Int32) throws {
        let result = try StepGuardBinary.run(["run", "--", "/bin/sh", "-c", script])
        #expect(result.status == expected, "stderr: \(result.stderr)")
        #expect(result.stderr.contains("stepguard: verdict: allowed"))
        // Stage marks exist only in bench/start-stages.py's build (STEPGUARD_STARTUP_TRACE).
        #expect(!result.stderr.contains("stepguard-stage"))
    }

    @Test func stdinAndStdoutPassThroughUntouched() throws {
        let input = "line one\nline two with ünïcode\n\u{1}binary-ish\n"
        let result = try StepGuardBinary.run(["run", "--", "cat"], stdin: input)
        #expect(result.status == 0)
        #expect(result.stdout == input)
    }

    @Test func commandIsLookedUpInPath() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try directory.write("bin/hello-step", "#!/bin/sh\necho hello from PATH\n", mode: 0o755)
        let environment = TestEnvironment.with(["PATH": directory.path("bin") + ":/usr/bin:/bin"])
        let result = try StepGuardBinary.run(["run", "--", "hello-step"], environment: environment)
        #expect(result.status == 0)
        #expect(result.stdout == "hello from PATH\n")
    }

    @Test func missingCommandExits127WithReason() throws {
        let result = try StepGuardBinary.run(["run", "--", "no-such-command-xyz"])
        #expect(result.status == 127)
        #expect(result.stderr.contains("command not found: 'no-such-command-xyz'"))
    }

    @Test func usageErrorsExit64() throws {
        #expect(try StepGuardBinary.run(["run"]).status == 64)
        #expect(try StepGuardBinary.run(["run", "--mode", "loud", "--", "true"]).status == 64)
        #expect(try StepGuardBinary.run(["run", "--no-such-flag", "--", "true"]).status == 64)
    }
}

@Suite struct RunPolicyTests {
    @Test func invalidPolicyRunsNothingAndExits78() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let policy = try directory.write("policy.yaml", "version: 1\nmode: enforce\negress:\n  defalt: deny\n")
        let marker = directory.path("ran")
        let result = try StepGuardBinary.run(["run", "--policy", policy, "--", "/bin/sh", "-c", "touch \(marker)"])
        #expect(result.status == 78)
        #expect(result.stderr.contains("\(policy):4:3: error: unknown key 'defalt' in egress; did you mean 'default'?"))
        #expect(result.stderr.contains("nothing was run"))
        #expect(!FileManager.default.fileExists(atPath: marker))
    }

    @Test func unknownStepIsRefused() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let policy = try directory.write("policy.yaml", "version: 1\nsteps:\n  publish: {}\n")
        let result = try StepGuardBinary.run(["run", "--policy", policy, "--", "true"], environment: TestEnvironment.with(["STEPGUARD_STEP": "publsh"]))
        #expect(result.status == 78)
        #expect(result.stderr.contains("did you mean 'publish'?"))
    }

    @Test func auditLogHasOneJSONObjectPerDecision() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let log = directory.path("audit.jsonl")
        let result = try StepGuardBinary.run(["run", "--audit-log", log, "--", "/bin/sh", "-c", "exit 5"])
        #expect(result.status == 5)
        let events = try AuditLogFile.events(log)
        #expect(events.count == 4)
        #expect(events.map { $0["type"] as? String } == ["isolation", "tripwire", "process", "exit"])
        for event in events {
            #expect(event["time"] is String && event["decision"] as? String == "allow" && event["reason"] is String)
            #expect(event["mode"] as? String == "enforce")
        }
        #expect(events[3]["exit_code"] as? Int == 5)
        #expect(events[2]["program"] as? String == "/bin/sh")
        let attributes = try FileManager.default.attributesOfItem(atPath: log)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
    }

    @Test func auditModeSaysSoOnEveryLine() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let log = directory.path("audit.jsonl")
        let result = try StepGuardBinary.run(["run", "--mode", "audit", "--audit-log", log, "-v", "--", "true"])
        #expect(result.status == 0)
        let lines = try directory.read("audit.jsonl").split(separator: "\n")
        #expect(!lines.isEmpty && lines.allSatisfy { $0.contains("\"mode\":\"audit\",\"enforced\":false") })
        let textLines = result.stderr.split(separator: "\n").filter { $0.hasPrefix("stepguard") }
        #expect(!textLines.isEmpty && textLines.allSatisfy { $0.contains("audit mode") })
    }

    @Test func githubJobSummary() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let summary = try directory.write("summary.md", "")
        let environment = TestEnvironment.with(["GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": summary, "STEPGUARD_STEP": "build"])
        let policy = try directory.write("policy.yaml", "version: 1\nsteps: { build: {} }\n")
        let result = try StepGuardBinary.run(["run", "--policy", policy, "--", "true"], environment: environment)
        #expect(result.status == 0)
        let text = try directory.read("summary.md")
        #expect(text.contains("### stepguard: step `build` ✅ allowed"))
        #expect(text.contains("exit 0"))
    }
}
