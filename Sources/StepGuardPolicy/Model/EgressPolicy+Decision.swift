/// The outcome of an egress decision, with the rule that made it.
public struct EgressVerdict: Sendable, Equatable {
    public let allowed: Bool
    /// The rule text (`egress.deny: 10.0.0.0/8`) or the default that decided.
    public let rule: String
    /// A sentence for humans and the audit log.
    public let reason: String
}

extension EgressPolicy {
    /// Cloud metadata endpoints: denied unless an allow rule names them explicitly.
    public static let metadataEndpoints: [EgressRule] = [
        EgressRule(target: .network(try! CIDR("169.254.169.254")), port: nil),
        EgressRule(target: .network(try! CIDR("fd00:ec2::254")), port: nil),
        EgressRule(target: .host(try! HostPattern("metadata.google.internal")), port: nil),
    ]

    /// The decision for the name `host` before it is looked up, when the name alone settles it: a
    /// `deny` rule or the metadata rule names it, or nothing could allow it (`default: deny`, no
    /// `allow` rule names it, and none is an address rule its addresses might fall in). Nil when
    /// the addresses matter. A name denied here need not be resolved at all — and must not be: the
    /// DNS query for it would already carry data out.
    public func decideBeforeResolving(host: String, port: UInt16) -> EgressVerdict? {
        let verdict = decide(host: host, port: port, addresses: [])
        if verdict.allowed { return nil }  // allowed by name; its addresses may still be denied
        let addressRuleMayAllow = allow.contains { rule in
            if case .network = rule.target { return rule.port == nil || rule.port == port }
            return false
        }
        if verdict.rule == "egress.default: deny", addressRuleMayAllow { return nil }
        return verdict
    }

    /// Decides a connection to `host` (as the client asked for it) at `port`, to be made to
    /// `addresses` (what the name resolved to; every one is checked).
    ///
    /// Order: any `deny` match denies; then metadata endpoints are denied unless an explicit allow
    /// rule names them; then an `allow` match allows; else `default`.
    public func decide(host: String, port: UInt16, addresses: [IPAddress]) -> EgressVerdict {
        let candidates: [IPAddress?] = addresses.isEmpty ? [nil] : addresses
        func matching(_ rules: [EgressRule]) -> EgressRule? {
            rules.first { rule in candidates.contains { rule.matches(host: host, address: $0, port: port) } }
        }
        let target = "\(host):\(port)"
        if let rule = matching(deny) {
            return EgressVerdict(allowed: false, rule: "egress.deny: \(rule)", reason: "\(target) is denied by egress.deny rule '\(rule)'")
        }
        if matching(Self.metadataEndpoints) != nil {
            let explicit = allow.first { rule in
                rule.isExplicit && candidates.contains { rule.matches(host: host, address: $0, port: port) }
            }
            guard let explicit else {
                return EgressVerdict(allowed: false, rule: "built-in: cloud metadata endpoint",
                                     reason: "\(target) is a cloud metadata endpoint; allow it explicitly by name or address if the step needs it")
            }
            return EgressVerdict(allowed: true, rule: "egress.allow: \(explicit)", reason: "\(target) is allowed explicitly by '\(explicit)'")
        }
        if let rule = matching(allow) {
            return EgressVerdict(allowed: true, rule: "egress.allow: \(rule)", reason: "\(target) is allowed by egress.allow rule '\(rule)'")
        }
        switch defaultAction {
        case .allow:
            return EgressVerdict(allowed: true, rule: "egress.default: allow", reason: "\(target) matches no rule; egress.default is allow")
        case .deny:
            return EgressVerdict(allowed: false, rule: "egress.default: deny", reason: "\(target) is not in egress.allow; egress.default is deny")
        }
    }
}
