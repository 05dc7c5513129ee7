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
    /// `deny` rule or a protected name (``protectedDestinations``) names it, or nothing could allow
    /// it (`default: deny`, no `allow` rule names it, and none is an address rule its addresses
    /// might fall in). Nil when the addresses matter. A name denied here need not be resolved at
    /// all — and must not be: the DNS query for it would already carry data out.
    public func decideBeforeResolving(host: String, port: UInt16) -> EgressVerdict? {
        let verdict = decide(host: host, port: port, addresses: [])
        if verdict.allowed { return nil }  // allowed by name; its addresses may still be denied
        let addressRuleMayAllow = allow.contains { rule in
            if case .network = rule.target { return rule.port == nil || rule.port == port }
            return false
        }
        if verdict.rule == Self.defaultDenyRule, addressRuleMayAllow { return nil }
        return verdict
    }

    /// Decides a connection to `host` (as the client asked for it) at `port`, to be made to
    /// `addresses` (what the name resolved to; every one is checked). `addressesFromPolicy` says
    /// the addresses come from the policy's own `network.resolve` entry for `host:port`, which
    /// names them explicitly: protected destinations are then not checked.
    ///
    /// Order: any `deny` match denies; then a protected destination (``protectedDestinations``)
    /// is denied unless an allow rule names it explicitly; then an `allow` match allows; else `default`.
    public func decide(host: String, port: UInt16, addresses: [IPAddress], addressesFromPolicy: Bool = false) -> EgressVerdict {
        let candidates: [IPAddress?] = addresses.isEmpty ? [nil] : addresses
        func matching(_ rules: [EgressRule]) -> EgressRule? {
            rules.first { rule in candidates.contains { rule.matches(host: host, address: $0, port: port) } }
        }
        let target = "\(host):\(port)"
        if let rule = matching(deny) {
            return EgressVerdict(allowed: false, rule: "egress.deny: \(rule)", reason: "\(target) is denied by egress.deny rule '\(rule)'")
        }
        if !addressesFromPolicy, let (destination, address) = unopenedProtectedDestination(host: host, port: port, candidates: candidates) {
            let via = address.map { $0.description == host ? "" : " (resolved to \($0))" } ?? ""
            let example: String
            switch destination.target {
            case .host: example = "the exact name '\(HostPattern.normalise(host))'"
            case .network(let network):
                let exact = (address ?? IPAddress(anySpelling: host)).map(\.unmapped).flatMap { network.contains($0) ? $0 : nil }
                example = "an address or network inside \(destination)" + (exact.map { ", e.g. '\(EgressRule(target: .network(CIDR(address: $0)), port: port))'" } ?? "")
            }
            return EgressVerdict(allowed: false, rule: "built-in: protected \(destination)",
                                 reason: "\(target)\(via) is \(destination.what), protected by every policy; if the step needs it, add \(example) to egress.allow")
        }
        if let rule = matching(allow) {
            return EgressVerdict(allowed: true, rule: "egress.allow: \(rule)", reason: "\(target) is allowed by egress.allow rule '\(rule)'")
        }
        switch defaultAction {
        case .allow:
            return EgressVerdict(allowed: true, rule: "egress.default: allow", reason: "\(target) matches no rule; egress.default is allow")
        case .deny:
            return EgressVerdict(allowed: false, rule: Self.defaultDenyRule, reason: "\(target) is not in egress.allow; egress.default is deny")
        }
    }
}
