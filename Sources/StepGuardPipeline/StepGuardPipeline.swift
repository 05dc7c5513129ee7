/// Pipeline YAML analysis: GitHub Actions and GitLab CI workflow checks (``WorkflowChecker``)
/// and rewriting `run:` steps to run under `stepguard run` (``WorkflowWrapper``).
public enum StepGuardPipeline {
    /// Exit status of `workflow check` when no finding was reported.
    public static let exitClean: Int32 = 0
    /// Exit status of `workflow check` when at least one finding was reported.
    public static let exitFindings: Int32 = 1
    /// Exit status for errors other than unreadable or invalid YAML (e.g. no workflow found).
    public static let exitError: Int32 = 2
    /// Exit status when a file cannot be read or is not valid YAML / not a workflow (EX_CONFIG).
    public static let exitInvalid: Int32 = 78
}
