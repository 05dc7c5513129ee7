/// Audit events and sinks.
public enum StepGuardAudit {}
