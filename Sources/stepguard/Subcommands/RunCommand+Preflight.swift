import Foundation
import StepGuardAudit
import StepGuardIdentity
import StepGuardPolicy

/// The job's verified identity and the verifier that checked it (reused for tokens in flight).
struct VerifiedJob {
    let identity: VerifiedIdentity
    let verifier: IdentityVerifier
}

/// What must hold before the step starts: the job's identity and a clean environment.
struct Preflight {
    let policy: Policy
    let trail: AuditTrail

    /// Verifies the job's identity when the policy asks for one. Returns whether the step may
    /// start and the verified identity (nil when none is asked for, or none is required and none
    /// could be had); a failed check is recorded as a deny event.
    /// - Throws: the ``IdentityError`` when the policy itself is at fault (exit 78, not 77).
    func verifyIdentity(environment: [String: String]) async throws(IdentityError) -> (passed: Bool, identity: VerifiedJob?) {
        guard let identityPolicy = policy.identity else { return (true, nil) }
        do {
            let verifier = try IdentityVerifier(policy: identityPolicy, caFile: policy.network.upstreamCA)
            guard let identity = try await verifier.acquireAndVerify(environment: environment) else {
                trail.record(AuditEvent(type: .identity, decision: .allow,
                                        reason: "no workload token available; identity.required is false, so the step runs without one",
                                        rule: "identity.required: false"))
                return (true, nil)
            }
            let remaining = Int(identity.expiresAt.timeIntervalSinceNow)
            trail.record(AuditEvent(type: .identity, decision: .allow,
                                    reason: "workload identity verified: sub \(identity.subject) from \(identity.issuer), expires in \(remaining)s",
                                    subject: ["iss": .string(identity.issuer), "sub": .string(identity.subject),
                                              "alg": .string(identity.algorithm.rawValue)]))
            return (true, VerifiedJob(identity: identity, verifier: verifier))
        } catch where error.isConfigurationError {
            throw error
        } catch {
            trail.record(AuditEvent(type: .identity, decision: .deny, reason: "\(error)", rule: "identity"))
            return (policy.mode == .audit, nil)
        }
    }

    /// Classifies the step's environment; returns the environment to give the step (long-lived
    /// credentials removed under `strip`), or nil when the step must not start.
    func checkCredentials(environment: [String: String]) throws -> [String: String]? {
        let classifier = try CredentialClassifier(policy: policy)
        let verdict = classifier.classify(environment: environment, action: policy.credentials.longLived)
        for finding in verdict.findings where finding.lifetime == .longLived {
            let stripped = verdict.stripped.contains(finding.variable)
            let denied = verdict.decision == .deny && !finding.exempted
            let outcome = stripped ? "; removed from the step's environment" : (finding.exempted ? "" : (denied ? "; refusing to start the step" : "; allowed by credentials.long_lived: allow"))
            trail.record(AuditEvent(type: .credential, decision: denied ? .deny : .allow,
                                    reason: finding.reason + outcome,
                                    rule: "credentials.long_lived: \(policy.credentials.longLived.rawValue)",
                                    subject: ["variable": .string(finding.variable), "credential": .string(finding.matches.map(\.ruleID).joined(separator: ","))]))
        }
        if verdict.decision == .deny && policy.mode == .enforce { return nil }
        return verdict.environment
    }
}
