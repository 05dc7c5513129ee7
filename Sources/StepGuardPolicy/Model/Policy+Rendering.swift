import FoundationEssentials
import StepGuardCore
import Glibc

extension Policy {
    /// The policy as YAML with every default spelled out (what `stepguard policy show` prints).
    public func renderedYAML() -> String {
        var out: [String] = ["# effective policy from \(source)", "version: \(version)", "mode: \(mode.rawValue)",
                             "on_violation: \(onViolation.rawValue)", "grace_period: \(gracePeriod)"]
        if let identity {
            out.append("identity:")
            out.append("  token: \(identity.token.map(\.description) ?? "auto")")
            out.append("  issuer: \(quoted(identity.issuer))")
            out.append("  audience: \(quoted(identity.audience))")
            out.append("  jwks: \(identity.jwks.map(quoted) ?? "discovery")")
            out.append("  algorithms: [\(identity.algorithms.joined(separator: ", "))]")
            out.append(contentsOf: renderClaims(identity.claims, indent: "  "))
            let lifetime = identity.lifetime
            out.append("  lifetime:")
            out.append("    max_ttl: \(lifetime.maxTTL.map(\.description) ?? "unlimited")")
            out.append("    max_age: \(lifetime.maxAge.map(\.description) ?? "unlimited")")
            out.append("    leeway: \(lifetime.leeway)")
            out.append("    min_remaining: \(lifetime.minRemaining.map(\.description) ?? "0s")")
            out.append("  required: \(identity.required)")
        } else {
            out.append("identity: none  # no workload token is requested")
        }
        out.append("credentials:")
        out.append("  long_lived: \(credentials.longLived.rawValue)")
        out.append("  allow_vars: [\(credentials.allowVars.map { quoted($0.pattern) }.joined(separator: ", "))]")
        out.append("egress:")
        out.append("  default: \(egress.defaultAction.rawValue)")
        out.append("  allow: [\(egress.allow.map { quoted($0.description) }.joined(separator: ", "))]")
        out.append("  deny: [\(egress.deny.map { quoted($0.description) }.joined(separator: ", "))]")
        out.append("  resolve_names_for_address_rules: \(egress.resolveNamesForAddressRules)")
        out.append("  # built in, in every policy: denied unless an egress.allow rule names them explicitly (an address")
        out.append("  # or network inside the entry, or the exact name); network.resolve targets count as explicit")
        let width = EgressPolicy.protectedDestinations.map(\.description.count).max() ?? 0
        for destination in EgressPolicy.protectedDestinations {
            let padding = String(repeating: " ", count: width - destination.description.count)
            out.append("  #   \(destination)\(padding)  \(destination.what)")
        }
        if services.isEmpty {
            out.append("services: []")
        } else {
            out.append("services:")
            for service in services {
                out.append("  - service: \(service.service)")
                if !service.hosts.isEmpty { out.append("    hosts: [\(service.hosts.map { quoted($0.pattern) }.joined(separator: ", "))]") }
                if service.allow.isEmpty { out.append("    allow: []  # every sensitive request is denied") }
                for allowance in service.allow {
                    out.append("    - allow:")
                    out.append("        credential: \(allowance.credential.rawValue)")
                    if !allowance.methods.isEmpty { out.append("        methods: [\(allowance.methods.joined(separator: ", "))]") }
                    if !allowance.paths.isEmpty { out.append("        paths: [\(allowance.paths.map { quoted($0.pattern) }.joined(separator: ", "))]") }
                    if let window = allowance.window { out.append("        window: \(window)") }
                    if !allowance.audiences.isEmpty { out.append("        audience: [\(allowance.audiences.map { quoted($0.pattern) }.joined(separator: ", "))]") }
                    out.append(contentsOf: renderClaims(allowance.claims, indent: "        "))
                }
            }
        }
        if !network.resolve.isEmpty || network.upstreamCA != nil || network.dns != nil {
            out.append("network:")
            if !network.resolve.isEmpty {
                out.append("  resolve:")
                for (from, to) in network.resolve.sorted(by: { $0.key.description < $1.key.description }) {
                    out.append("    \(quoted(from.description)): \(quoted(to.description))")
                }
            }
            if let ca = network.upstreamCA { out.append("  upstream_ca: \(quoted(ca))") }
            if let dns = network.dns { out.append("  dns: \(quoted(dns.description))  # names are resolved here, not by the host's resolver") }
        }
        out.append("isolation: \(isolation.rawValue)")
        out.append("filesystem:")
        out.append("  hide: [\(filesystem.hide.map(quoted).joined(separator: ", "))]")
        out.append("tripwires: \(tripwires.rawValue)  # opening, listing or changing a hidden path stops the step (isolated steps only)")
        out.append("revoke: \(revoke.rawValue)  # after a violation, the step's GitHub and Vault tokens are revoked at their issuers")
        out.append("limits:")
        out.append("  processes: \(limits.processes.map(String.init) ?? "unlimited")")
        if !steps.isEmpty { out.append("steps: [\(steps.keys.sorted().joined(separator: ", "))]  # use --step NAME to apply one") }
        return out.joined(separator: "\n") + "\n"
    }

    private func renderClaims(_ claims: [String: [ClaimMatcher]], indent: String) -> [String] {
        guard !claims.isEmpty else { return ["\(indent)claims: {}"] }
        return ["\(indent)claims:"] + claims.keys.sorted().map { name in
            let values = claims[name]!.map(\.description)
            return "\(indent)  \(name): " + (values.count == 1 ? values[0] : "[\(values.joined(separator: ", "))]")
        }
    }

    private func quoted(_ text: String) -> String {
        "\"" + text.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"") + "\""
    }
}
