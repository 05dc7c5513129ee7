import StepGuardCore
extension EgressPolicy {
    /// The decision on a DNS query for `name` (as the step asked for it, normalised like a host):
    /// nil when some connection to the name could be allowed, so the name may be resolved — an
    /// allow rule names it at some port that no deny rule takes back, `default: allow`, or
    /// `resolve_names_for_address_rules` with address rules. Otherwise the denial: every
    /// connection to the name would be refused before any lookup, so its query must not leave
    /// either (the name itself can carry data out: `<hex of a secret>.attacker.example`).
    ///
    /// Decided port by port with ``decideBeforeResolving(host:port:)`` over every port a rule
    /// names and one port no rule names, so a name and a port decide here as they do for a CONNECT.
    /// Services (`services:`) are not known here: the egress side allows their names itself.
    public func decideName(_ name: String) -> EgressVerdict? {
        var ports = Set((allow + deny).compactMap(\.port))
        let unnamed = (1...UInt16.max).first { !ports.contains($0) } ?? 1
        ports.insert(unnamed)
        var general: EgressVerdict?
        for port in ports.sorted() {
            guard let verdict = decideBeforeResolving(host: name, port: port) else { return nil }
            if port == unnamed { general = verdict }
        }
        guard let general else { return nil }
        return EgressVerdict(allowed: false, rule: general.rule, reason: Self.nameDenial(name, port: unnamed, general))
    }

    /// The reason of a denied name: the port-level reason of the most general port, said of the name.
    private static func nameDenial(_ name: String, port: UInt16, _ verdict: EgressVerdict) -> String {
        if verdict.rule == defaultDenyRule {
            return "\(name) is allowed by no egress.allow rule at any port and egress.default is deny; the name is not resolved (its query would carry it out) — allow the name to let the step resolve it"
        }
        if verdict.rule.hasPrefix("egress.deny: ") {
            return "\(name) is denied at every port by \(verdict.rule); the name is not resolved"
        }
        return verdict.reason.replacingAll("\(name):\(port)", with: name) + "; the name is not resolved"
    }
}
