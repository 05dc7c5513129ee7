import Foundation
import Synchronization
import Testing
@testable import StepGuardAudit

/// A step denied in a loop cannot grow stepguard's memory, stderr or job summary without bound:
/// past ``AuditTrail/keptDenialLimit`` denials are counted (and logged), not kept or printed.
@Suite struct KeptDenialLimitTests {
    static func denial(_ index: Int) -> AuditEvent {
        AuditEvent(type: .egress, decision: .deny, reason: "denied\(index).test:443 is not in egress.allow", subject: ["host": .string("denied\(index).test")])
    }

    /// A denial that is not a violation (as the step's dropped UDP to a destination TCP may reach).
    static func notAViolation(_ index: Int) -> AuditEvent {
        AuditEvent(type: .egress, decision: .deny, reason: "a UDP datagram to port \(index) was dropped", subject: ["violation": .bool(false)])
    }

    @Test func pastTheLimitDenialsAreCountedLoggedAndNotPrinted() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sg-kept-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let log = directory.appendingPathComponent("a.jsonl").path
        let summary = directory.appendingPathComponent("summary.md").path
        let printed = Mutex<[String]>([])
        let trail = try AuditTrail(context: .init(policy: "p.yaml", step: nil, auditOnly: false, command: "x"), logPath: log,
                                   printer: { line in printed.withLock { $0.append(line) } }, annotationPrinter: { line in printed.withLock { $0.append(line) } })
        let total = AuditTrail.keptDenialLimit + 500
        for index in 0..<total { trail.record(Self.denial(index)) }
        #expect(trail.recorded.count == AuditTrail.keptDenialLimit)
        #expect(trail.unkeptViolations == 500)
        let lines = printed.withLock { $0 }
        #expect(lines.count == AuditTrail.keptDenialLimit + 1)
        #expect(lines.last == "stepguard: more than \(AuditTrail.keptDenialLimit) denials: later ones are only counted, not printed (each is in the audit log \(log))")
        #expect(try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").count == total)

        let verdict = Verdict(stepExitCode: 0, outcome: "exited with status 0", events: trail.recorded, unkeptViolations: trail.unkeptViolations,
                              auditOnly: false, exitCode: { $0.blocked ? 77 : 0 })
        #expect(verdict.blocked && verdict.violationCount == total)
        #expect(verdict.line.contains("denied0.test:443 is not in egress.allow (+\(total - 1) more)"))
        #expect(verdict.record == "stepguard-verdict verdict=blocked exit_code=77 violations=\(total) mode=enforce")
        printed.withLock { $0 = [] }
        trail.finish(verdict, environment: ["GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": summary])
        #expect(printed.withLock { $0.count } == AuditTrail.keptDenialLimit + 1)  // the verdict and one annotation per kept violation
        let markdown = try String(contentsOfFile: summary, encoding: .utf8)
        #expect(markdown.contains("… and 500 more violations, counted but not listed"))
        #expect(markdown.utf8.count < 1 << 20)
    }

    @Test func denialsThatAreNotViolationsCannotCrowdAViolationOut() throws {
        let trail = try AuditTrail(context: .init(policy: "p", step: nil, auditOnly: false, command: "x"), logPath: nil, printer: { _ in })
        for index in 0..<(AuditTrail.keptDenialLimit + 10) { trail.record(Self.notAViolation(index)) }
        trail.record(Self.denial(7))
        let verdict = Verdict(stepExitCode: 0, outcome: "exited with status 0", events: trail.recorded, unkeptViolations: trail.unkeptViolations,
                              auditOnly: false, exitCode: { $0.blocked ? 77 : 0 })
        #expect(verdict.blocked && verdict.violations.count == 1 && verdict.violationCount == 1)
        #expect(verdict.line.hasPrefix("stepguard: verdict: BLOCKED — egress: denied7.test:443 is not in egress.allow;"))
    }

    @Test func withoutALogTheNoticeSaysHowToKeepEach() throws {
        let printed = Mutex<[String]>([])
        let trail = try AuditTrail(context: .init(policy: "p", step: nil, auditOnly: true, command: "x"), logPath: nil,
                                   printer: { line in printed.withLock { $0.append(line) } })
        for index in 0...AuditTrail.keptDenialLimit { trail.record(Self.denial(index)) }
        #expect(printed.withLock { $0.last } == "stepguard [audit mode, not enforced]: more than \(AuditTrail.keptDenialLimit) denials: later ones are only counted, not printed (pass --audit-log FILE to keep each)")
    }
}
