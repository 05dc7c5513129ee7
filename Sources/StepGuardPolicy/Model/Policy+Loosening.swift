extension Policy {
    /// How this policy enforces less than `base`, one phrase per setting (empty when it does not):
    /// `mode: audit`, a weaker `isolation`, `tripwires: off`, `revoke: off`, `on_violation: fail`, a weaker `credentials.long_lived`
    /// or more `allow_vars`, `egress.default: allow`. Adding egress destinations or services —
    /// what a step override is for — does not count.
    public func loosenings(from base: Policy) -> [String] {
        func weaker<T: CaseIterable & Equatable>(_ value: T, than other: T) -> Bool {
            let order = Array(T.allCases)  // each of these enums lists its strictest case first
            return order.firstIndex(of: value)! > order.firstIndex(of: other)!
        }
        var found: [String] = []
        if weaker(mode, than: base.mode) { found.append("mode: \(mode.rawValue)") }
        if weaker(isolation, than: base.isolation) { found.append("isolation: \(isolation.rawValue)") }
        if weaker(revoke, than: base.revoke) { found.append("revoke: \(revoke.rawValue)") }
        if weaker(tripwires, than: base.tripwires) { found.append("tripwires: \(tripwires.rawValue)") }
        if weaker(onViolation, than: base.onViolation) { found.append("on_violation: \(onViolation.rawValue)") }
        if weaker(credentials.longLived, than: base.credentials.longLived) { found.append("credentials.long_lived: \(credentials.longLived.rawValue)") }
        if !Set(credentials.allowVars).isSubset(of: base.credentials.allowVars) { found.append("credentials.allow_vars") }
        if egress.defaultAction == .allow && base.egress.defaultAction == .deny { found.append("egress.default: allow") }
        return found
    }
}
