import StepGuardAudit
import StepGuardEgress
import StepGuardPipeline
import StepGuardSandbox

/// Every exit status stepguard uses, and which typed outcome of a library maps to which: the
/// README's "Exit codes" in one place. The libraries report what happened; the numbers are chosen
/// here (sysexits.h for `run` and the configuration commands; 0/1/2 for the checkers).
enum ExitStatus {
    /// Blocked by policy (EX_NOPERM): identity, lifetime, credential, egress, service, isolation,
    /// persistence or tripwire.
    static let blocked: Int32 = 77
    /// A usage error (EX_USAGE).
    static let usage: Int32 = 64
    /// An invalid policy or configuration; nothing was run (EX_CONFIG).
    static let config: Int32 = 78
    /// A required facility is unavailable, e.g. isolation required but impossible (EX_UNAVAILABLE).
    static let unavailable: Int32 = 69
    /// An internal error (EX_SOFTWARE).
    static let software: Int32 = 70
    /// The step's program exists but is not executable / does not exist (as shells say).
    static let notExecutable: Int32 = 126
    static let notFound: Int32 = 127

    /// `scan` and `workflow check`: nothing found.
    static let clean: Int32 = 0
    /// `scan` and `workflow check`: something found.
    static let findings: Int32 = 1
    /// `scan` and `workflow`: the check could not be done (never 0 on error).
    static let failed: Int32 = 2

    /// `run`'s status: the step's own when nothing was blocked (in `mode: audit`, nothing is), 77
    /// when the policy blocked something or the step was not started.
    static func run(_ facts: Verdict.Facts) -> Int32 {
        facts.blocked ? blocked : facts.stepStatus ?? blocked
    }

    /// `run`'s status when the proxy cannot start.
    static func of(_ error: EgressError) -> Int32 {
        switch error.category {
        case .configuration: config
        case .unavailable: unavailable
        case .internalFailure: software
        }
    }

    /// `run`'s status when the step cannot be started or supervised.
    static func of(_ error: SandboxError) -> Int32 {
        switch error {
        case .noCommand: usage
        case .commandNotFound: notFound
        case .notExecutable: notExecutable
        case .spawnFailed: software
        case .isolationUnavailable, .limitUnavailable, .tripwiresUnavailable: unavailable
        }
    }

    /// `workflow`'s status for an error: 78 for unreadable or invalid input, 2 for the rest.
    static func of(_ error: PipelineError) -> Int32 {
        error.isInvalidInput ? config : failed
    }

    /// `workflow check`'s status: the worst error first, then findings, else clean.
    static func of(_ report: CheckReport) -> Int32 {
        if let worst = report.errors.map(of).max() { return worst }
        return report.findings.isEmpty ? clean : findings
    }
}
