import Foundation
import Synchronization
import Testing
@testable import StepGuardAudit

/// `error` events: a request the proxy could not complete (e.g. a late request body). Recorded and
/// printed like a denial, but not a policy decision: they never make the run exit 77.
@Suite struct ErrorDecisionTests {
    let timeout = AuditEvent(type: .egress, decision: .error, reason: "the request body did not arrive in time",
                             rule: "built-in: request body timeout", subject: ["host": .string("registry.test")])

    @Test func anErrorDoesNotBlock() {
        let verdict = Verdict(stepExitCode: 0, outcome: "exited with status 0", events: [timeout], auditOnly: false, exitCode: { $0.stepStatus ?? 98 })
        #expect(verdict.exitCode == 0 && !verdict.blocked && verdict.violations.isEmpty)
    }

    @Test func anErrorIsPrintedLoggedAndKept() throws {
        let printed = Mutex<[String]>([])
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("stepguard-error-\(UUID().uuidString).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let trail = try AuditTrail(context: .init(policy: "p", step: nil, auditOnly: false, command: "c"), logPath: path,
                                   printer: { line in printed.withLock { $0.append(line) } }, annotationPrinter: { _ in })
        trail.record(timeout)
        #expect(printed.withLock { $0 } == ["stepguard: ERROR egress [host=registry.test] — the request body did not arrive in time"])
        #expect(try String(contentsOfFile: path, encoding: .utf8).contains(#""type":"egress","decision":"error""#))
        #expect(trail.recorded == [timeout] && trail.allowedRequests == 0)
    }
}
