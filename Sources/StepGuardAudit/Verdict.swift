/// Exit codes of `stepguard run` (sysexits.h conventions).
/// The outcome of a guarded step: what stepguard exits with and the line that says why.
public struct Verdict: Sendable, Equatable {
    /// True when the policy blocked something and the mode enforces it.
    public let blocked: Bool
    /// The step's own exit status (128+N when killed by signal N), or nil when it was not started.
    public let stepStatus: Int32?
    /// What stepguard exits with, chosen by the executable's exit-status table.
    public let exitCode: Int32
    /// How the step ended ("exited with status 0"), or why it did not start.
    public let outcome: String
    /// The deny decisions that are violations (``AuditEvent/isViolation``), in order: those the
    /// trail kept (see ``AuditTrail/keptDenialLimit``).
    public let violations: [AuditEvent]
    /// How many violations there were, kept or only counted.
    public let violationCount: Int
    public let auditOnly: Bool
    /// How the step was contained, e.g. "isolated" or "not isolated: …" (shown on the verdict line).
    public let isolation: String?
    /// What revocation did, e.g. "2 credentials revoked, 1 not revocable" (nil when nothing was tried).
    public let revocations: String?

    /// A verdict on `events`: blocked when the policy denied anything in enforce mode, whether or
    /// not the step went on (in audit mode nothing is enforced). `exitCode` chooses the status
    /// stepguard exits with (the executable's table: the step's own unless blocked).
    /// `unkeptViolations` are the violations the trail only counted (``AuditTrail/unkeptViolations``).
    public init(stepExitCode: Int32?, outcome: String, events: [AuditEvent], unkeptViolations: Int = 0, auditOnly: Bool,
                isolation: String? = nil, exitCode: (Verdict.Facts) -> Int32) {
        self.isolation = isolation
        let violations = events.filter(\.isViolation)
        self.revocations = Self.countRevocations(events.filter { $0.type == .revocation })
        self.violations = violations
        self.violationCount = violations.count + unkeptViolations
        self.auditOnly = auditOnly
        self.outcome = outcome
        self.blocked = !auditOnly && violationCount > 0
        self.stepStatus = stepExitCode
        self.exitCode = exitCode(Facts(blocked: blocked, stepStatus: stepExitCode))
    }

    /// What the exit status is chosen from.
    public struct Facts: Sendable {
        public let blocked: Bool
        public let stepStatus: Int32?
        public init(blocked: Bool, stepStatus: Int32?) {
            self.blocked = blocked
            self.stepStatus = stepStatus
        }
    }

    /// "2 credentials revoked, 1 not revocable, 1 revocation failed" from `revocation` events (their
    /// `outcome`: `revoked`, `failed`, `not revocable`, `would revoke`), or nil without any.
    static func countRevocations(_ events: [AuditEvent]) -> String? {
        guard !events.isEmpty else { return nil }
        let outcomes = events.map { $0.subject["outcome"]?.description ?? "failed" }
        func count(_ outcome: String) -> Int { outcomes.filter { $0 == outcome }.count }
        func credentials(_ number: Int) -> String { "\(number) credential\(number == 1 ? "" : "s")" }
        var parts: [String] = []
        if count("revoked") > 0 { parts.append("\(credentials(count("revoked"))) revoked") }
        if count("would revoke") > 0 { parts.append("\(credentials(count("would revoke"))) would be revoked") }
        if count("failed") > 0 { parts.append("\(count("failed")) revocation\(count("failed") == 1 ? "" : "s") failed") }
        if count("not revocable") > 0 { parts.append("\(count("not revocable")) not revocable") }
        return parts.joined(separator: ", ")
    }

    /// The one-line verdict printed on stderr at the end of `run`.
    public var line: String {
        let prefix = auditOnly ? "stepguard [audit mode, nothing enforced]: verdict:" : "stepguard: verdict:"
        let contained = (isolation.map { "; \($0)" } ?? "") + (revocations.map { "; \($0)" } ?? "")
        guard let first = violations.first else {
            return "\(prefix) allowed — step \(outcome); no policy violation\(contained) (exit \(exitCode))"
        }
        let more = violationCount > 1 ? " (+\(violationCount - 1) more)" : ""
        if auditOnly {
            return "\(prefix) would block — \(first.type.rawValue): \(first.reason)\(more); step \(outcome)\(contained) (exit \(exitCode))"
        }
        return "\(prefix) BLOCKED — \(first.type.rawValue): \(first.reason)\(more); step \(outcome)\(contained) (exit \(exitCode))"
    }
}
