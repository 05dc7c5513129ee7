/// Process spawning and supervision for build steps.
public enum StepGuardSandbox {}
