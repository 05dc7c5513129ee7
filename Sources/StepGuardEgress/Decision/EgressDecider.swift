import StepGuardAudit
import StepGuardPolicy

/// What a request line asks of the proxy once its destination is routed.
enum Ask: Sendable {
    /// `CONNECT host:port`: a tunnel.
    case connect
    /// A TCP connection the step opened to an address, captured (under isolation) and relayed
    /// like a tunnel: no request line, its destination is where it was going.
    case capture
    /// An absolute-form `http://` request.
    case request(method: String, path: String)

    var method: String {
        switch self {
        case .connect: "CONNECT"
        case .capture: "TCP"
        case .request(let method, _): method
        }
    }

    var path: String {
        switch self {
        case .connect, .capture: ""
        case .request(_, let path): path
        }
    }
}

/// One decision of the proxy, as it goes to the audit trail: its type, verdict, rule and reason, and
/// what it was about. The subject is built only when the event is kept (most allowed requests are
/// only counted).
struct DecisionRecord: Sendable {
    let type: AuditEventType
    let allowed: Bool
    let rule: String
    let reason: String
    let host: HostName.Normalised
    let port: UInt16
    /// The addresses the host resolved to (none: decided before resolving).
    let addresses: [IPAddress]
    let method: String
    let path: String
    let service: String?
    /// Fields of the subject beyond the destination (the credential found, …).
    var details: [String: AuditValue] = [:]

    init(_ type: AuditEventType, allowed: Bool, rule: String, reason: String, route: Route, method: String, path: String,
         service: BoundService?, details: [String: AuditValue] = [:]) {
        self.init(type, allowed: allowed, rule: rule, reason: reason, host: route.host, port: route.port, addresses: route.addresses,
                  method: method, path: path, service: service, details: details)
    }

    init(_ type: AuditEventType, allowed: Bool, rule: String, reason: String, host: HostName.Normalised, port: UInt16, addresses: [IPAddress],
         method: String, path: String, service: BoundService?, details: [String: AuditValue] = [:]) {
        (self.type, self.allowed, self.rule, self.reason) = (type, allowed, rule, reason)
        (self.host, self.port, self.addresses, self.method, self.path) = (host, port, addresses, method, path)
        self.service = service?.definition.name
        self.details = details
    }

    /// A refusal (`failure`) recorded as a denied decision of `type`.
    init(_ type: AuditEventType, refusing failure: ProxyFailure, route: Route, method: String, path: String, service: BoundService?) {
        self.init(type, allowed: false, rule: failure.rule, reason: failure.reason, route: route, method: method, path: path, service: service)
    }

    /// The audit subject: destination, method, path (without its query: queries may hold secrets), service, details.
    var subject: [String: AuditValue] {
        var subject: [String: AuditValue] = ["host": .string(host.text), "port": .int(Int(port)), "method": .string(method),
                                             "address": .string(addresses.map(\.description).joined(separator: ","))]
        if !path.isEmpty { subject["path"] = .string(String(path.prefix(512))) }
        if let service { subject["service"] = .string(service) }
        subject.merge(details) { _, detail in detail }
        return subject
    }

    /// The `403` that tells the client about this decision when it blocks.
    var denial: ProxyFailure { ProxyFailure(status: .forbidden, reason: reason, decision: "deny", rule: rule) }
}

/// The decision on the connection to a routed destination: what to do with it, and the record
/// that explains it (none when each request on it is decided, and recorded, on its own).
struct ConnectionDecision: Sendable {
    enum Action: Sendable {
        /// Relay the bytes of a CONNECT tunnel.
        case tunnel
        /// Answer the CONNECT, terminate its TLS with a leaf for `name` and decide each request to `service`.
        case intercept(service: BoundService, name: String)
        /// Send the absolute-form request upstream.
        case forward
        /// The absolute-form request goes to a service: its request decides (``EgressDecider/decideServiceRequest``).
        case inspect(service: BoundService)
        /// Answer with `failure`.
        case refuse(ProxyFailure)
    }

    /// What to do when the decision is allowed, or denied in `mode: audit` (recorded, not enforced).
    let action: Action
    let record: DecisionRecord?
}

/// The egress decisions of a session, free of I/O: which destinations the step may reach by
/// CONNECT or absolute-form request, which are services whose requests are inspected, and what
/// each decision records. Both fronts (the socket front and the NIO pipeline) ask it, so they
/// decide alike; ``ProxyState/enforce(_:)`` records a decision and applies `on_violation`.
struct EgressDecider: Sendable {
    let egress: EgressPolicy
    let services: [BoundService]
    /// Where the services are reached: a connection there by another name or by address is refused.
    let serviceAddresses: ServiceAddresses

    init(egress: EgressPolicy, services: [BoundService], resolveOverrides: [HostPort: HostPort]) {
        self.egress = egress
        self.services = services
        self.serviceAddresses = ServiceAddresses(services: services, resolveOverrides: resolveOverrides)
    }

    /// The policy-named service whose hosts include `host`, if any; when several named services
    /// intercept it, all of them as one (``BoundService/init(sharing:)``): each request is then
    /// decided by the one whose endpoints it matches, never by the order of `services:`.
    func service(for host: HostName.Normalised) -> BoundService? {
        guard case .name(let name) = host else { return nil }
        let matching = services.filter { $0.matches(host: name) }
        return matching.count > 1 ? BoundService(sharing: matching) : matching.first
    }

    /// The denial of a connection to a name the policy denies whatever it resolves to, decided
    /// before any lookup (see ``EgressPolicy/decideBeforeResolving(host:port:)``): a name no rule
    /// allows by name is never sent to the resolver unless the policy sets
    /// `egress.resolve_names_for_address_rules`. Nil when the name may be resolved.
    func decideBeforeResolving(host: HostName.Normalised, port: UInt16, _ ask: Ask) -> DecisionRecord? {
        guard case .name = host, let verdict = egress.decideBeforeResolving(host: host.text, port: port) else { return nil }
        let service = service(for: host)
        if service != nil, Self.isDefaultDeny(verdict) { return nil }
        return DecisionRecord(.egress, allowed: false, rule: verdict.rule, reason: verdict.reason, host: host, port: port, addresses: [],
                              method: ask.method, path: ask.path, service: service)
    }

    /// The egress verdict on `route`; a host named in `services:` is allowed unless a deny rule
    /// (or the metadata rule) names it. Learns the addresses of services.
    func verdict(for route: Route) -> ConnectionVerdict {
        verdict(for: route, service: service(for: route.host))
    }

    /// ``verdict(for:)`` with the route's service already looked up.
    private func verdict(for route: Route, service: BoundService?) -> ConnectionVerdict {
        let verdict = egress.decide(host: route.host.text, port: route.port, addresses: route.addresses, addressesFromPolicy: route.fromPolicy)
        if let service {
            serviceAddresses.learn(route, service: service.definition.name)
        } else if verdict.allowed, let refusal = serviceAddressRefusal(route) {
            return refusal
        }
        // A named service needs no egress.allow entry: the default deny does not apply to it.
        if let service, Self.isDefaultDeny(verdict) {
            return ConnectionVerdict(allowed: true, rule: "services: \(service.definition.name)",
                                     reason: "\(route.host.text):\(route.port) is the service \(service.definition.name) named in services:; its requests are inspected")
        }
        return ConnectionVerdict(allowed: verdict.allowed, rule: verdict.rule, reason: verdict.reason)
    }

    /// The decision on a connection to `route` for `ask`. `remembered` is a verdict on the same
    /// route decided earlier (the socket front remembers routes that need no lookup): it is checked
    /// again against the service addresses learned since.
    func decide(_ route: Route, _ ask: Ask, remembered: ConnectionVerdict? = nil) -> ConnectionDecision {
        let service = service(for: route.host)
        let verdict = remembered.map { $0.allowed && service == nil ? serviceAddressRefusal(route) ?? $0 : $0 } ?? verdict(for: route, service: service)
        let record = DecisionRecord(.egress, allowed: verdict.allowed, rule: verdict.rule, reason: verdict.reason, route: route,
                                    method: ask.method, path: ask.path, service: service)
        switch (ask, service) {
        case (.connect, nil), (.capture, nil):
            return ConnectionDecision(action: .tunnel, record: record)
        case (.connect, let service?), (.capture, let service?):
            guard case .name(let name) = route.host else {
                let failure = ProxyFailure(status: .forbidden, reason: "services are intercepted by name, not by address", decision: "deny",
                                           rule: "services: \(service.definition.name)")
                return ConnectionDecision(action: .refuse(failure), record: record)
            }
            return ConnectionDecision(action: .intercept(service: service, name: name), record: record)
        case (.request, nil):
            return ConnectionDecision(action: .forward, record: record)
        case (.request, let service?):
            // Allowed, each request is decided as a service request; denied, the connection is.
            return ConnectionDecision(action: .inspect(service: service), record: verdict.allowed ? nil : record)
        }
    }

    /// Whether `verdict` is `egress.default: deny` (which a service named in `services:` overrides).
    private static func isDefaultDeny(_ verdict: EgressVerdict) -> Bool {
        !verdict.allowed && verdict.rule == EgressPolicy.defaultDenyRule
    }

    /// The refusal of a connection to `route`, whose host names no service, that goes to a
    /// service's address: allowed as plain egress (an address rule, a CIDR, `default: allow`), it
    /// would reach the service uninspected. Nil when `route` is no such connection.
    private func serviceAddressRefusal(_ route: Route) -> ConnectionVerdict? {
        guard !services.isEmpty, let service = serviceAddresses.service(at: route) else { return nil }
        return ConnectionVerdict(allowed: false, rule: Self.serviceAddressRule,
                                 reason: "\(route.described) is an address of the service \(service) named in services:; connect to the service by its name so that its requests are inspected")
    }

    /// The rule of a connection refused because it goes to a service's address under another name.
    static let serviceAddressRule = "built-in: services are reached by name"
}

/// The egress verdict on a connection (CONNECT or an absolute-form request's host).
struct ConnectionVerdict: Sendable {
    let allowed: Bool
    let rule: String
    let reason: String
}
