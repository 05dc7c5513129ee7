import Foundation
import StepGuardPolicy
import StepGuardSecrets

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

/// The seam between the credential classifier and the secret scanner's detection rules, so one
/// set of rules classifies both commits and step environments.
public protocol CredentialDetector: Sendable {
    /// Credentials found in `value`.
    func credentials(in value: String) -> [CredentialMatch]
}

extension SecretDetector: CredentialDetector {
    /// The secret scanner's detections, without the secret itself.
    public func credentials(in value: String) -> [CredentialMatch] {
        detect(in: value).map { CredentialMatch(ruleID: $0.ruleID, description: $0.description, lifetime: $0.lifetime) }
    }
}

/// A variable of the step's environment that holds a credential. Names the variable, never its value.
public struct CredentialFinding: Sendable, Hashable {
    /// The environment variable's name.
    public var variable: String
    /// The strongest classification among the matches (long-lived wins).
    public var lifetime: CredentialLifetime
    /// The rules that matched.
    public var matches: [CredentialMatch]
    /// True when `allow_vars` exempts the variable.
    public var exempted: Bool

    /// A one-line reason: `GITHUB_PAT holds a long-lived credential (github-pat: GitHub personal access token)`.
    public var reason: String {
        let rules = matches.map { "\($0.ruleID): \($0.description)" }.joined(separator: "; ")
        return "\(variable) holds a \(lifetime.rawValue) credential (\(rules))" + (exempted ? ", exempted by allow_vars" : "")
    }
}

/// The classifier's verdict on an environment.
public struct CredentialVerdict: Sendable {
    /// `deny` when a non-exempt long-lived credential is present and the action is `deny`.
    public enum Decision: String, Sendable { case allow, deny }
    /// The decision.
    public var decision: Decision
    /// Every variable holding a credential, sorted by name.
    public var findings: [CredentialFinding]
    /// Variables removed (action `strip`), sorted.
    public var stripped: [String]
    /// The environment the step should get (without stripped variables).
    public var environment: [String: String]
    /// Non-exempt long-lived findings (those the action applies to).
    public var longLived: [CredentialFinding] { findings.filter { $0.lifetime == .longLived && !$0.exempted } }

    /// A summary naming variables, never values.
    public var summary: String {
        let names = longLived.map(\.variable).joined(separator: ", ")
        switch decision {
        case .deny: return "blocked: long-lived credentials in the step environment: \(names)"
        case .allow where !stripped.isEmpty: return "stripped long-lived credentials from the step environment: \(stripped.joined(separator: ", "))"
        case .allow where !longLived.isEmpty: return "allowed long-lived credentials in the step environment: \(names)"
        case .allow: return "no long-lived credentials in the step environment"
        }
    }
}

/// Classifies the values of the environment passed to a step as long- or short-lived credentials,
/// using the secret scanner's rules through ``CredentialDetector``, plus JWTs (short-lived when
/// they expire within `maxJWTLifetime`, long-lived otherwise).
public struct CredentialClassifier: Sendable {
    /// The detector (the secret scanner's built-in rules in production).
    public let detector: any CredentialDetector
    /// Globs of variable names exempted (`credentials.allow_vars`).
    public let allowVariables: [Glob]
    /// A JWT whose `exp − iat` exceeds this (or has no `exp`) counts as long-lived.
    public let maxJWTLifetime: TimeInterval

    /// Creates a classifier.
    public init(detector: any CredentialDetector, allowVariables: [Glob] = [], maxJWTLifetime: TimeInterval = 3600) {
        self.detector = detector
        self.allowVariables = allowVariables
        self.maxJWTLifetime = maxJWTLifetime
    }

    /// A classifier for the policy's `credentials:` section with the secret scanner's built-in
    /// rules. JWTs count as short-lived when `exp − iat` is within `identity.lifetime.max_ttl`
    /// (1 hour when the policy sets none).
    public init(policy: Policy) throws {
        let maxTTL = policy.identity?.lifetime.maxTTL.map { TimeInterval($0.milliseconds) / 1000 } ?? 3600
        self.init(detector: try SecretDetector.builtIn(prefilter: .keywords), allowVariables: policy.credentials.allowVars, maxJWTLifetime: maxTTL)
    }

    /// Classifies every variable of `environment` and applies `action` (`credentials.long_lived`).
    public func classify(environment: [String: String], action: CredentialsPolicy.LongLived) -> CredentialVerdict {
        var findings: [CredentialFinding] = []
        for name in environment.keys.sorted() {
            let value = environment[name]!
            var matches = detector.credentials(in: value)
            if let jwt = classifyJWT(value) { matches.append(jwt) }
            guard !matches.isEmpty else { continue }
            let lifetime: CredentialLifetime = matches.contains { $0.lifetime == .longLived } ? .longLived : .shortLived
            let exempt = allowVariables.contains { $0.matches(name) }
            findings.append(CredentialFinding(variable: name, lifetime: lifetime, matches: matches, exempted: exempt))
        }
        let offending = findings.filter { $0.lifetime == .longLived && !$0.exempted }.map(\.variable)
        var result = environment
        var stripped: [String] = []
        let decision: CredentialVerdict.Decision
        switch action {
        case .deny: decision = offending.isEmpty ? .allow : .deny
        case .allow: decision = .allow
        case .strip:
            decision = .allow
            for name in offending { result[name] = nil }
            stripped = offending
        }
        return CredentialVerdict(decision: decision, findings: findings, stripped: stripped, environment: result)
    }

    /// A whole value that is a compact JWS with an `exp`: short-lived when it lives no longer than
    /// `maxJWTLifetime`, long-lived otherwise (including no `exp`).
    func classifyJWT(_ value: String) -> CredentialMatch? {
        // ASCII whitespace only: Foundation's trimmingCharacters bridges through NSString, and this
        // runs on every variable of the step's environment before the step starts.
        func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || (0x09...0x0D).contains(byte) }
        guard let first = value.utf8.firstIndex(where: { !isSpace($0) }),
              let last = value.utf8.lastIndex(where: { !isSpace($0) }) else { return nil }
        let trimmed = Substring(value.utf8[first...last])
        guard trimmed.hasPrefix("eyJ"), trimmed.utf8.count <= CompactJWS.defaultMaximumSize * 4 else { return nil }
        let parts = trimmed.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3,
              let header = Base64URL.decode(Array(parts[0].utf8)).flatMap({ try? StrictJSON.parse($0) })?.objectValue,
              header["alg"]?.stringValue != nil,
              let payload = Base64URL.decode(Array(parts[1].utf8)).flatMap({ try? StrictJSON.parse($0) })?.objectValue else { return nil }
        guard let exp = payload["exp"]?.doubleValue else {
            return CredentialMatch(ruleID: "jwt-without-expiry", description: "JWT without exp", lifetime: .longLived)
        }
        let start = payload["iat"]?.doubleValue ?? payload["nbf"]?.doubleValue
        guard let start, exp - start <= maxJWTLifetime else {
            return CredentialMatch(ruleID: "jwt-long-lived", description: "JWT valid for more than \(Int(maxJWTLifetime))s", lifetime: .longLived)
        }
        return CredentialMatch(ruleID: "jwt", description: "JWT valid for \(Int(exp - start))s", lifetime: .shortLived)
    }
}
