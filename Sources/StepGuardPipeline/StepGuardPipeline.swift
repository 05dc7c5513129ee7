/// Pipeline YAML analysis: GitHub Actions and GitLab CI workflow checks and wrapping.
public enum StepGuardPipeline {}
