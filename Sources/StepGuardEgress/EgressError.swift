import StepGuardCore
import StepGuardAudit
import StepGuardPolicy

/// Errors of the egress proxy and its service catalog. Each says what happened, where, and what to do.
public struct EgressError: Error, Sendable, CustomStringConvertible, Equatable {
    enum Kind: Sendable, Equatable {
        case unknownService(name: String, location: SourceLocation?, known: [String])
        case serviceNeedsHosts(name: String, location: SourceLocation?)
        case servicesShareHost(first: String, second: String, host: String, problem: String, location: SourceLocation?)
        case invalidCatalog(file: String, problem: String)
        case cannotListen(reason: String)
        case cannotWriteTrustBundle(path: String, reason: String)
        case certificateAuthority(reason: String)
        case upstreamCA(path: String, reason: String)
        case proxyFailed(reason: String)
    }

    let kind: Kind

    /// A policy names a service that is not in the catalog (`rules/services`).
    public static func unknownService(_ name: String, at location: SourceLocation?, known: [String]) -> EgressError {
        EgressError(kind: .unknownService(name: name, location: location, known: known))
    }
    /// A service whose host is site-specific (e.g. `hashicorp-vault`) was named without `hosts:`.
    public static func serviceNeedsHosts(_ name: String, at location: SourceLocation?) -> EgressError {
        EgressError(kind: .serviceNeedsHosts(name: name, location: location))
    }
    /// Two services named in the policy intercept the same host and a request there could not
    /// always be given to one of them (`problem` says why): one would decide the other's requests.
    public static func servicesShareHost(_ first: String, _ second: String, host: String, problem: String, at location: SourceLocation?) -> EgressError {
        EgressError(kind: .servicesShareHost(first: first, second: second, host: host, problem: problem, location: location))
    }
    /// A catalog file is malformed.
    public static func invalidCatalog(file: String, problem: String) -> EgressError {
        EgressError(kind: .invalidCatalog(file: file, problem: problem))
    }
    /// The proxy could not bind its loopback port.
    public static func cannotListen(_ reason: String) -> EgressError { EgressError(kind: .cannotListen(reason: reason)) }
    /// The trust bundle for the step could not be written.
    public static func cannotWriteTrustBundle(path: String, reason: String) -> EgressError {
        EgressError(kind: .cannotWriteTrustBundle(path: path, reason: reason))
    }
    /// The per-run certificate authority could not be made or could not issue a certificate.
    public static func certificateAuthority(_ reason: String) -> EgressError { EgressError(kind: .certificateAuthority(reason: reason)) }
    /// `network.upstream_ca` cannot be loaded.
    public static func upstreamCA(path: String, reason: String) -> EgressError { EgressError(kind: .upstreamCA(path: path, reason: reason)) }
    /// The proxy stopped working while the step ran; the step is stopped (fail closed).
    public static func proxyFailed(_ reason: String) -> EgressError { EgressError(kind: .proxyFailed(reason: reason)) }

    public var description: String {
        switch kind {
        case .unknownService(let name, let location, let known):
            let place = location.map { "\($0): error: " } ?? "error: "
            let suggestion = nearest(to: name, in: known).map { " Did you mean '\($0)'?" } ?? ""
            return "\(place)unknown service '\(name)' in services.\(suggestion) Known services (rules/services): \(known.joined(separator: ", "))"
        case .serviceNeedsHosts(let name, let location):
            let place = location.map { "\($0): error: " } ?? "error: "
            return "\(place)service '\(name)' has no fixed host; list its hosts in the policy, e.g. '- service: \(name)\\n  hosts: [vault.example.com]'"
        case .servicesShareHost(let first, let second, let host, let problem, let location):
            let place = location.map { "\($0): error: " } ?? "error: "
            return "\(place)services '\(first)' and '\(second)' both intercept \(host), where each request is decided by the service whose endpoints it matches; but \(problem). Name one of the two, or give one of them hosts: of its own"
        case .invalidCatalog(let file, let problem):
            return "service catalog \(file) is invalid: \(problem); fix the file in rules/services"
        case .cannotListen(let reason):
            return "the egress proxy cannot listen on 127.0.0.1: \(reason); the step was not started"
        case .cannotWriteTrustBundle(let path, let reason):
            return "cannot write the step's CA bundle at \(path): \(reason); check that TMPDIR is writable"
        case .certificateAuthority(let reason):
            return "the per-run certificate authority failed: \(reason)"
        case .upstreamCA(let path, let reason):
            return "network.upstream_ca '\(path)' cannot be used: \(reason); give a PEM file with one or more CA certificates"
        case .proxyFailed(let reason):
            return "the egress proxy failed: \(reason); the step was stopped (fail closed)"
        }
    }
}

extension EgressError {
    /// What kind of failure keeps the proxy from starting (the executable maps it to an exit status).
    public enum Category: Sendable {
        /// The policy or the service catalog is wrong (an unknown service, an unusable `network.upstream_ca`).
        case configuration
        /// A facility is missing (no port to listen on, no place for the trust bundle).
        case unavailable
        /// stepguard itself failed.
        case internalFailure
    }

    /// What kind of failure this is.
    public var category: Category {
        switch kind {
        case .unknownService, .serviceNeedsHosts, .servicesShareHost, .invalidCatalog, .upstreamCA: .configuration
        case .cannotListen, .cannotWriteTrustBundle: .unavailable
        case .certificateAuthority, .proxyFailed: .internalFailure
        }
    }
}
