import FoundationEssentials
import Glibc
import StepGuardAudit
import StepGuardEgress
import StepGuardPolicy
import StepGuardRevocation

/// `revoke: auto` in `run`: credentials minted through a service are revoked when its window
/// closes or the job's identity expires while the step runs; once a step that violated the policy
/// has ended, every credential it held is revoked before stepguard exits. In `mode: audit` what
/// would be revoked is recorded and nothing is sent.
final class RevocationGuard: Sendable {
    private let policy: Policy
    private let trail: AuditTrail
    private let stepEnvironment: [String: String]
    private let egress: EgressSession
    private let ledger: RevocationLedger
    private let drift: DriftRevocation?

    init(policy: Policy, trail: AuditTrail, stepEnvironment: [String: String], egress: EgressSession, identityExpiry: Date?) {
        self.policy = policy
        self.trail = trail
        self.stepEnvironment = stepEnvironment
        self.egress = egress
        ledger = RevocationLedger(policy: policy, trail: trail, transport: CurlHTTPClient.upstream(policy.network, purpose: .revocation))
        drift = policy.revoke == .off ? nil
            : DriftRevocation(services: policy.services, egress: egress, identityExpiry: identityExpiry,
                              environment: stepEnvironment, ledger: ledger)
    }

    /// Once the step has ended: stops the drift timers, and after a violation revokes what the step held.
    func stepEnded() {
        drift?.cancel()
        guard policy.revoke == .auto,
              let violation = trail.recorded.first(where: { $0.decision == .deny && $0.type != .revocation }) else { return }
        ledger.revoke(CredentialRevocation.held(environment: stepEnvironment, minted: egress.minted.held()),
                      why: "after a \(violation.type.rawValue) violation")
    }
}
