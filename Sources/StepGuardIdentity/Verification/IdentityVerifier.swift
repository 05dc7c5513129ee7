import FoundationEssentials
import Glibc
import StepGuardPolicy

/// Verifies CI OIDC tokens strictly against an issuer's keys and an identity policy.
///
/// `stepguard run` calls ``acquireAndVerify(environment:)`` before it spawns the step; the egress
/// proxy calls ``verify(token:audience:)`` on bearer tokens seen in flight, with the same keys,
/// and compares the result with the job's identity using
/// ``VerifiedIdentity/compareWorkload(_:pinnedClaims:)``.
public struct IdentityVerifier: Sendable {
    /// The rules a token must satisfy.
    public let rules: IdentityRules
    /// The issuer's keys.
    public let keyStore: KeyStore
    /// Where the job's token comes from (nil: auto-detect from the environment).
    public let tokenSource: TokenSource?
    /// Whether a token is required (when true and none can be had, acquisition fails).
    public let required: Bool
    /// Options for token acquisition.
    public let acquisition: TokenAcquisitionOptions
    private let now: @Sendable () -> Date

    /// Creates a verifier from explicit rules and a key store.
    public init(rules: IdentityRules, keyStore: KeyStore, tokenSource: TokenSource? = nil, required: Bool = true,
                acquisition: TokenAcquisitionOptions = TokenAcquisitionOptions(), now: @escaping @Sendable () -> Date = Date.init) {
        self.rules = rules
        self.keyStore = keyStore
        self.tokenSource = tokenSource
        self.required = required
        self.acquisition = acquisition
        self.now = now
    }

    /// A verifier for the policy's `identity:` section. Keys come from `identity.jwks` (a URL, or a
    /// file the loader resolved against the policy's directory) or, when omitted, OIDC discovery.
    ///
    /// - Parameters:
    ///   - caFile: PEM CA bundle trusted for the JWKS, discovery and token endpoints instead of the
    ///     system's (tests, private issuers); `stepguard` passes `network.upstream_ca` when set.
    ///   - keyStoreOptions: cache directory, TTL and refetch rate limit.
    ///   - timeout: time limit for each HTTP request and for `buildkite-agent`.
    public init(policy: IdentityPolicy, caFile: String? = nil, keyStoreOptions: KeyStoreOptions,
                timeout: TimeInterval = 10, now: @escaping @Sendable () -> Date = Date.init) throws(IdentityError) {
        let transport = CurlTransport(timeout: timeout, connectTimeout: min(timeout, 5), caFile: caFile)
        let location = JWKSLocation.resolve(policy.jwks, issuer: policy.issuer, policyDirectory: nil)
        self.init(rules: try IdentityRules(policy: policy),
                  keyStore: KeyStore(location: location, transport: transport, options: keyStoreOptions, now: now),
                  tokenSource: policy.token, required: policy.required,
                  acquisition: TokenAcquisitionOptions(transport: transport, commandTimeout: timeout), now: now)
    }

    /// The pinned claim names of the policy (`sub` is always compared in addition).
    public var pinnedClaims: [String] { rules.claims.keys.sorted() }

    /// Verifies a compact JWS token: structure, header, key selection by kid, signature, issuer,
    /// audience, times, lifetime and pinned claims. May fetch the JWKS (blocking) on first use or
    /// once for an unknown kid.
    public func verify(token: String, audience: AudienceCheck = .policy) throws(IdentityError) -> VerifiedIdentity {
        let jws = try CompactJWS(token: token, maximumSize: rules.maximumTokenSize)
        let alg = try jws.algorithm
        guard rules.algorithms.contains(alg) else {
            throw IdentityError(.algorithm, "header alg \(alg) is not in the allowed algorithms [\(rules.algorithms.map(\.rawValue).sorted().joined(separator: ", "))]",
                                remedy: "add \(alg) to identity.algorithms if the issuer really signs with it")
        }
        let kid = try jws.keyID
        var keys = try keyStore.keys()
        var key: JWK
        switch try keys.select(kid: kid) {
        case .found(let found):
            key = found
        case .unknownKid(let unknown):
            guard let refreshed = try keyStore.refreshForUnknownKid(seen: keys) else {
                let why: String
                if case .file = keyStore.location { why = "a JWKS file is not refetched" } else { why = "not refetched: fetched too recently" }
                throw IdentityError(.keyID, "kid \"\(unknown)\" is not in the JWKS from \(keys.origin) (\(why))",
                                    remedy: "the token was not issued by this issuer's current keys; no other key is tried")
            }
            keys = refreshed
            guard case .found(let found) = try keys.select(kid: kid) else {
                throw IdentityError(.keyID, "kid \"\(unknown)\" is not in the JWKS from \(keys.origin), even after refetching it",
                                    remedy: "the token was not issued by this issuer's keys; no other key is tried")
            }
            key = found
        }
        let material = try key.material(for: alg)
        try jws.verifySignature(alg: alg, material: material, keyLabel: key.label)
        return try ClaimsValidator.validate(jws.claims, rules: rules, audience: audience, now: now(), algorithm: alg, keyID: kid)
    }

    /// Obtains the job's token from the CI provider and verifies it.
    /// Returns nil only when no token is available and the policy says `required: false`.
    public func acquireAndVerify(environment: [String: String]) async throws(IdentityError) -> VerifiedIdentity? {
        let acquirer = TokenAcquirer(options: acquisition)
        let token: String
        do {
            token = try await acquirer.acquire(source: tokenSource, audience: rules.audience, environment: environment)
        } catch {
            if !required, error.check == .tokenUnavailable { return nil }
            throw error
        }
        return try verify(token: token)
    }
}
