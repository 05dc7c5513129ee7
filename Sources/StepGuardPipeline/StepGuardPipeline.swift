/// Pipeline YAML analysis: GitHub Actions and GitLab CI workflow checks (``WorkflowChecker``)
/// and rewriting `run:` steps to run under `stepguard run` (``WorkflowWrapper``).
public enum StepGuardPipeline {}
