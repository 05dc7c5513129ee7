import StepGuardCore
import FoundationEssentials
import Glibc
import StepGuardPolicy

/// Checks the claims of a signature-verified token against ``IdentityRules`` at a given time.
enum ClaimsValidator {
    static func validate(_ claims: [String: JSONValue], rules: IdentityRules, audience: AudienceCheck,
                         now: Date, algorithm: JWSAlgorithm, keyID: String?) throws(IdentityError) -> VerifiedIdentity {
        // iss: exact string equality.
        guard let issValue = claims["iss"] else {
            throw IdentityError(.issuer, "the token has no iss; the policy requires \"\(rules.issuer)\"", remedy: "use a token from the policy's issuer")
        }
        guard let iss = issValue.stringValue else {
            throw IdentityError(.issuer, "iss is a \(issValue.typeName), not a string", remedy: "the token is malformed")
        }
        guard iss == rules.issuer else {
            throw IdentityError(.issuer, "iss is \"\(iss)\"; the policy requires exactly \"\(rules.issuer)\"",
                                remedy: "use a token from the policy's issuer, or fix identity.issuer (it is compared exactly, trailing slash included)")
        }

        // sub: a string.
        guard let subValue = claims["sub"] else {
            throw IdentityError(.subject, "the token has no sub", remedy: "a workload token must name its subject")
        }
        guard let sub = subValue.stringValue else {
            throw IdentityError(.subject, "sub is a \(subValue.typeName), not a string", remedy: "the token is malformed")
        }

        // aud: a string or a non-empty array of strings.
        let audiences: [String]
        switch claims["aud"] {
        case .string(let a)?: audiences = [a]
        case .array(let items)?:
            guard !items.isEmpty else {
                throw IdentityError(.audience, "aud is an empty array", remedy: "request a token with the policy's audience")
            }
            var list: [String] = []
            for item in items {
                guard let s = item.stringValue else {
                    throw IdentityError(.audience, "aud contains a \(item.typeName); every entry must be a string", remedy: "the token is malformed")
                }
                list.append(s)
            }
            audiences = list
        case nil:
            throw IdentityError(.audience, "the token has no aud", remedy: "request a token with the policy's audience")
        case let other?:
            throw IdentityError(.audience, "aud is a \(other.typeName); it must be a string or an array of strings", remedy: "the token is malformed")
        }
        let requiredAudience: String?
        switch audience {
        case .policy: requiredAudience = rules.audience
        case .required(let a): requiredAudience = a
        case .any: requiredAudience = nil
        }
        if let requiredAudience, !audiences.contains(requiredAudience) {
            throw IdentityError(.audience, "aud is \(audiences.map { "\"\($0)\"" }.joined(separator: ", ")); it must contain \"\(requiredAudience)\"",
                                remedy: "request the token with audience \"\(requiredAudience)\" (identity.audience)")
        }

        // Times: numbers only.
        func time(_ name: String, _ check: IdentityError.Check) throws(IdentityError) -> Double? {
            guard let value = claims[name] else { return nil }
            guard let number = value.doubleValue else {
                throw IdentityError(check, "\(name) is a \(value.typeName) (\(value.jsonText)); it must be a number of seconds since the epoch",
                                    remedy: "the token is malformed")
            }
            return number
        }
        guard let exp = try time("exp", .expiry) else {
            throw IdentityError(.expiry, "the token has no exp", remedy: "only tokens that expire are accepted")
        }
        let nbf = try time("nbf", .notBefore)
        let iat = try time("iat", .issuedAt)
        let lifetime = rules.lifetime
        let t = now.timeIntervalSince1970
        let leeway = lifetime.leeway

        if t >= exp + leeway {
            throw IdentityError(.expiry, "the token expired at \(stamp(exp)); now is \(stamp(t)) (leeway \(seconds(leeway)))",
                                remedy: "request a fresh token just before the step")
        }
        if let nbf, nbf > t + leeway {
            throw IdentityError(.notBefore, "the token is not valid before \(stamp(nbf)); now is \(stamp(t)) (leeway \(seconds(leeway)))",
                                remedy: "check the clock of this machine and of the issuer")
        }
        if let iat, iat > t + leeway {
            throw IdentityError(.issuedAt, "the token was issued in the future at \(stamp(iat)); now is \(stamp(t)) (leeway \(seconds(leeway)))",
                                remedy: "check the clock of this machine and of the issuer")
        }
        if lifetime.maxTTL != nil || lifetime.maxAge != nil, iat == nil {
            throw IdentityError(.issuedAt, "the token has no iat, needed by lifetime.\(lifetime.maxTTL != nil ? "max_ttl" : "max_age")",
                                remedy: "use a token that carries iat, or remove the limit from the policy")
        }
        if let maxTTL = lifetime.maxTTL, let iat, exp - iat > maxTTL {
            throw IdentityError(.maxTTL, "exp − iat is \(seconds(exp - iat)); lifetime.max_ttl allows \(seconds(maxTTL))",
                                remedy: "request a shorter-lived token or raise identity.lifetime.max_ttl")
        }
        if let maxAge = lifetime.maxAge, let iat, t - iat > maxAge {
            throw IdentityError(.maxAge, "the token is \(seconds(t - iat)) old (issued \(stamp(iat))); lifetime.max_age allows \(seconds(maxAge))",
                                remedy: "request a fresh token just before the step")
        }
        if let minRemaining = lifetime.minRemaining, exp - t < minRemaining {
            throw IdentityError(.minRemaining, "the token has \(seconds(exp - t)) left (exp \(stamp(exp))); lifetime.min_remaining requires \(seconds(minRemaining))",
                                remedy: "request a fresh token just before the step")
        }

        // Pinned claims.
        for name in rules.claims.keys.sorted() {
            let matcher = rules.claims[name]!
            guard let value = claims[name] else {
                throw IdentityError(.claim, "claim \(name) is missing; the policy requires \(matcher.policyDescription)",
                                    remedy: "run the step from a job whose token carries \(name), or fix identity.claims")
            }
            guard matcher.matches(value) else {
                let shown: String
                switch value {
                case .string, .number, .bool, .null: shown = value.jsonText
                case .array, .object: shown = "a JSON \(value.typeName)"
                }
                throw IdentityError(.claim, "claim \(name) is \(shown); the policy requires \(matcher.policyDescription)",
                                    remedy: "run the step from a job that matches identity.claims.\(name), or change the policy")
            }
        }

        return VerifiedIdentity(
            issuer: iss, subject: sub, audiences: audiences, claims: claims,
            issuedAt: iat.map { Date(timeIntervalSince1970: $0) },
            expiresAt: Date(timeIntervalSince1970: exp),
            notBefore: nbf.map { Date(timeIntervalSince1970: $0) },
            algorithm: algorithm, keyID: keyID)
    }

    static func stamp(_ t: Double) -> String {
        guard t.isFinite, abs(t) < 1e11 else { return String(t) }
        return "\(Date(timeIntervalSince1970: t).ISO8601Format()) (\(Int64(t)))"
    }

    static func seconds(_ s: Double) -> String {
        guard s.isFinite, abs(s) < 1e15 else { return "\(s)s" }
        let whole = Int64(s.rounded(.towardZero))
        return whole == Int64(s.rounded()) || abs(s - Double(whole)) < 0.001 ? "\(whole)s" : fixedDecimal(s, fractionDigits: 1) + "s"
    }
}

/// Which audience a token must carry.
public enum AudienceCheck: Sendable, Equatable {
    /// The policy's `identity.audience` (the job's own token).
    case policy
    /// A given audience (e.g. a token presented to a signing service, minted for that service).
    case required(String)
    /// Any audience — only for comparing a workload's identity, never for admitting a job.
    case any
}
