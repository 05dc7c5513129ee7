import StepGuardAudit
import StepGuardPolicy
import StepGuardSandbox
import Synchronization

/// `tripwires:` in `run`: watches an isolated step's hidden paths and applies `on_violation` when
/// the step touches one; says so when the step is not isolated and they cannot be enforced.
enum TripwireGuard {
    /// Records the tripwires' state and starts the watch. Returns a caveat for the containment
    /// summary (the verdict line) when tripwires are asked for but cannot be enforced, else nil.
    static func arm(_ started: StartedStep, policy: Policy, trail: AuditTrail, supervisor: StepSupervisor) -> String? {
        guard policy.tripwires == .on else { return nil }
        guard let watch = started.tripwires else {
            if let reason = started.tripwireFallback {
                trail.record(AuditEvent(type: .tripwire, decision: .allow,
                                        reason: "tripwires are not enforced: \(reason); the paths stay hidden", rule: "tripwires: on",
                                        subject: ["enforced": .bool(false)]))
                return "tripwires not enforced"
            }
            if started.isIsolated {
                trail.record(AuditEvent(type: .tripwire, decision: .allow,
                                        reason: "no filesystem.hide path exists on this machine: there is nothing to watch", rule: "tripwires: on"))
                return nil
            }
            trail.record(AuditEvent(type: .tripwire, decision: .allow,
                                    reason: "tripwires are not enforced: the step is not isolated, so touching a credential store is neither hidden nor noticed",
                                    rule: "tripwires: on", subject: ["enforced": .bool(false)]))
            return "tripwires not enforced"
        }
        let kills = policy.onViolation == .kill && policy.mode == .enforce
        trail.record(AuditEvent(type: .tripwire, decision: .allow,
                                reason: "tripwires on \(watch.count) hidden paths: opening, listing or changing one \(kills ? "kills the step" : "is a violation")"
                                    + (watch.namesUnavailable.map { "; removing, renaming, linking, making or mounting on a hidden path itself is not watched: \($0)" } ?? ""),
                                rule: "tripwires: on", subject: ["enforced": .bool(true), "paths": .int(watch.count)]))
        let reported = Mutex<Set<String>>([])
        watch.start { trip in
            if kills { supervisor.killAtOnce() }  // first: the bound is from the open to the kill
            guard reported.withLock({ $0.insert("\(trip.operation) \(trip.path)").inserted }) else { return }
            let outcome = kills ? "; the step is killed" : policy.mode == .enforce ? "; the step will fail (on_violation: fail)" : ""
            trail.record(AuditEvent(type: .tripwire, decision: .deny,
                                    reason: "the step tried to \(trip.operation) \(trip.path), a hidden credential store\(outcome)",
                                    rule: "tripwires: \(trip.hiddenEntry)",
                                    subject: ["path": .string(trip.path), "operation": .string(trip.operation),
                                              "processes": .string(trip.processes.joined(separator: ", "))]
                                        .merging(trip.actor.map { ["process": .string($0)] } ?? [:]) { $1 }))
        }
        return nil
    }
}
