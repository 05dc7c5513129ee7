import FoundationEssentials
import Glibc
import StepGuardAudit

/// The decision on one request inside the intercepted connection to a service: the credential it
/// carries, the service's verdict, and — when it is an allowed token exchange — the response
/// field that holds the token it mints and the service that minted it.
struct ServiceRequestDecision: Sendable {
    let record: DecisionRecord
    /// For an allowed exchange (see ``MintOperation``): the service whose exchange it is (on a
    /// shared host, the one the request was an endpoint of) and the dotted JSON path of the token
    /// in the response.
    let mint: (service: String, field: String)?
}

/// The inputs of service decisions that do not change while the step runs.
struct ServiceContext: Sendable {
    let inspector: CredentialInspector
    let identity: JobIdentity?
    let stepStarted: Date
}

extension ServiceContext {
    /// Decides a request to `service` (its path already normalised), at `now`. `body` is the whole
    /// request body when the service carries credentials in bodies, else nil.
    ///
    /// On a host several services share (`service.members`), the request is decided by the members
    /// it is an endpoint of (``ServiceDefinition/declares(method:path:)``): by none, it is denied;
    /// by more than one, it is allowed only when all of them allow it. List order never decides.
    func decide(method: String, target: RequestTarget, headers: [(String, String)], body: [UInt8]?, route: Route,
                service: BoundService, now: Date) -> ServiceRequestDecision {
        guard !service.members.isEmpty else {
            return decideOne(method: method, target: target, headers: headers, body: body, route: route, service: service, now: now)
        }
        let names = service.members.map(\.definition.name).joined(separator: ", ")
        let rule = "services: \(names) (shared host)"
        let matched = service.members.filter { $0.definition.declares(method: method, path: target.path) }
        guard !matched.isEmpty else {
            let reason = "\(method) \(target.path) on \(route.host.text), which the services \(names) share, is an endpoint of none of them (rules/services), so none of their rules can decide it; it is denied"
            let record = DecisionRecord(.service, allowed: false, rule: rule, reason: reason, route: route, method: method, path: target.path,
                                        service: service, details: ["sensitive": .bool(false)])
            return ServiceRequestDecision(record: record, mint: nil)
        }
        let decisions = matched.map {
            decideOne(method: method, target: target, headers: headers, body: body, route: route, service: $0, now: now)
        }
        let allowed = decisions.filter(\.record.allowed)
        if allowed.isEmpty { return decisions[0] }
        if allowed.count == decisions.count { return decisions.first { $0.mint != nil } ?? decisions[0] }
        // Endpoints of several services that disagree: denied, naming each one's verdict.
        let verdicts = zip(matched, decisions).map { "\($0.definition.name) \($1.record.allowed ? "allows" : "denies") it (\($1.record.rule))" }
        let reason = "\(method) \(target.path) on \(route.host.text) is an endpoint of several of the services sharing it, which disagree: \(verdicts.joined(separator: "; ")); it is denied"
        let record = DecisionRecord(.service, allowed: false, rule: rule, reason: reason, route: route, method: method, path: target.path,
                                    service: service, details: decisions[0].record.details)
        return ServiceRequestDecision(record: record, mint: nil)
    }

    /// Decides a request to the one service `service`.
    private func decideOne(method: String, target: RequestTarget, headers: [(String, String)], body: [UInt8]?, route: Route,
                           service: BoundService, now: Date) -> ServiceRequestDecision {
        let definition = service.definition
        let inspected = InspectedRequest(method: method, target: target.originForm, headers: headers, body: body,
                                         locations: definition.credentials, service: definition.name)
        let finding = inspector.inspect(inspected, now: now)
        let verdict = service.decide(ServiceRequest(method: method, path: target.path, query: target.query, credential: finding),
                                     identity: identity, stepStarted: stepStarted, now: now)
        var details: [String: AuditValue] = ["credential": .string(finding.credentialClass.rawValue), "sensitive": .bool(verdict.sensitive)]
        if finding.credentialClass != .none {
            details["credential_kind"] = .string(finding.kind)
            details["credential_id"] = .string(finding.redacted)
        }
        let record = DecisionRecord(.service, allowed: verdict.allowed, rule: verdict.rule, reason: verdict.reason, route: route,
                                    method: method, path: target.path, service: service, details: details)
        let mint = verdict.allowed ? definition.mint(method: method, path: target.path) : nil
        return ServiceRequestDecision(record: record, mint: mint.map { (definition.name, $0.field) })
    }
}
