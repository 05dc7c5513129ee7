import StepGuardAudit
import StepGuardEgress
import StepGuardPolicy

/// `revoke: auto` in `run`: once a step that violated the policy has ended, the credentials it held
/// are revoked at their issuers before stepguard exits (recorded only, in `mode: audit`).
enum RevocationAfterViolation {
    static func run(policy: Policy, trail: AuditTrail, stepEnvironment: [String: String], egress: EgressSession) {
        guard policy.revoke == .auto,
              let violation = trail.recorded.first(where: { $0.decision == .deny && $0.type != .revocation }) else { return }
        let held = CredentialRevocation.held(environment: stepEnvironment, minted: egress.minted.held())
        guard !held.isEmpty else { return }
        CredentialRevocation.revoke(held, why: "after a \(violation.type.rawValue) violation", network: policy.network,
                                    auditOnly: policy.mode == .audit, trail: trail)
    }
}
