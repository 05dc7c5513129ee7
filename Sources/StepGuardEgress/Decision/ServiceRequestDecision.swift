import FoundationEssentials
import Glibc
import StepGuardAudit

/// The decision on one request inside the intercepted connection to a service: the credential it
/// carries, the service's verdict, and — when it is an allowed token exchange — the response
/// field that holds the token it mints.
struct ServiceRequestDecision: Sendable {
    let record: DecisionRecord
    /// The dotted JSON path of the token in the response of an allowed exchange (see ``MintOperation``).
    let mintedTokenField: String?
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
    func decide(method: String, target: RequestTarget, headers: [(String, String)], body: [UInt8]?, route: Route,
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
        return ServiceRequestDecision(record: record, mintedTokenField: mint?.field)
    }
}
