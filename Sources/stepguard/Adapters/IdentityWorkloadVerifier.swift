import FoundationEssentials
import Glibc
import StepGuardEgress
import StepGuardIdentity

/// Checks bearer JWTs seen in flight against the job's verified identity, with the same keys and
/// rules that verified the job's own token (`credential: workload`).
struct IdentityWorkloadVerifier: WorkloadTokenVerifier {
    let verifier: IdentityVerifier
    let job: VerifiedIdentity

    init(verifier: IdentityVerifier, job: VerifiedIdentity) {
        self.verifier = verifier
        self.job = job
    }

    func check(token: String, now: Date) -> WorkloadTokenCheck {
        do {
            // Tokens for other relying parties (Sigstore, Vault, a cloud) carry their own audience.
            let other = try verifier.verify(token: token, audience: .any)
            switch job.compareWorkload(other, pinnedClaims: verifier.pinnedClaims) {
            case .same: return .sameIdentity
            case .different(let reason): return .otherIdentity(reason)
            }
        } catch {
            return .unverified(error.description)
        }
    }
}

extension JobIdentity {
    /// The job identity the proxy compares credentials with, from the verified token.
    init(_ verified: VerifiedIdentity) {
        var claims: [String: ClaimValue] = [:]
        for (name, value) in verified.claims {
            switch value {
            case .string(let text): claims[name] = .string(text)
            case .bool(let flag): claims[name] = .bool(flag)
            case .number: if let number = value.doubleValue { claims[name] = .number(number) }
            default: continue  // arrays and objects are never matched by policy globs
            }
        }
        self.init(issuer: verified.issuer, subject: verified.subject, claims: claims, expiresAt: verified.expiresAt)
    }
}
