import Foundation
import Testing
@testable import StepGuardSandbox

@Suite struct StepCommandTests {
    @Test func resolvesThroughPath() throws {
        let command = StepCommand(arguments: ["sh", "-c", "true"], environment: ["PATH": "/nonexistent:/bin:/usr/bin"])
        #expect(try command.resolveExecutable() == "/bin/sh")
    }

    @Test func reportsMissingAndNonExecutable() throws {
        let missing = StepCommand(arguments: ["definitely-not-here"], environment: ["PATH": "/bin"])
        #expect(throws: SandboxError.commandNotFound("definitely-not-here", searched: "/bin")) { try missing.resolveExecutable() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sg-cmd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("tool")
        try "#!/bin/sh\n".write(to: file, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: file.path)
        if getuid() != 0 {  // root may execute anything with an x bit; 0644 has none, so check both ways
            #expect(throws: SandboxError.notExecutable(file.path)) { try StepCommand(arguments: [file.path], environment: [:]).resolveExecutable() }
        }
        #expect(throws: SandboxError.notExecutable(file.path)) {
            try StepCommand(arguments: ["tool"], environment: ["PATH": directory.path]).resolveExecutable()
        }
    }

    @Test func terminationStatusDecoding() {
        #expect(StepSupervisor.termination(from: 3 << 8) == .exited(3))
        #expect(StepSupervisor.termination(from: SIGKILL) == .signaled(SIGKILL))
        #expect(StepTermination.signaled(SIGKILL).exitCode == 137)
        #expect(StepTermination.signaled(SIGTERM).description == "killed by signal 15 (SIGTERM)")
    }
}
