import Foundation

/// What a token must satisfy: the identity policy in the form the verifier uses.
/// Build it from the policy's `identity:` section (``IdentityRules/init(policy:)``) or directly.
public struct IdentityRules: Sendable {
    /// Exact `iss` (a trailing slash is a different issuer).
    public var issuer: String
    /// A value the token's `aud` must contain.
    public var audience: String
    /// Allowed header algorithms (`none` and HMAC can never be listed).
    public var algorithms: Set<JWSAlgorithm>
    /// Claims the token must carry, with the patterns each must match (every listed claim must match).
    public var claims: [String: ClaimMatcher]
    /// Lifetime limits.
    public var lifetime: LifetimeRules
    /// Maximum token size in bytes.
    public var maximumTokenSize: Int

    /// Creates rules. `algorithms` defaults to RS256 and ES256.
    public init(issuer: String, audience: String, algorithms: Set<JWSAlgorithm> = Set(JWSAlgorithm.defaultAllowed),
                claims: [String: ClaimMatcher] = [:], lifetime: LifetimeRules = LifetimeRules(),
                maximumTokenSize: Int = CompactJWS.defaultMaximumSize) {
        self.issuer = issuer
        self.audience = audience
        self.algorithms = algorithms
        self.claims = claims
        self.lifetime = lifetime
        self.maximumTokenSize = maximumTokenSize
    }
}

/// Token lifetime limits, in seconds. `nil` means "no limit" for the optional ones.
public struct LifetimeRules: Sendable, Equatable {
    /// Maximum `exp − iat`.
    public var maxTTL: TimeInterval?
    /// Maximum `now − iat`.
    public var maxAge: TimeInterval?
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    public var leeway: TimeInterval
    /// Minimum `exp − now` when the step starts.
    public var minRemaining: TimeInterval?

    /// Creates lifetime limits (default: no max_ttl, max_age or min_remaining; no leeway).
    public init(maxTTL: TimeInterval? = nil, maxAge: TimeInterval? = nil, leeway: TimeInterval = 0, minRemaining: TimeInterval? = nil) {
        self.maxTTL = maxTTL
        self.maxAge = maxAge
        self.leeway = leeway
        self.minRemaining = minRemaining
    }
}

/// One allowed value of a pinned claim.
public enum ClaimPattern: Sendable, Hashable, CustomStringConvertible {
    /// Matches a JSON string by glob (`*` any run of characters, `?` one character). Never matches
    /// an array, object, number or boolean.
    case glob(String)
    /// Matches a JSON number of exactly this value.
    case number(JSONNumber)
    /// Matches a JSON boolean of exactly this value.
    case bool(Bool)

    public var description: String {
        switch self {
        case .glob(let g): return "\"\(g)\""
        case .number(let n): return n.literal
        case .bool(let b): return b ? "true" : "false"
        }
    }

    /// Whether `value` satisfies this pattern.
    public func matches(_ value: JSONValue) -> Bool {
        switch (self, value) {
        case (.glob(let pattern), .string(let s)): return GlobPattern.matches(pattern, s)
        case (.number(let n), .number(let m)): return n == m
        case (.bool(let b), .bool(let c)): return b == c
        default: return false
        }
    }
}

/// The patterns a claim must match: any one of them (a policy list means any-of).
public struct ClaimMatcher: Sendable, Hashable, CustomStringConvertible {
    /// Alternatives; the claim matches when one of them matches.
    public var alternatives: [ClaimPattern]

    /// Creates a matcher accepting any of `alternatives`.
    public init(_ alternatives: [ClaimPattern]) { self.alternatives = alternatives }

    /// Whether `value` satisfies one of the alternatives.
    public func matches(_ value: JSONValue) -> Bool { alternatives.contains { $0.matches(value) } }

    public var description: String {
        alternatives.count == 1 ? alternatives[0].description : "any of [" + alternatives.map(\.description).joined(separator: ", ") + "]"
    }
}

/// Shell-style glob over Unicode scalars: `*` matches any run (including `/`), `?` exactly one.
enum GlobPattern {
    static func matches(_ pattern: String, _ text: String) -> Bool {
        let p = Array(pattern.unicodeScalars), t = Array(text.unicodeScalars)
        var pi = 0, ti = 0, star = -1, mark = 0
        while ti < t.count {
            if pi < p.count, p[pi] == "?" || (p[pi] != "*" && p[pi] == t[ti]) {
                pi += 1; ti += 1
            } else if pi < p.count, p[pi] == "*" {
                star = pi; mark = ti; pi += 1
            } else if star >= 0 {
                pi = star + 1; mark += 1; ti = mark
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}
