import FoundationEssentials
import Glibc

/// What an audit event is about.
public enum AuditEventType: String, Sendable, CaseIterable, Codable {
    case identity, credential, egress, service, isolation, process, exit
    /// The step changed how later steps of the job run ($GITHUB_ENV, $GITHUB_PATH, $STEPGUARD_STEP).
    case persistence
    /// The step touched a hidden path (`tripwires:`), or the tripwires' state at the start.
    case tripwire
    /// After a violation, a credential the step held was revoked at its issuer (or could not be,
    /// or would be in audit mode). Not a violation itself: the verdict counts these apart.
    case revocation
}

/// What was decided.
public enum AuditDecision: String, Sendable, Codable {
    case allow, deny
    /// Not a policy decision: the proxy could not complete a request (e.g. its body arrived too
    /// late). Recorded and printed, but it does not make the run fail with 77.
    case error
}

/// A value in an event's subject (host, port, claim, variable…).
public enum AuditValue: Sendable, Equatable, CustomStringConvertible {
    case string(String)
    case int(Int)
    case bool(Bool)

    public var description: String {
        switch self {
        case .string(let value): value
        case .int(let value): String(value)
        case .bool(let value): String(value)
        }
    }
}

/// One decision made while guarding a step. Never put a secret in full into an event: redact it
/// to a prefix and a hash before (see the secret scanner's `redact`).
public struct AuditEvent: Sendable, Equatable {
    public var time: Date
    public var type: AuditEventType
    public var decision: AuditDecision
    /// Why, in one sentence a human can act on.
    public var reason: String
    /// The policy rule that decided, e.g. `egress.deny: 10.0.0.0/8`.
    public var rule: String?
    /// What the decision was about: `host`, `port`, `method`, `path`, `claim`, `variable`, `service`…
    public var subject: [String: AuditValue]

    public init(type: AuditEventType, decision: AuditDecision, reason: String, rule: String? = nil,
                subject: [String: AuditValue] = [:], time: Date = Date()) {
        self.time = time
        self.type = type
        self.decision = decision
        self.reason = reason
        self.rule = rule
        self.subject = subject
    }

    /// The subject key of an `isolation` event (true) saying the step ran without isolation because
    /// `isolation: auto` fell back; the GitHub summary then links to the remedy.
    public static let isolationFellBack = "fallback"

    /// Where the README says how to make isolation available (user namespaces, AppArmor on GitHub's Ubuntu).
    public static let isolationRemedy = "https://github.com/stepguard/stepguard#isolation"

    /// A short "host=… method=…" rendering of the subject for text output.
    public var subjectSummary: String {
        subject.keys.sorted().map { "\($0)=\(subject[$0]!)" }.joined(separator: " ")
    }

    /// Whether this decision blocks the step's verdict: a denial, other than a revocation's outcome
    /// or a denial recorded with `violation: false` in its subject (a dropped UDP datagram to a
    /// destination whose TCP is allowed: a QUIC client falling back, not an attempt to get out).
    public var isViolation: Bool {
        decision == .deny && type != .revocation && subject["violation"] != .bool(false)
    }
}
