import FoundationEssentials
import StepGuardCore
import Glibc

/// GitHub Actions output: `::error`/`::warning` workflow commands and a Markdown job summary.
struct GitHubReporter {
    let context: AuditTrail.Context

    /// One workflow command per violation (`::warning` in audit mode, where nothing was blocked).
    func annotations(_ verdict: Verdict) -> [String] {
        let command = verdict.auditOnly ? "warning" : "error"
        return verdict.violations.map { event in
            let title = "stepguard \(verdict.auditOnly ? "(audit mode) would deny" : "denied") \(event.type.rawValue)"
            return "::\(command) title=\(escapeProperty(title))::\(escapeData(event.reason))"
        }
    }

    /// Appends the step's report to the job summary file.
    func appendSummary(_ verdict: Verdict, events: [AuditEvent], allowedRequests: Int, to path: String) {
        var lines: [String] = []
        let status = verdict.violations.isEmpty ? "✅ allowed" : (verdict.auditOnly ? "⚠️ would be blocked (audit mode)" : "❌ blocked")
        let step = context.step.map { " `\(markdown($0))`" } ?? ""
        lines.append("### stepguard: step\(step) \(status)")
        lines.append("")
        if verdict.auditOnly {
            lines.append("> **Audit mode**: decisions were recorded but nothing was enforced.")
            lines.append("")
        }
        if events.contains(where: { $0.type == .isolation && $0.subject[AuditEvent.isolationFellBack] == .bool(true) }) {
            lines.append("> ⚠️ **Not isolated**: this runner gave stepguard no user namespaces, so `isolation: auto` fell back to "
                         + "proxy variables only and a client that ignores them was not decided. How to turn isolation on: "
                         + "[stepguard's Isolation section](\(AuditEvent.isolationRemedy)); `stepguard doctor` says what this machine lacks.")
            lines.append("")
        }
        lines.append("Policy `\(markdown(context.policy))` · command `\(markdown(context.command))` · \(markdown(verdict.outcome)) · exit \(verdict.exitCode) · \(allowedRequests) request\(allowedRequests == 1 ? "" : "s") allowed")
        lines.append("")
        let shown = events.filter { $0.decision != .allow || [.identity, .isolation, .tripwire, .exit].contains($0.type) }
        if !shown.isEmpty {
            lines.append("| decision | type | subject | reason |")
            lines.append("|---|---|---|---|")
            for event in shown {
                lines.append("| \(event.decision.rawValue) | \(event.type.rawValue) | \(markdown(event.subjectSummary)) | \(markdown(event.reason)) |")
            }
            lines.append("")
        }
        let unlisted = verdict.violationCount - verdict.violations.count
        if unlisted > 0 {
            lines.append("… and \(unlisted) more violation\(unlisted == 1 ? "" : "s"), counted but not listed (past the first \(AuditTrail.keptDenialLimit) denials; the audit log has each).")
            lines.append("")
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        let handle = FileOutput(fileDescriptor: fd, closeOnDealloc: true)
        handle.write(Data((lines.joined(separator: "\n") + "\n").utf8))
    }

    private func escapeData(_ text: String) -> String {
        text.replacingAll("%", with: "%25").replacingAll("\r", with: "%0D").replacingAll("\n", with: "%0A")
    }

    private func escapeProperty(_ text: String) -> String {
        escapeData(text).replacingAll(":", with: "%3A").replacingAll(",", with: "%2C")
    }

    private func markdown(_ text: String) -> String {
        text.replacingAll("|", with: "\\|").replacingAll("\n", with: " ").replacingAll("`", with: "'")
    }
}
