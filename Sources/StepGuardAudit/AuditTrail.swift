import FoundationEssentials
import StepGuardCore
import Glibc
import Synchronization

/// The event stream of one guarded step: every decision goes here and fans out to the audit log
/// (JSON lines), stderr, and — inside GitHub Actions — the job summary and annotations.
public final class AuditTrail: Sendable {
    /// Facts that go on every line.
    public struct Context: Sendable {
        public var policy: String
        public var step: String?
        /// True in `mode: audit`: decisions are recorded, nothing is blocked, every line says so.
        public var auditOnly: Bool
        public var command: String

        public init(policy: String, step: String?, auditOnly: Bool, command: String) {
            self.policy = policy
            self.step = step
            self.auditOnly = auditOnly
            self.command = command
        }
    }

    private let context: Context
    private let logFile: FileOutput?
    private let logPath: String?
    /// What stepguard wrote to the log (writes are appended under this lock, so each lands whole
    /// and its place is known).
    private let seal: Mutex<AuditLogSeal?>
    private let verbose: Bool
    private let printer: @Sendable (String) -> Void
    private let annotationPrinter: @Sendable (String) -> Void
    /// Kept in memory for the verdict and the summary: the first ``keptDenialLimit`` violations, as
    /// many other denials and errors, and every event that is not a per-request allow. Allowed requests (`egress`,
    /// `service`) and denials past the limit are only counted, so a step that makes millions of
    /// requests, denied or not, does not grow stepguard's memory; they are all in the log file.
    private let events = Mutex<Kept>(Kept())

    private struct Kept {
        var events: [AuditEvent] = []
        var allowedRequests = 0
        /// Kept denials that are violations, and kept denials and errors that are not: each kind has
        /// its own limit, so denials that are not violations can never crowd a violation out.
        var violations = 0
        var otherDenials = 0
        var unkeptDenials = 0
        var unkeptViolations = 0
    }

    /// How many violations, and how many other denials and errors, are kept in memory and printed;
    /// later ones are counted, and still appended to the log file. A step denied in a loop
    /// (`on_violation: fail`, `mode: audit`) cannot make stepguard's memory, its stderr or the job
    /// summary grow without bound: each kept denial costs about 0.8 KB, and GitHub takes at most
    /// 1 MiB of job summary.
    public static let keptDenialLimit = 1_000

    /// - Parameters:
    ///   - logPath: where to append JSON lines (created with mode 0600), or nil.
    ///   - verbose: print allow decisions too, not only denials.
    ///   - printer: where human-readable lines go (stderr by default).
    ///   - annotationPrinter: where GitHub workflow commands go (stdout by default, where the runner reads them).
    public init(context: Context, logPath: String?, verbose: Bool = false,
                printer: @escaping @Sendable (String) -> Void = { FileOutput.standardError.write($0 + "\n") },
                annotationPrinter: @escaping @Sendable (String) -> Void = { FileOutput.standardOutput.write($0 + "\n") }) throws(AuditError) {
        self.context = context
        self.verbose = verbose
        self.printer = printer
        self.annotationPrinter = annotationPrinter
        if let logPath {
            let fd = open(logPath, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw AuditError.cannotOpenLog(path: logPath, reason: String(cString: strerror(errno))) }
            self.logFile = FileOutput(fileDescriptor: fd, closeOnDealloc: true)
            self.logPath = logPath
            self.seal = Mutex(AuditLogSeal(fd: fd))
        } else {
            self.logFile = nil
            self.logPath = nil
            self.seal = Mutex(nil)
        }
    }

    /// Records one decision: appended to the log at once, printed when it is a denial (or verbose).
    public func record(_ event: AuditEvent) {
        enum Placement { case counted, kept, firstUnkept, unkept }
        let placement = events.withLock { events -> Placement in
            if event.decision == .allow && (event.type == .egress || event.type == .service) {
                events.allowedRequests += 1
                return .counted
            }
            if event.decision != .allow {
                let violation = event.isViolation
                guard (violation ? events.violations : events.otherDenials) < Self.keptDenialLimit else {
                    events.unkeptDenials += 1
                    if violation { events.unkeptViolations += 1 }
                    return events.unkeptDenials == 1 ? .firstUnkept : .unkept
                }
                if violation { events.violations += 1 } else { events.otherDenials += 1 }
            }
            events.events.append(event)
            return .kept
        }
        if let logFile {
            let line = Data((event.jsonLine(context: jsonContext) + "\n").utf8)
            seal.withLock { seal in
                logFile.write(line)
                seal?.appended(line, through: logFile.fileDescriptor)
            }
        }
        switch placement {
        case .kept where event.decision != .allow, .counted where verbose, .kept where verbose:
            printer(textLine(event))
        case .firstUnkept:
            let whereToLook = logPath.map { "each is in the audit log \($0)" } ?? "pass --audit-log FILE to keep each"
            printer("\(context.auditOnly ? "stepguard [audit mode, not enforced]:" : "stepguard:") more than \(Self.keptDenialLimit) denials: later ones are only counted, not printed (\(whereToLook))")
        default:
            break
        }
    }

    /// True when an allowed request's event goes anywhere (the log file, or printed with `verbose`);
    /// when false, callers may skip building it and call ``countAllowedRequest()`` instead.
    public var wantsAllowedRequestEvents: Bool { logFile != nil || verbose }

    /// Counts an allowed request (`egress` or `service`) whose event would be neither logged nor
    /// printed: the same effect as ``record(_:)`` with it, without building the event.
    public func countAllowedRequest() {
        events.withLock { $0.allowedRequests += 1 }
    }

    /// Nil when the audit log (if any) still holds, unchanged and at its path, everything recorded
    /// so far; else what someone else did to it. Checked when the step has ended: a step that
    /// rewrites the log is a violation, not a way to hide one.
    public func logTampering() -> String? {
        guard let logFile, let logPath else { return nil }
        return seal.withLock { $0?.problem(fd: logFile.fileDescriptor, path: logPath) }
    }

    /// The events kept so far (see ``keptDenialLimit``): every event that is not an allowed request,
    /// up to the limits.
    public var recorded: [AuditEvent] { events.withLock { $0.events } }

    /// Violations recorded past ``keptDenialLimit`` (counted, in the log file, not in ``recorded``).
    public var unkeptViolations: Int { events.withLock { $0.unkeptViolations } }

    /// How many requests (egress and service) were allowed so far.
    public var allowedRequests: Int { events.withLock { $0.allowedRequests } }

    /// The human-readable line for an event.
    public func textLine(_ event: AuditEvent) -> String {
        let prefix = context.auditOnly ? "stepguard [audit mode, not enforced]:" : "stepguard:"
        let verb = switch event.decision {
        case .deny: context.auditOnly ? "would deny" : "DENY"
        case .error: "ERROR"
        case .allow: "allow"
        }
        let subject = event.subjectSummary.isEmpty ? "" : " [\(event.subjectSummary)]"
        return "\(prefix) \(verb) \(event.type.rawValue)\(subject) — \(event.reason)"
    }

    /// Writes the final verdict: the stderr line, and the GitHub job summary and annotations when
    /// running in GitHub Actions (`GITHUB_ACTIONS=true`).
    public func finish(_ verdict: Verdict, environment: [String: String]) {
        printer(verdict.line)
        guard environment["GITHUB_ACTIONS"] == "true" else { return }
        let reporter = GitHubReporter(context: context)
        reporter.annotations(verdict).forEach(annotationPrinter)
        if let summaryPath = environment["GITHUB_STEP_SUMMARY"], !summaryPath.isEmpty {
            reporter.appendSummary(verdict, events: recorded, allowedRequests: allowedRequests, to: summaryPath)
        }
    }

    private var jsonContext: [(String, AuditValue)] {
        var fields: [(String, AuditValue)] = [("mode", .string(context.auditOnly ? "audit" : "enforce"))]
        if context.auditOnly { fields.append(("enforced", .bool(false))) }
        if let step = context.step { fields.append(("step", .string(step))) }
        return fields
    }
}

/// Errors of the audit sinks.
public enum AuditError: Error, Sendable, CustomStringConvertible {
    /// The `--audit-log` file cannot be opened for appending.
    case cannotOpenLog(path: String, reason: String)

    public var description: String {
        switch self {
        case .cannotOpenLog(let path, let reason):
            "cannot open the audit log '\(path)' for appending: \(reason); choose a writable path with --audit-log"
        }
    }
}
