import StepGuardCore
import StepGuardSecrets
import FoundationEssentials
import Glibc
import StepGuardAudit
import StepGuardIdentity
import StepGuardPipeline
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
            let keyStore = KeyStoreOptions(cacheDirectory: KeyStoreOptions.defaultCacheDirectory(environment: environment))
            let verifier = try IdentityVerifier(policy: identityPolicy, caFile: policy.network.upstreamCA, keyStoreOptions: keyStore)
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
        let classifier = CredentialClassifier(policy: policy, detector: try SecretDetector.builtIn(prefilter: .keywords))
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

/// What a previous step of the job could have set up, and what this one leaves for the next.
extension Preflight {
    /// The ways an override selected by `$STEPGUARD_STEP` (not by `--step`) enforces less than the
    /// base policy. A previous step can write `STEPGUARD_STEP` to `$GITHUB_ENV`, so from there an
    /// override may add destinations and services but not loosen the policy; when it would,
    /// the base policy is returned instead, under which the refusal is recorded and enforced.
    static func looserStepFromEnvironment(_ policy: Policy, file: String?, step: String?, explicit: Bool, mode: String?) throws -> (Policy, [String]) {
        guard !explicit, step != nil else { return (policy, []) }
        var base = try loadPolicy(file: file, step: nil)
        if let mode { base.mode = EnforcementMode(rawValue: mode)! }
        let loosenings = policy.loosenings(from: base)
        return (loosenings.isEmpty ? policy : base, loosenings)
    }

    /// Records the refusal of a looser override chosen through `$STEPGUARD_STEP`; false when the
    /// step must not start.
    func checkStepFromEnvironment(_ step: String?, loosenings: [String]) -> Bool {
        guard let step, !loosenings.isEmpty else { return true }
        trail.record(AuditEvent(type: .persistence, decision: .deny,
                                reason: "$STEPGUARD_STEP selects step '\(step)', whose override enforces less than the policy (\(loosenings.joined(separator: ", "))); a previous step can set $STEPGUARD_STEP through $GITHUB_ENV, so only --step \(step) may choose it",
                                rule: "built-in: STEPGUARD_STEP may not loosen the policy", subject: ["variable": .string("STEPGUARD_STEP")]))
        return false
    }

    /// Records, as deny events, what the step appended to `$GITHUB_ENV`/`$GITHUB_PATH` that would
    /// change how later steps are guarded or run, and any tampering with those files. In enforce
    /// mode the file gets back what it held before the step, when it is still the same file.
    func recordLaterStepChanges(_ files: LaterStepFiles) {
        let changes = files.changes()
        var undone: Set<String> = []
        if policy.mode == .enforce {
            for file in Set(changes.map(\.file)) where files.restore(file) { undone.insert(file) }
        }
        for change in changes {
            var subject: [String: AuditValue] = ["file": .string(change.file)]
            if let variable = change.variable { subject["variable"] = .string(variable) }
            let outcome = undone.contains(change.file) ? "; stepguard put back what the file held before the step" : ""
            trail.record(AuditEvent(type: .persistence, decision: .deny, reason: change.reason + outcome,
                                    rule: "built-in: a step may not change how later steps run", subject: subject))
        }
    }
}

extension RunInvocation {
    /// Writes the verdict record to `--verdict-fd`, when given: the one channel the caller (the
    /// GitHub action) reads the verdict from, which the step never holds.
    func writeRecord(of verdict: Verdict) {
        guard let verdictFD else { return }
        let line = Array((verdict.record + "\n").utf8)
        let written = line.withUnsafeBytes { write(verdictFD, $0.baseAddress, $0.count) }
        if written != line.count { printErr("stepguard: cannot write the verdict record to descriptor \(verdictFD): \(String(cString: strerror(errno)))") }
    }
}
