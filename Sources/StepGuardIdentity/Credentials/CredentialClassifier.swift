import FoundationEssentials
import Glibc
import StepGuardPolicy
import StepGuardCore

/// A variable of the step's environment that holds a credential. Names the variable, never its value.
public struct CredentialVariable: Sendable, Hashable {
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
    public var findings: [CredentialVariable]
    /// Variables removed (action `strip`), sorted.
    public var stripped: [String]
    /// The environment the step should get (without stripped variables).
    public var environment: [String: String]
    /// Non-exempt long-lived findings (those the action applies to).
    public var longLived: [CredentialVariable] { findings.filter { $0.lifetime == .longLived && !$0.exempted } }

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

    /// A classifier for the policy's `credentials:` section with `detector` (the secret scanner's
    /// built-in rules, passed by the composition root). JWTs count as short-lived when `exp − iat`
    /// is within `identity.lifetime.max_ttl` (1 hour when the policy sets none).
    public init(policy: Policy, detector: any CredentialDetector) {
        let maxTTL = policy.identity?.lifetime.maxTTL.map { TimeInterval($0.milliseconds) / 1000 } ?? 3600
        self.init(detector: detector, allowVariables: policy.credentials.allowVars, maxJWTLifetime: maxTTL)
    }

    /// Classifies every variable of `environment` and applies `action` (`credentials.long_lived`).
    ///
    /// A variable holds a credential when a detection rule or the JWT check recognises its value,
    /// or any percent/base64/hex decoding or lower/upper-case form of it (``EncodedValue``); or, failing
    /// that, when it is named like a secret and its value looks like one. Job-scoped CI tokens
    /// (``CredentialNames/jobScoped``) count as short-lived unless a specific long-lived format is
    /// recognised in them. Pieces of a value split across alike-named variables (`TOKEN_A`,
    /// `TOKEN_B`) are joined in name order and classified together. The halves of a pair
    /// (`AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, `*_CLIENT_ID` and `*_CLIENT_SECRET`,
    /// `*_USER` and `*_PASSWORD`…) share the pair's class: the secret half of temporary AWS keys
    /// is short-lived, and both halves of a long-lived pair are stripped or denied together.
    public func classify(environment: [String: String], action: CredentialsPolicy.LongLived) -> CredentialVerdict {
        var byName: [String: [CredentialMatch]] = [:]
        for (name, value) in environment {
            let matches = self.matches(name: name, value: value)
            if !matches.isEmpty { byName[name] = matches }
        }
        for (name, matches) in splitMatches(environment, classified: byName) { byName[name, default: []].append(contentsOf: matches) }

        let exempted = Set(environment.keys.filter { name in allowVariables.contains { $0.matches(name) } })
        var lifetimes: [String: CredentialLifetime] = [:]
        for (name, matches) in byName { lifetimes[name] = Self.lifetime(of: matches) }
        // Pairs: a secret recognised only by its name is short-lived beside a temporary key (STS);
        // any long-lived half makes the whole pair long-lived.
        let stems = Dictionary(grouping: environment.keys.compactMap { name in CredentialNames.pairStem(name).map { ($0, name) } }, by: \.0)
            .mapValues { $0.map(\.1) }
        for (_, members) in stems where members.count > 1 {
            let recognised = members.filter { byName[$0].map(Self.recognisedByValue) ?? false }
            for name in members where byName[name]?.allSatisfy({ $0.ruleID == CredentialNames.secretNameRule }) == true
                && recognised.contains(where: { lifetimes[$0] == .shortLived }) && !recognised.contains(where: { lifetimes[$0] == .longLived }) {
                byName[name] = [CredentialMatch(ruleID: "temporary-credential-secret", description: "secret half of temporary credentials", lifetime: .shortLived)]
                lifetimes[name] = .shortLived
            }
            let longLived = members.filter { lifetimes[$0] == .longLived && !exempted.contains($0) }.sorted()
            guard let first = longLived.first else { continue }
            for name in members where lifetimes[name] != .longLived {
                byName[name, default: []].append(CredentialMatch(ruleID: "credential-pair", description: "the other half of the credential in \(first)", lifetime: .longLived))
                lifetimes[name] = .longLived
            }
        }

        let findings = byName.keys.sorted().map { name in
            CredentialVariable(variable: name, lifetime: lifetimes[name]!, matches: byName[name]!, exempted: exempted.contains(name))
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

    /// Long-lived when any match is.
    private static func lifetime(of matches: [CredentialMatch]) -> CredentialLifetime {
        matches.contains { $0.lifetime == .longLived } ? .longLived : .shortLived
    }

    /// True when a rule or the JWT check recognised the value itself (not only its name).
    private static func recognisedByValue(_ matches: [CredentialMatch]) -> Bool {
        matches.contains { $0.ruleID != CredentialNames.secretNameRule }
    }

    /// The credentials in one variable: in its value and every decoded form of it; by its name
    /// when nothing in the value is recognised; short-lived for job-scoped CI tokens.
    func matches(name: String, value: String) -> [CredentialMatch] {
        var matches = valueMatches(value)
        if matches.isEmpty, let byName = CredentialNames.secretByName(name, value: value) { matches = [byName] }
        guard CredentialNames.jobScoped.contains(name) else { return matches }
        return matches.map { match in
            guard CredentialNames.isGeneric(match.ruleID) || match.ruleID == "jwt" else { return match }
            return CredentialMatch(ruleID: "ci-job-token", description: "job-scoped CI token (\(match.ruleID))", lifetime: .shortLived)
        }
    }

    /// The credentials a rule or the JWT check recognises in `value` or a decoded form of it, each rule once.
    func valueMatches(_ value: String) -> [CredentialMatch] {
        var matches: [CredentialMatch] = []
        for form in EncodedValue.forms(of: value) {
            var found = detector.credentials(in: form)
            if let jwt = classifyJWT(form) { found.append(jwt) }
            for match in found where !matches.contains(where: { $0.ruleID == match.ruleID }) { matches.append(match) }
        }
        return matches
    }

    /// Long-lived credentials found only once the pieces of alike-named variables (`TOKEN_A`,
    /// `TOKEN_B`; `KEY1`, `KEY2`; `SECRET_PART1`…) are joined in name order, for each piece.
    private func splitMatches(_ environment: [String: String], classified: [String: [CredentialMatch]]) -> [String: [CredentialMatch]] {
        let pieces = Dictionary(grouping: environment.keys.compactMap { name in CredentialNames.piece(name).map { (stem: $0.stem, order: $0.order, name: name) } },
                                by: \.stem)
        var result: [String: [CredentialMatch]] = [:]
        for (_, group) in pieces where (2...8).contains(group.count) {
            let names = group.sorted { $0.order < $1.order }.map(\.name)
            let joined = valueMatches(names.map { environment[$0]! }.joined())
            let known = Set(names.flatMap { classified[$0] ?? [] }.map(\.ruleID))
            let split = joined.filter { $0.lifetime == .longLived && !known.contains($0.ruleID) }
            guard !split.isEmpty else { continue }
            let rules = split.map(\.ruleID).joined(separator: ", ")
            for name in names {
                result[name] = [CredentialMatch(ruleID: "split-credential", description: "a piece of \(rules) split across \(names.joined(separator: " + "))", lifetime: .longLived)]
            }
        }
        return result
    }

    /// A whole value that is a compact JWS with an `exp`: short-lived when it lives no longer than
    /// `maxJWTLifetime`, long-lived otherwise (including no `exp`).
    func classifyJWT(_ value: String) -> CredentialMatch? {
        // ASCII whitespace only: Foundation's trimmingCharacters bridges through NSString, and this
        // runs on every variable of the step's environment before the step starts.
        let trimmed = value.trimmingASCIISpaces
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
