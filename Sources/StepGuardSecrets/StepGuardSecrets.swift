/// Secret detection: rules, the matching engine, sources (files, stdin, git) and reporters.
public enum StepGuardSecrets {}
