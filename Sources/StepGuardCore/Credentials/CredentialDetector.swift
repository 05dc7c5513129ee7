/// How long a credential stays valid once issued.
public enum CredentialLifetime: String, Sendable, Codable {
    /// A static credential that lives until someone revokes it (API keys, PATs, private keys).
    case longLived = "long-lived"
    /// A credential that expires by itself within hours (installation tokens, STS keys, JWTs).
    case shortLived = "short-lived"
}

/// One credential found in a value by a detector. Carries no part of the value.
public struct CredentialMatch: Sendable, Hashable {
    /// The detection rule's id (e.g. `github-pat`).
    public var ruleID: String
    /// What the rule detects, for humans.
    public var description: String
    /// Long- or short-lived.
    public var lifetime: CredentialLifetime

    /// Creates a match.
    public init(ruleID: String, description: String, lifetime: CredentialLifetime) {
        self.ruleID = ruleID
        self.description = description
        self.lifetime = lifetime
    }
}

/// The seam between the secret scanner's detection rules (which implement it) and the code that
/// classifies credentials in a step's environment (Identity) and in requests in flight (Egress),
/// so one set of rules classifies commits, environments and requests without those libraries
/// depending on each other.
public protocol CredentialDetector: Sendable {
    /// Credentials found in `value`.
    func credentials(in value: String) -> [CredentialMatch]
}
