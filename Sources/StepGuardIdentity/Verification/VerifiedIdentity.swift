import StepGuardCore
import FoundationEssentials
import Glibc

/// The identity of a job proven by a verified token: kept for the decisions made while the step
/// runs (egress, services). Holds claims, never the token or its signature.
public struct VerifiedIdentity: Sendable, Equatable {
    /// The `iss` claim (equal to the policy's issuer).
    public let issuer: String
    /// The `sub` claim.
    public let subject: String
    /// The `aud` claim as a list.
    public let audiences: [String]
    /// All claims of the token, as JSON values.
    public let claims: [String: JSONValue]
    /// `iat`, when present.
    public let issuedAt: Date?
    /// `exp`.
    public let expiresAt: Date
    /// `nbf`, when present.
    public let notBefore: Date?
    /// The header algorithm the token was verified with.
    public let algorithm: JWSAlgorithm
    /// The kid of the key that verified the token, when the token named one.
    public let keyID: String?

    /// Outcome of comparing two identities (see ``compareWorkload(_:pinnedClaims:)``).
    public enum WorkloadMatch: Sendable, Equatable {
        /// Same issuer, subject and pinned claims.
        case same
        /// Different, with a reason naming the first field that differs (values shown are claim values, not tokens).
        case different(reason: String)
    }

    /// Compares another verified identity (e.g. a bearer token seen in flight by the egress proxy,
    /// verified with the same ``IdentityVerifier``) with this one (the job's identity): the issuer,
    /// `sub` and every claim in `pinnedClaims` must be present in both and equal.
    public func compareWorkload(_ other: VerifiedIdentity, pinnedClaims: some Sequence<String>) -> WorkloadMatch {
        guard other.issuer == issuer else {
            return .different(reason: "issuer \"\(other.issuer)\" differs from the job's issuer \"\(issuer)\"")
        }
        guard other.subject == subject else {
            return .different(reason: "sub \"\(other.subject)\" differs from the job's sub \"\(subject)\"")
        }
        for name in Set(pinnedClaims).sorted() {
            let mine = claims[name], theirs = other.claims[name]
            guard let mine else {
                return .different(reason: "pinned claim \(name) is missing from the job's identity")
            }
            guard let theirs else {
                return .different(reason: "pinned claim \(name) is missing from the presented token")
            }
            if mine != theirs {
                return .different(reason: "claim \(name) is \(theirs.jsonText), the job's is \(mine.jsonText)")
            }
        }
        return .same
    }

    /// True when `other` is the same workload (see ``compareWorkload(_:pinnedClaims:)``).
    public func isSameWorkload(_ other: VerifiedIdentity, pinnedClaims: some Sequence<String>) -> Bool {
        compareWorkload(other, pinnedClaims: pinnedClaims) == .same
    }

    /// The identity as a JSON object (claims plus a few derived fields) for output and audit.
    public var jsonValue: JSONValue {
        var object: [String: JSONValue] = [
            "issuer": .string(issuer),
            "subject": .string(subject),
            "audiences": .array(audiences.map { .string($0) }),
            "algorithm": .string(algorithm.rawValue),
            "expires_at": .string(expiresAt.ISO8601Format()),
            "claims": .object(claims),
        ]
        if let keyID { object["kid"] = .string(keyID) }
        if let issuedAt { object["issued_at"] = .string(issuedAt.ISO8601Format()) }
        return .object(object)
    }

    /// A human-readable report: the identity fields, then every claim on its own line, sorted.
    public var textReport: String {
        var lines = [
            "issuer:     \(issuer)",
            "subject:    \(subject)",
            "audience:   \(audiences.joined(separator: ", "))",
            "algorithm:  \(algorithm)" + (keyID.map { " (kid \($0))" } ?? ""),
        ]
        if let issuedAt { lines.append("issued at:  \(issuedAt.ISO8601Format())") }
        lines.append("expires at: \(expiresAt.ISO8601Format())")
        lines.append("claims:")
        for name in claims.keys.sorted() {
            lines.append("  \(name): \(claims[name]!.jsonText)")
        }
        return lines.joined(separator: "\n")
    }
}
