/// The outcome of an egress decision, with the rule that made it.
public struct EgressVerdict: Sendable, Equatable {
    public let allowed: Bool
    /// The rule text (`egress.deny: 10.0.0.0/8`) or the default that decided.
    public let rule: String
    /// A sentence for humans and the audit log.
    public let reason: String
}

extension EgressPolicy {
    /// The rule text of a denial by `default: deny` (a service named in `services:` overrides it).
    public static let defaultDenyRule = "egress.default: deny"

    /// The decision for the name `host` before it is looked up, when the name alone settles it: a
    /// `deny` rule or a protected name (``protectedDestinations``) names it, or no rule allows it
    /// by name under `default: deny`. Nil when the name may be looked up: it is allowed by name
    /// (its addresses are still checked), or `resolve_names_for_address_rules` asks to test names
    /// against the address rules. A name denied here must not be resolved: the DNS query for it
    /// would already carry data out.
    public func decideBeforeResolving(host: String, port: UInt16) -> EgressVerdict? {
        let verdict = decide(host: host, port: port, addresses: [])
        guard !verdict.allowed else { return nil }  // allowed by name; its addresses may still be denied
        if verdict.rule == Self.defaultDenyRule, resolveNamesForAddressRules, !addressRules(port: port).isEmpty { return nil }
        return verdict
    }

    /// The `allow` rules that are addresses or networks and cover `port`.
    private func addressRules(port: UInt16) -> [EgressRule] {
        allow.filter { rule in
            guard case .network = rule.target else { return false }
            return rule.port == nil || rule.port == port
        }
    }

    /// Decides a connection to `host` (as the client asked for it) at `port`, to be made to
    /// `addresses` (what the name resolved to; every one is checked). `addressesFromPolicy` says
    /// the addresses come from the policy's own `network.resolve` entry for `host:port`, which
    /// names them explicitly: protected destinations are then not checked.
    ///
    /// Order: any `deny` match denies; then a protected destination (``protectedDestinations``)
    /// is denied unless an allow rule names it explicitly; then an `allow` match allows; else `default`.
    /// An address `allow` rule allows a name only through its `network.resolve` target or with
    /// `resolve_names_for_address_rules` (else the name could not have been looked up), so
    /// `mode: audit` records the same verdict as `enforce` would.
    public func decide(host: String, port: UInt16, addresses: [IPAddress], addressesFromPolicy: Bool = false) -> EgressVerdict {
        let candidates: [IPAddress?] = addresses.isEmpty ? [nil] : addresses
        func matching(_ rules: [EgressRule]) -> EgressRule? {
            rules.first { rule in candidates.contains { rule.matches(host: host, address: $0, port: port) } }
        }
        let hostAddress = IPAddress(anySpelling: host)
        let isName = hostAddress == nil
        let addressesMayAllow = !isName || addressesFromPolicy || resolveNamesForAddressRules
        let allowRules = addressesMayAllow ? allow : allow.filter { if case .host = $0.target { true } else { false } }
        let target = "\(host):\(port)"
        if let rule = matching(deny) {
            return EgressVerdict(allowed: false, rule: "egress.deny: \(rule)", reason: "\(target) is denied by egress.deny rule '\(rule)'")
        }
        if !addressesFromPolicy, let (destination, address) = unopenedProtectedDestination(host: host, hostAddress: hostAddress, port: port, candidates: candidates) {
            let via = address.map { $0.description == host ? "" : " (resolved to \($0))" } ?? ""
            let example: String
            switch destination.target {
            case .host: example = "the exact name '\(HostPattern.normalise(host))'"
            case .network(let network):
                let exact = (address ?? hostAddress).map(\.unmapped).flatMap { network.contains($0) ? $0 : nil }
                example = "an address or network inside \(destination)" + (exact.map { ", e.g. '\(EgressRule(target: .network(CIDR(address: $0)), port: port))'" } ?? "")
            }
            return EgressVerdict(allowed: false, rule: "built-in: protected \(destination)",
                                 reason: "\(target)\(via) is \(destination.what), protected by every policy; if the step needs it, add \(example) to egress.allow")
        }
        if let rule = matching(allowRules) {
            return EgressVerdict(allowed: true, rule: "egress.allow: \(rule)", reason: "\(target) is allowed by egress.allow rule '\(rule)'")
        }
        switch defaultAction {
        case .allow:
            return EgressVerdict(allowed: true, rule: "egress.default: allow", reason: "\(target) matches no rule; egress.default is allow")
        case .deny:
            let unused = addressesMayAllow ? [] : addressRules(port: port)
            guard !unused.isEmpty else {
                return EgressVerdict(allowed: false, rule: Self.defaultDenyRule, reason: "\(target) is not in egress.allow; egress.default is deny")
            }
            let rules = unused.map { "'\($0)'" }.joined(separator: ", ")
            return EgressVerdict(allowed: false, rule: Self.defaultDenyRule,
                                 reason: "\(target) is allowed by no name rule and egress.default is deny; names are not looked up to test them against the address rules \(rules) — allow the name, or set egress.resolve_names_for_address_rules: true to send such names to the DNS resolver")
        }
    }
}
