import Dispatch
import FoundationEssentials
import Glibc
import StepGuardAudit
import StepGuardCore
import StepGuardEgress
import StepGuardPolicy
import Synchronization

/// The run's revocations: each credential is revoked (or reported) once, whether drift or a
/// violation asks first. Tokens are kept in memory only.
public final class RevocationLedger: Sendable {
    private let handled = Mutex<Set<String>>([])
    private let policy: Policy
    private let trail: AuditTrail
    private let transport: any HTTPClient

    /// A ledger for one run: `policy` bounds where tokens may be sent, `trail` records each revocation, `transport` sends the calls.
    public init(policy: Policy, trail: AuditTrail, transport: any HTTPClient) {
        self.policy = policy
        self.trail = trail
        self.transport = transport
    }

    /// Revokes those of `credentials` that no earlier call handled, saying `why`.
    public func revoke(_ credentials: [HeldCredential], why: String) {
        let fresh = handled.withLock { handled in credentials.filter { handled.insert($0.token).inserted } }
        guard !fresh.isEmpty else { return }
        CredentialRevocation.revoke(fresh, why: why, policy: policy, trail: trail, transport: transport)
    }
}

/// Just-in-time drift: while the step runs, the conditions a credential was minted under can end —
/// a service's `window:` closes, or the job's workload token expires. At that moment the
/// credentials minted through that service (all minted ones, when the identity expires) are
/// revoked, not only denied on their next use.
public final class DriftRevocation: Sendable {
    private let ended = Ended()

    private final class Ended: Sendable {
        let flag = Atomic<Bool>(false)
    }

    /// Schedules the revocations. A service's window closes when every `allow:` of it (in every
    /// entry that names it) has one: at the step's start plus the longest.
    public init(services: [ServiceRule], egress: EgressSession, identityExpiry: Date?, environment: [String: String],
                ledger: RevocationLedger) {
        var closes: [(at: Date, service: String?, why: String)] = []
        for name in Set(services.map(\.service)).sorted() {
            let allowances = services.filter { $0.service == name }.flatMap(\.allow)
            let windows = allowances.compactMap(\.window)
            guard !allowances.isEmpty, windows.count == allowances.count, let longest = windows.map(\.milliseconds).max() else { continue }
            closes.append((egress.stepStarted.addingTimeInterval(Double(longest) / 1000), name, "window closed"))
        }
        if let identityExpiry { closes.append((identityExpiry, nil, "identity expired")) }
        let minted = egress.minted
        let ended = ended
        for close in closes {
            let (service, why) = (close.service, close.why)
            DispatchQueue.global().asyncAfter(wallDeadline: .now() + max(0, close.at.timeIntervalSinceNow)) {
                guard !ended.flag.load(ordering: .acquiring) else { return }
                let held = minted.held().filter { service == nil || $0.service == service }
                ledger.revoke(CredentialRevocation.minted(held, environment: environment), why: why)
            }
        }
    }

    /// Makes what has not fired yet do nothing (the step has ended).
    public func cancel() {
        ended.flag.store(true, ordering: .releasing)
    }
}
