/// A destination every policy denies unless an `egress.allow` rule names it explicitly (see
/// ``isNamedExplicitly(by:)``): the host's loopback, link-local networks, and the instance-metadata,
/// credential and wire-server endpoints of the major clouds. `deny` rules and `default: allow`
/// cannot open it; only `network.resolve` (whose targets the policy author wrote) bypasses it.
public struct ProtectedDestination: Sendable, Hashable, CustomStringConvertible {
    /// The network, address or host-name glob that is protected.
    public let target: EgressRule.Target
    /// What answers there, for `policy show`, deny reasons and the README.
    public let what: String

    init(_ text: String, _ what: String) {
        do {
            target = try EgressRule(text).target
        } catch {
            preconditionFailure("built-in protected destination '\(text)' does not parse: \(error)")
        }
        self.what = what
    }

    /// Whether a connection to `host` (as the client asked for it) made to `address` (as resolved;
    /// nil before resolution) reaches this destination: the name matches, or the address — in any
    /// spelling, IPv4-mapped, IPv4-compatible and NAT64 (`64:ff9b::/96`) forms included — lies in it.
    public func covers(host: String, address: IPAddress?) -> Bool {
        covers(host: host, hostAddress: IPAddress(anySpelling: host), address: address)
    }

    /// ``covers(host:address:)`` with the host already read as an address (once per decision: the
    /// proxy asks for every request, and reading every spelling is the costly part).
    func covers(host: String, hostAddress: IPAddress?, address: IPAddress?) -> Bool {
        switch target {
        case .host(let pattern):
            return pattern.matches(host)
        case .network(let network):
            func inside(_ candidate: IPAddress?) -> Bool {
                guard let candidate else { return false }
                return network.contains(candidate) || candidate.embeddedIPv4.map(network.contains) == true
            }
            return inside(hostAddress) || inside(address)
        }
    }

    /// Whether `rule` names this destination explicitly: an address or network that lies inside it
    /// (`127.0.0.1:8080` or `127.0.0.0/8` for the loopback, but not `0.0.0.0/0`; `169.254.0.0/16`
    /// opens link-local addresses but not `169.254.169.254`, which is protected on its own), or,
    /// for a protected name, one host name without wildcards that it matches (`localhost`).
    /// A name rule never opens a protected address, whatever the name resolves to.
    public func isNamedExplicitly(by rule: EgressRule) -> Bool {
        switch (target, rule.target) {
        case (.network(let protected), .network(let named)):
            return named.network.bitWidth == protected.network.bitWidth && named.prefixLength >= protected.prefixLength
                && protected.contains(named.network)
        case (.host(let protected), .host(let named)):
            return named.isLiteral && protected.matches(named.pattern)
        default:
            return false
        }
    }

    public var description: String {
        switch target {
        case .host(let pattern): pattern.description
        case .network(let network): network.description
        }
    }
}

extension EgressPolicy {
    /// The destinations every policy denies unless an allow rule names them explicitly; the most
    /// specific first (a denial names the first one not opened).
    ///
    /// Sources: AWS EC2 IMDS (IPv4 and Nitro IPv6), ECS task metadata / CodeBuild credentials,
    /// EKS Pod Identity, Azure IMDS and WireServer, GCP metadata server, Alibaba Cloud metadata,
    /// Oracle Cloud metadata; DigitalOcean, Hetzner, OpenStack, Linode and others use 169.254.169.254.
    public static let protectedDestinations: [ProtectedDestination] = [
        ProtectedDestination("169.254.169.254", "instance metadata and credentials: AWS IMDS, GCP, Azure IMDS, Oracle, OpenStack, DigitalOcean, Hetzner"),
        ProtectedDestination("fd00:ec2::254", "AWS IMDS over IPv6 (Nitro)"),
        ProtectedDestination("169.254.170.2", "AWS ECS task metadata and container credentials (also CodeBuild)"),
        ProtectedDestination("169.254.170.23", "AWS EKS Pod Identity agent credentials"),
        ProtectedDestination("fd00:ec2::23", "AWS EKS Pod Identity agent credentials over IPv6"),
        ProtectedDestination("168.63.129.16", "Azure WireServer (VM agent, extension settings and their secrets)"),
        ProtectedDestination("100.100.100.200", "Alibaba Cloud instance metadata and RAM role credentials"),
        ProtectedDestination("192.0.0.192", "Oracle Cloud instance metadata (legacy address)"),
        ProtectedDestination("metadata.google.internal", "the GCP metadata server"),
        ProtectedDestination("metadata", "the GCP metadata server's short name"),
        ProtectedDestination("instance-data", "AWS IMDS by name (Amazon-provided VPC DNS)"),
        ProtectedDestination("instance-data.ec2.internal", "AWS IMDS by name (Amazon-provided VPC DNS)"),
        ProtectedDestination("localhost", "the loopback's name"),
        ProtectedDestination("*.localhost", "loopback names (RFC 6761)"),
        ProtectedDestination("127.0.0.0/8", "the host's loopback (local registries, databases, the runner's own services)"),
        ProtectedDestination("::1", "the host's IPv6 loopback"),
        ProtectedDestination("::", "the IPv6 unspecified address (a connection to :: reaches the loopback on Linux)"),
        ProtectedDestination("0.0.0.0/8", "'this host' (a connection to 0.0.0.0 reaches the loopback on Linux)"),
        ProtectedDestination("169.254.0.0/16", "IPv4 link-local (instance metadata and container credential endpoints)"),
        ProtectedDestination("fe80::/10", "IPv6 link-local"),
    ]

    /// The first protected destination a connection reaches that no allow rule names explicitly,
    /// with the address (or nil: the name) that reaches it.
    func unopenedProtectedDestination(host: String, hostAddress: IPAddress?, port: UInt16,
                                      candidates: [IPAddress?]) -> (ProtectedDestination, IPAddress?)? {
        for destination in Self.protectedDestinations {
            for candidate in candidates where destination.covers(host: host, hostAddress: hostAddress, address: candidate) {
                let opened = allow.contains { rule in
                    destination.isNamedExplicitly(by: rule) && rule.matches(host: host, address: candidate, port: port)
                }
                if !opened { return (destination, candidate) }
            }
        }
        return nil
    }
}
