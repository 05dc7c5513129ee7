/// An identity check that failed: what failed (``check``), with the values involved
/// (``detail``), and what to do about it (``remedy``).
///
/// Descriptions never contain a token, a signature or a secret value; they contain claim names,
/// claim values the policy pins, times, key ids, algorithms, URLs and file paths.
public struct IdentityError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The check that failed. New checks may be added; compare against the static members.
    public struct Check: Hashable, Sendable, CustomStringConvertible {
        /// Stable dotted name of the check, e.g. `"header.kid"` or `"lifetime.max_age"`.
        public let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The token is not a well-formed compact JWS (parts, base64url, JSON, size).
        public static let tokenFormat = Check("token.format")
        /// The token is larger than the size limit.
        public static let tokenSize = Check("token.size")
        /// The header `alg` is missing, not allowed by policy, `none`/HMAC, or disagrees with the key.
        public static let algorithm = Check("header.alg")
        /// The header `kid` names no key in the JWKS, or is missing when the JWKS has several keys.
        public static let keyID = Check("header.kid")
        /// The header carries `crit`, which stepguard does not support.
        public static let critical = Check("header.crit")
        /// The selected key is unusable (type, curve, size, `use`, `key_ops`).
        public static let key = Check("key")
        /// The signature does not verify with the selected key.
        public static let signature = Check("signature")
        /// The `iss` claim is missing or differs from the policy's issuer.
        public static let issuer = Check("claim.iss")
        /// The `aud` claim is malformed or does not contain the policy's audience.
        public static let audience = Check("claim.aud")
        /// The `sub` claim is missing or not a string.
        public static let subject = Check("claim.sub")
        /// The `exp` claim is missing, not a number, or the token has expired.
        public static let expiry = Check("claim.exp")
        /// The `nbf` claim is not a number, or the token is not valid yet.
        public static let notBefore = Check("claim.nbf")
        /// The `iat` claim is missing, not a number, or lies in the future.
        public static let issuedAt = Check("claim.iat")
        /// A claim pinned by the policy is missing or does not match.
        public static let claim = Check("claims")
        /// `exp − iat` exceeds `lifetime.max_ttl`.
        public static let maxTTL = Check("lifetime.max_ttl")
        /// `now − iat` exceeds `lifetime.max_age`.
        public static let maxAge = Check("lifetime.max_age")
        /// `exp − now` is below `lifetime.min_remaining`.
        public static let minRemaining = Check("lifetime.min_remaining")
        /// The JWKS (or OIDC discovery document) could not be fetched, read or parsed.
        public static let jwks = Check("jwks")
        /// The CI provider failed to hand out a token (HTTP error, bad response, command failed, timeout).
        public static let tokenSource = Check("token.source")
        /// No token is available here: no CI provider detected, or its variables are not set.
        /// With `required: false` this is not an error.
        public static let tokenUnavailable = Check("token.unavailable")
        /// The identity policy itself is unusable (bad `token:` value, bad `algorithms:`...).
        public static let policy = Check("policy")
        /// Revoking a credential the step held at its issuer failed (transport or TLS).
        public static let revocation = Check("revocation")
    }

    /// Which check failed.
    public let check: Check
    /// What failed, where, and the values involved.
    public let detail: String
    /// What to do about it.
    public let remedy: String

    /// Creates an error for `check` with a detail message and a remedy.
    public init(_ check: Check, _ detail: String, remedy: String) {
        self.check = check
        self.detail = detail
        self.remedy = remedy
    }

    /// True when the error is in the policy/configuration rather than in the token
    /// (`stepguard` maps it to exit code 78 instead of 77).
    public var isConfigurationError: Bool { check == .policy }

    public var description: String {
        "identity check \(check) failed: \(detail) — \(remedy)"
    }
}
