import StepGuardAudit
import StepGuardEgress
@testable import StepGuardPipeline
import StepGuardPolicy
import StepGuardSandbox
import Testing
@testable import stepguard

/// The README's exit-code contract, held by the one table that makes it (``ExitStatus``).
@Suite struct ExitStatusTests {
    @Test func runExitsWithTheStepsStatusUnlessBlocked() {
        #expect(ExitStatus.run(.init(blocked: false, stepStatus: 3)) == 3)
        #expect(ExitStatus.run(.init(blocked: false, stepStatus: 137)) == 137, "killed by SIGKILL: 128 + 9")
        #expect(ExitStatus.run(.init(blocked: true, stepStatus: 0)) == 77, "a denial blocks even a step that succeeded")
        #expect(ExitStatus.run(.init(blocked: false, stepStatus: nil)) == 77, "a step that was not started")
        let audit = Verdict(stepExitCode: 0, outcome: "exited with status 0",
                            events: [AuditEvent(type: .egress, decision: .deny, reason: "r")], auditOnly: true, exitCode: ExitStatus.run)
        #expect(audit.exitCode == 0, "mode: audit blocks nothing")
    }

    @Test func startFailuresMapToSysexits() {
        #expect(ExitStatus.of(SandboxError.noCommand) == 64)
        #expect(ExitStatus.of(SandboxError.commandNotFound("x", searched: nil)) == 127)
        #expect(ExitStatus.of(SandboxError.notExecutable("/x")) == 126)
        #expect(ExitStatus.of(SandboxError.spawnFailed("clone", errno: 1)) == 70)
        #expect(ExitStatus.of(SandboxError.isolationUnavailable("no user namespaces")) == 69)
        #expect(ExitStatus.of(SandboxError.tripwiresUnavailable("no watches")) == 69)
        #expect(ExitStatus.of(EgressError.unknownService("x", at: nil, known: [])) == 78)
        #expect(ExitStatus.of(EgressError.cannotListen("no port")) == 69)
        #expect(ExitStatus.of(EgressError.proxyFailed("boom")) == 70)
    }

    @Test func workflowCheckExitsWithTheWorstOutcome() throws {
        let invalid = PipelineError(.invalidYAML, at: SourceLocation(file: "a.yml", line: 1, column: 1), "bad", remedy: "fix it")
        let noWorkflow = PipelineError(.noWorkflows, at: SourceLocation(file: ".", line: 1, column: 1), "none", remedy: "point at one")
        #expect(ExitStatus.of(invalid) == 78 && ExitStatus.of(noWorkflow) == 2)
        var report = CheckReport()
        #expect(ExitStatus.of(report) == 0)
        report.errors = [noWorkflow, invalid]
        #expect(ExitStatus.of(report) == 78)
    }
}
