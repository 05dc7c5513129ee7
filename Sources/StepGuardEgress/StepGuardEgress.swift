/// Egress proxy.
public enum StepGuardEgress {}
