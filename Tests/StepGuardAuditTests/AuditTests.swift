import StepGuardCore
import Foundation
import Synchronization
import Testing
@testable import StepGuardAudit

@Suite struct VerdictTests {
    let deny = AuditEvent(type: .egress, decision: .deny, reason: "evil.test:443 is not in egress.allow", subject: ["host": .string("evil.test")])
    let allow = AuditEvent(type: .process, decision: .allow, reason: "step started")
    /// Stands in for the executable's exit-status table: distinct numbers show which fact chose the code.
    let exitCode: (Verdict.Facts) -> Int32 = { $0.blocked ? 99 : $0.stepStatus ?? 98 }

    @Test func stepCodeWhenNothingDenied() {
        let verdict = Verdict(stepExitCode: 3, outcome: "exited with status 3", events: [allow], auditOnly: false, exitCode: exitCode)
        #expect(verdict.exitCode == 3 && verdict.stepStatus == 3 && !verdict.blocked)
        #expect(verdict.line.hasPrefix("stepguard: verdict: allowed"))
    }

    @Test func anyDenialBlocksEvenWhenTheStepSucceeded() {
        let verdict = Verdict(stepExitCode: 0, outcome: "exited with status 0", events: [allow, deny, deny], auditOnly: false, exitCode: exitCode)
        #expect(verdict.exitCode == 99 && verdict.blocked)
        #expect(verdict.line.contains("BLOCKED — egress: evil.test:443 is not in egress.allow (+1 more)"))
    }

    @Test func aDenialMarkedAsNoViolationIsRecordedButDoesNotBlock() {
        let drop = AuditEvent(type: .egress, decision: .deny, reason: "a UDP datagram was dropped; TCP there is allowed",
                              subject: ["host": .string("mirror.test"), "violation": .bool(false)])
        let verdict = Verdict(stepExitCode: 0, outcome: "exited with status 0", events: [allow, drop], auditOnly: false, exitCode: exitCode)
        #expect(!verdict.blocked && verdict.exitCode == 0 && verdict.violations.isEmpty)
        let both = Verdict(stepExitCode: 0, outcome: "exited with status 0", events: [drop, deny], auditOnly: false, exitCode: exitCode)
        #expect(both.blocked && both.violations == [deny])
    }

    @Test func auditModeNeverBlocks() {
        let verdict = Verdict(stepExitCode: 0, outcome: "exited with status 0", events: [deny], auditOnly: true, exitCode: exitCode)
        #expect(verdict.exitCode == 0 && !verdict.blocked)
        #expect(verdict.line.contains("audit mode, nothing enforced") && verdict.line.contains("would block"))
    }

    @Test func stepThatNeverStartedIsBlocked() {
        let verdict = Verdict(stepExitCode: nil, outcome: "was not started", events: [deny], auditOnly: false, exitCode: exitCode)
        #expect(verdict.exitCode == 99 && verdict.stepStatus == nil && verdict.blocked)
        let unstarted = Verdict(stepExitCode: nil, outcome: "was not started", events: [], auditOnly: false, exitCode: exitCode)
        #expect(unstarted.exitCode == 98 && !unstarted.blocked, "the table decides what a step that never ran exits with")
    }
}

@Suite struct AuditLogTests {
    @Test func jsonLinesKeepKeyOrderAndEscape() throws {
        let event = AuditEvent(type: .credential, decision: .deny, reason: "variable \"NPM\nTOKEN\" holds npm_…", rule: "credentials.long_lived: deny",
                               subject: ["variable": .string("NPM_TOKEN"), "port": .int(443), "tls": .bool(true)],
                               time: Date(timeIntervalSince1970: 1_800_000_000.25))
        let line = event.jsonLine(context: [("mode", .string("enforce"))])
        #expect(line.hasPrefix("{\"time\":\"2027-01-15T08:00:00.250Z\",\"type\":\"credential\",\"decision\":\"deny\",\"reason\":"))
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
        #expect(object["reason"] as? String == "variable \"NPM\nTOKEN\" holds npm_…")
        #expect(object["port"] as? Int == 443 && object["tls"] as? Bool == true && object["mode"] as? String == "enforce")
        #expect(object["rule"] as? String == "credentials.long_lived: deny")
    }

    /// Every control character, DEL, the C1 block and U+2028/2029 are escaped, so a value never
    /// splits a JSON line or drives a terminal; the literal still decodes to the same text.
    @Test func quotedEscapesWhatCouldBreakALineOrATerminal() throws {
        let text = "a\u{0}b\u{1b}[31m\u{7f}\u{85}\u{2028}\u{2029}\t\"\\é"
        let literal = JSONText.quoted(text)
        #expect(literal == #""a\u0000b\u001b[31m\u007f\u0085\u2028\u2029\t\"\\é""#)
        #expect(literal.unicodeScalars.allSatisfy { $0.value >= 0x20 && !(0x7f...0x9f).contains($0.value) && $0.value != 0x2028 && $0.value != 0x2029 })
        let decoded = try JSONSerialization.jsonObject(with: Data("[\(literal)]".utf8)) as? [String]
        #expect(decoded == [text])
    }

    @Test func trailWritesLogPrintsDenialsAndGitHubOutput() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sg-audit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let log = directory.appendingPathComponent("a.jsonl").path
        let summary = directory.appendingPathComponent("summary.md").path
        let printed = Mutex<[String]>([])
        let trail = try AuditTrail(context: .init(policy: "p.yaml", step: "publish", auditOnly: false, command: "npm"),
                                   logPath: log, printer: { line in printed.withLock { $0.append(line) } },
                                   annotationPrinter: { line in printed.withLock { $0.append(line) } })
        trail.record(AuditEvent(type: .process, decision: .allow, reason: "step started"))
        trail.record(AuditEvent(type: .egress, decision: .deny, reason: "evil.test:443 is not in egress.allow", subject: ["host": .string("evil.test")]))
        let verdict = Verdict(stepExitCode: 0, outcome: "exited with status 0", events: trail.recorded, auditOnly: false, exitCode: { _ in 77 })
        trail.finish(verdict, environment: ["GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": summary])
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2 && lines.allSatisfy { $0.contains("\"step\":\"publish\"") })
        #expect(printed.withLock { $0 } == [
            "stepguard: DENY egress [host=evil.test] — evil.test:443 is not in egress.allow",
            verdict.line,
            "::error title=stepguard denied egress::evil.test:443 is not in egress.allow",
        ])
        let markdown = try String(contentsOfFile: summary, encoding: .utf8)
        #expect(markdown.contains("### stepguard: step `publish` ❌ blocked"))
        #expect(markdown.contains("| deny | egress | host=evil.test | evil.test:443 is not in egress.allow |"))
        let reporter = GitHubReporter(context: .init(policy: "p.yaml", step: nil, auditOnly: false, command: "npm"))
        #expect(reporter.annotations(verdict) == ["::error title=stepguard denied egress::evil.test:443 is not in egress.allow"])
    }

    @Test func allowedRequestsAreCountedNotKept() throws {
        let trail = try AuditTrail(context: .init(policy: "p", step: nil, auditOnly: false, command: "x"), logPath: nil, printer: { _ in })
        for _ in 0..<3 { trail.record(AuditEvent(type: .egress, decision: .allow, reason: "allowed")) }
        trail.record(AuditEvent(type: .service, decision: .deny, reason: "denied"))
        trail.record(AuditEvent(type: .exit, decision: .allow, reason: "step exited"))
        #expect(trail.allowedRequests == 3)
        #expect(trail.recorded.map(\.type) == [.service, .exit])
    }

    @Test func unwritableLogIsAClearError() {
        #expect(throws: AuditError.self) {
            try AuditTrail(context: .init(policy: "p", step: nil, auditOnly: false, command: "x"), logPath: "/nonexistent-dir/a.jsonl")
        }
    }
}
