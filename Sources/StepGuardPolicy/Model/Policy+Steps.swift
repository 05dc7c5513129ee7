import StepGuardCore
extension Policy {
    /// The policy for `step` after its overrides: scalars replace, rule lists add to the base.
    ///
    /// - Throws: ``PolicyError`` when `step` names no entry of `steps:` (a typo must not silently
    ///   drop a step's restrictions); the message lists the known steps.
    public func effective(forStep step: String?) throws(PolicyError) -> Policy {
        guard let step else { return self }
        guard let override = steps[step] else {
            let known = steps.keys.sorted()
            let hint = nearest(to: step, in: known).map { "; did you mean '\($0)'?" } ?? ""
            throw PolicyError(file: source, message: "no step override named '\(step)' in the policy\(hint)",
                              expected: known.isEmpty ? "a 'steps:' entry named '\(step)'" : "one of: \(known.joined(separator: ", "))")
        }
        var result = self
        result.steps = [:]
        if let mode = override.mode { result.mode = mode }
        if let action = override.onViolation { result.onViolation = action }
        if let grace = override.gracePeriod { result.gracePeriod = grace }
        if let defaultAction = override.egressDefault { result.egress.defaultAction = defaultAction }
        result.egress.allow += override.egressAllow
        result.egress.deny += override.egressDeny
        if let resolve = override.egressResolveNames { result.egress.resolveNamesForAddressRules = resolve }
        if let credentials = override.credentials { result.credentials = credentials }
        result.services += override.services
        if let isolation = override.isolation { result.isolation = isolation }
        if let tripwires = override.tripwires { result.tripwires = tripwires }
        if !override.identityClaims.isEmpty {
            result.identity?.claims.merge(override.identityClaims) { _, stepValue in stepValue }
        }
        return result
    }
}
