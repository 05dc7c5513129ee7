import Crypto

/// How secrets appear in output.
public enum RedactionMode: String, Sendable, CaseIterable, Codable {
    /// A short prefix and a hash (the default).
    case partial
    /// Only a hash.
    case full
    /// The whole secret (for local triage only; never in CI logs).
    case none
}

/// The first 8 bytes of SHA-256 of `secret`, in hex: stable, not reversible.
public func secretHash(_ secret: String) -> String {
    let digest = SHA256.hash(data: Array(secret.utf8))
    return Hex.string(digest.prefix(8))
}

/// Redacts `secret` for output: a short prefix (at most 4 characters and at most a quarter
/// of the secret) followed by a hash, e.g. `ghp_…[sha256:1f2e3d4c5b6a7988]`. Never the whole secret.
public func redact(_ secret: String) -> String {
    redact(secret, mode: .partial)
}

/// Redacts `secret` according to `mode`.
public func redact(_ secret: String, mode: RedactionMode) -> String {
    switch mode {
    case .none:
        return secret
    case .full:
        return "[redacted sha256:\(secretHash(secret))]"
    case .partial:
        let keep = min(4, secret.count / 4)
        return "\(secret.prefix(keep))…[sha256:\(secretHash(secret))]"
    }
}
