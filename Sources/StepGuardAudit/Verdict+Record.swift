extension Verdict {
    /// The verdict as one machine-readable line for `stepguard run --verdict-fd`, e.g.
    /// `stepguard-verdict verdict=blocked exit_code=77 violations=2 mode=enforce`. `verdict` is
    /// `blocked` (the policy blocked something in enforce mode), `failed` (the step's own non-zero
    /// exit, even 77) or `allowed`. Names no secret.
    public var record: String {
        let outcome = blocked ? "blocked" : (exitCode == 0 ? "allowed" : "failed")
        return "stepguard-verdict verdict=\(outcome) exit_code=\(exitCode) violations=\(violationCount) mode=\(auditOnly ? "audit" : "enforce")"
    }
}
