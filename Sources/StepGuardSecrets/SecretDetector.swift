import StepGuardCore
import Synchronization
/// One credential found in a value by ``SecretDetector/detect(in:)``.
public struct SecretDetection: Sendable {
    /// The rule that matched, e.g. `aws-access-key-id`.
    public let ruleID: String
    /// What the credential is.
    public let description: String
    /// Long-lived or short-lived.
    public let lifetime: CredentialLifetime
    /// The captured secret. Never print it: use ``redact(_:)``.
    public let secret: String
}

/// The credential classifier shared by `stepguard scan` and `stepguard run`: the detection rules
/// compiled once, a prefilter (vectorscan or keywords) plus PCRE2 confirmers.
public struct SecretDetector: Sendable {
    let engine: SecretEngine

    /// Compiles `ruleSet`.
    public init(ruleSet: SecretRuleSet, prefilter: SecretPrefilter) throws {
        engine = try SecretEngine(ruleSet: ruleSet, prefilter: prefilter)
    }

    private static func makeBuiltIn(_ prefilter: SecretPrefilter) -> Result<SecretEngine, SecretsError> {
        do {
            return .success(try SecretEngine(ruleSet: SecretRuleSet.builtIn(), prefilter: prefilter, deferCompiling: true))
        } catch let error as SecretsError {
            return .failure(error)
        } catch {
            return .failure(SecretsError(.engine, "built-in rules failed to load: \(error)"))
        }
    }
    private static let builtInEngines = Mutex<[SecretPrefilter: Result<SecretEngine, SecretsError>]>([:])

    /// The rules embedded in the binary, compiled once per process and prefilter: with the
    /// vectorscan prefilter for scanning files, with the keyword prefilter for classifying short values.
    public static func builtIn(prefilter: SecretPrefilter) throws -> SecretDetector {
        let built = builtInEngines.withLock { engines in
            if let engine = engines[prefilter] { return engine }
            let engine = makeBuiltIn(prefilter)
            engines[prefilter] = engine
            return engine
        }
        switch built {
        case .success(let engine): return SecretDetector(engine: engine)
        case .failure(let error): throw error
        }
    }

    init(engine: SecretEngine) {
        self.engine = engine
    }

    /// Shannon entropy of `value` in bits per byte, as the rules' `entropy:` thresholds measure it.
    public static func entropy(of value: String) -> Double {
        SecretChecks.entropy(Array(value.utf8))
    }

    /// The rules this detector applies.
    public var rules: [SecretRule] { engine.rules.map(\.rule) }

    /// Classifies one value (an environment variable value, a header value): every credential
    /// found in it. Checksums are not enforced here, so a malformed-but-plausible token still
    /// counts as a credential (fail closed).
    ///
    /// Fails closed: a rule that could not search all of `value` (PCRE2 hit its match or depth
    /// limit) counts as a detection of what that rule detects, with an empty `secret` — an
    /// environment variable or a request is never judged free of credentials by a search that
    /// gave up.
    public func detect(in value: String) -> [SecretDetection] {
        var value = value
        let result = value.withUTF8 { utf8 in
            engine.search(UnsafeRawBufferPointer(utf8), path: nil, options: MatchOptions(verifyChecksums: false))
        }
        let found = result.matches.map { m in
            let rule = engine.rules[m.ruleIndex].rule
            return SecretDetection(ruleID: rule.id, description: rule.description, lifetime: rule.lifetime, secret: m.secret)
        }
        let unchecked = result.incomplete.map { rule, code in
            let rule = engine.rules[rule].rule
            return SecretDetection(ruleID: rule.id, description: "\(rule.description) (the value could not be searched in full: \(PCRE2Regex.message(code)))",
                                   lifetime: rule.lifetime, secret: "")
        }
        return found + unchecked
    }
}

extension SecretDetector: CredentialDetector {
    /// The secret scanner's detections, without the secret itself.
    public func credentials(in value: String) -> [CredentialMatch] {
        detect(in: value).map { CredentialMatch(ruleID: $0.ruleID, description: $0.description, lifetime: $0.lifetime) }
    }
}
