import FoundationEssentials
import Glibc
import StepGuardPolicy

/// The outcome of deciding one request to an intercepted service.
public struct ServiceVerdict: Sendable, Equatable {
    /// Whether the request may go on.
    public let allowed: Bool
    /// `services.NAME.allow[0]`, or `services.NAME` when nothing allowed it.
    public let rule: String
    /// Why, in words for the audit log and the deny response.
    public let reason: String
    /// Whether the catalog calls the request sensitive.
    public let sensitive: Bool
}

/// One request to a service, as the decision needs it.
public struct ServiceRequest: Sendable {
    /// The request method.
    public var method: String
    /// The normalised path, without the query.
    public var path: String
    /// The decoded query parameters, in order.
    public var query: [(String, String)]
    /// What was found about the request's credential.
    public var credential: CredentialFinding

    /// A request with its method, normalised path, query and credential finding.
    public init(method: String, path: String, query: [(String, String)], credential: CredentialFinding) {
        self.method = method
        self.path = path
        self.query = query
        self.credential = credential
    }
}

extension BoundService {
    /// Decides a request against the policy's `allow:` blocks (any-of). Every block's conditions
    /// must all hold: methods, paths, audience, window (time since the step started), claims of the
    /// job's identity, and the least credential class.
    public func decide(_ request: ServiceRequest, identity: JobIdentity?, stepStarted: Date, now: Date) -> ServiceVerdict {
        let name = definition.name
        let sensitive = definition.isSensitive(method: request.method, path: request.path)
        guard !rule.allow.isEmpty else {
            return ServiceVerdict(allowed: false, rule: "services.\(name)", reason: "service \(name) has no allow: block; every request to it is denied", sensitive: sensitive)
        }
        var firstFailure: (Int, String)?
        for (index, allowance) in rule.allow.enumerated() {
            if let failure = check(allowance, request, identity: identity, stepStarted: stepStarted, now: now) {
                if firstFailure == nil { firstFailure = (index, failure) }
                continue
            }
            return ServiceVerdict(allowed: true, rule: "services.\(name).allow[\(index)]",
                                  reason: "\(request.method) \(request.path) to \(name) is allowed (credential \(request.credential.credentialClass.rawValue))",
                                  sensitive: sensitive)
        }
        let (index, failure) = firstFailure!
        return ServiceVerdict(allowed: false, rule: "services.\(name).allow[\(index)]",
                              reason: "\(request.method) \(request.path) to \(name) is denied: \(failure)", sensitive: sensitive)
    }

    private func check(_ allowance: ServiceAllowance, _ request: ServiceRequest, identity: JobIdentity?, stepStarted: Date, now: Date) -> String? {
        if !allowance.methods.isEmpty, !allowance.methods.contains(request.method) {
            return "method \(request.method) is not in methods \(allowance.methods)"
        }
        if !allowance.paths.isEmpty, !allowance.paths.contains(where: { $0.matches(request.path) }) {
            return "path \(request.path) matches none of paths \(allowance.paths.map(\.pattern))"
        }
        if !allowance.audiences.isEmpty {
            let parameter = definition.audienceParameter ?? "audience"
            guard let audience = request.query.first(where: { $0.0 == parameter })?.1 else {
                return "the request names no \(parameter); the policy allows only \(allowance.audiences.map(\.pattern))"
            }
            if !allowance.audiences.contains(where: { $0.matches(audience) }) {
                return "\(parameter) '\(audience)' is not in \(allowance.audiences.map(\.pattern))"
            }
        }
        if let window = allowance.window {
            let elapsed = now.timeIntervalSince(stepStarted)
            if elapsed > Double(window.milliseconds) / 1000 {
                return "outside its just-in-time window: \(Int(elapsed))s after the step started, window is \(window)"
            }
        }
        for (claim, matchers) in allowance.claims.sorted(by: { $0.key < $1.key }) {
            guard let identity else { return "claim \(claim) is required but the job has no verified identity" }
            guard let value = identity.claims[claim] else { return "the job's identity has no claim \(claim)" }
            if !matchers.contains(where: value.matches) {
                return "claim \(claim) of the job's identity does not match \(matchers.map(\.description))"
            }
        }
        if !request.credential.credentialClass.satisfies(allowance.credential) {
            let found = request.credential
            return "credential '\(allowance.credential.rawValue)' is required but the request carries \(found.credentialClass == .none ? "none" : "a \(found.credentialClass.rawValue) \(found.kind) (\(found.redacted)) in \(found.location): \(found.detail)")"
        }
        return nil
    }
}
