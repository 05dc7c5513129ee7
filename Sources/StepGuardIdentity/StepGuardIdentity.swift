/// Workload identity: CI token sources, JWKS, strict JWS verification, lifetime checks.
public enum StepGuardIdentity {}
