import StepGuardCore
import FoundationEssentials
import Glibc
import StepGuardPolicy

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
    public var claims: [String: [ClaimMatcher]]
    /// Lifetime limits.
    public var lifetime: LifetimeRules
    /// Maximum token size in bytes.
    public var maximumTokenSize: Int

    /// Creates rules. `algorithms` defaults to RS256 and ES256.
    public init(issuer: String, audience: String, algorithms: Set<JWSAlgorithm> = Set(JWSAlgorithm.defaultAllowed),
                claims: [String: [ClaimMatcher]] = [:], lifetime: LifetimeRules = LifetimeRules(),
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

extension ClaimMatcher {
    /// Whether the token's claim `value` satisfies this policy matcher: a glob matches only a JSON
    /// string (never an array, object, number or boolean); a number matches only a JSON number of
    /// the same value; a boolean only the same JSON boolean.
    public func matches(_ value: JSONValue) -> Bool {
        switch (self, value) {
        case (.glob(let glob), .string(let s)): return glob.matches(s)
        case (.number(let n), .number(let m)): return n == m.doubleValue
        case (.bool(let b), .bool(let c)): return b == c
        default: return false
        }
    }
}

extension Array where Element == ClaimMatcher {
    /// Any-of: true when one matcher accepts `value`.
    func matches(_ value: JSONValue) -> Bool { contains { $0.matches(value) } }

    /// `"main"` or `any of ["main", "refs/tags/v*"]`, for error messages.
    var policyDescription: String {
        count == 1 ? self[0].description : "any of [" + map(\.description).joined(separator: ", ") + "]"
    }
}

extension IdentityRules {
    /// Rules from the policy's `identity:` section (the loader has validated it; this re-checks
    /// the algorithm names and converts durations).
    public init(policy: IdentityPolicy) throws(IdentityError) {
        var algorithms = Set<JWSAlgorithm>()
        for name in policy.algorithms {
            do {
                algorithms.insert(try JWSAlgorithm.parse(name))
            } catch {
                throw IdentityError(.policy, "identity.algorithms lists \"\(name)\": \(error.detail)", remedy: error.remedy)
            }
        }
        guard !algorithms.isEmpty else {
            throw IdentityError(.policy, "identity.algorithms is empty", remedy: "list at least one algorithm, e.g. [RS256, ES256]")
        }
        func seconds(_ duration: PolicyDuration?) -> TimeInterval? {
            duration.map { TimeInterval($0.milliseconds) / 1000 }
        }
        self.init(issuer: policy.issuer, audience: policy.audience, algorithms: algorithms, claims: policy.claims,
                  lifetime: LifetimeRules(maxTTL: seconds(policy.lifetime.maxTTL), maxAge: seconds(policy.lifetime.maxAge),
                                          leeway: seconds(policy.lifetime.leeway) ?? 0, minRemaining: seconds(policy.lifetime.minRemaining)))
    }
}
