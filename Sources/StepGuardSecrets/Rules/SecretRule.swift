import FoundationEssentials
import Glibc
import StepGuardCore
import StepGuardYAML

/// How bad a leak of this kind of credential is.
public enum SecretSeverity: String, Sendable, Codable, Comparable {
    case low, medium, high, critical

    private var rank: Int { [.low: 0, .medium: 1, .high: 2, .critical: 3][self]! }
    public static func < (a: Self, b: Self) -> Bool { a.rank < b.rank }
}

/// What makes a candidate secret harmless: regexes over the secret, path regexes, stop-words.
public struct SecretAllowList: Sendable, Codable, Equatable {
    /// Regexes (PCRE2) tested against the captured secret; a match drops the candidate.
    public var regexes: [String]
    /// Regexes tested against the file path; a match drops the candidate.
    public var paths: [String]
    /// Case-insensitive substrings; a secret containing one is a placeholder.
    public var stopwords: [String]
    /// Drop a candidate that is readable text in base64 or percent-encoding (`encoded_text: true`):
    /// prose, JSON, words such as `username:password`, or text holding a stop-word. The base64 of
    /// random bytes, or of a random password, stays a finding.
    public var encodedText: Bool

    public init(regexes: [String] = [], paths: [String] = [], stopwords: [String] = [], encodedText: Bool = false) {
        self.regexes = regexes
        self.paths = paths
        self.stopwords = stopwords
        self.encodedText = encodedText
    }

    enum CodingKeys: String, CodingKey { case regexes, paths, stopwords, encodedText = "encoded_text" }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        regexes = try c.decodeIfPresent([String].self, forKey: .regexes) ?? []
        paths = try c.decodeIfPresent([String].self, forKey: .paths) ?? []
        stopwords = try c.decodeIfPresent([String].self, forKey: .stopwords) ?? []
        encodedText = try c.decodeIfPresent(Bool.self, forKey: .encodedText) ?? false
    }
}

/// Positive and negative examples a rule must get right; the test suite runs them all.
public struct SecretRuleExamples: Sendable, Codable, Equatable {
    /// Texts in which the rule must find a secret (templates, see ``ExampleTemplate``).
    public var match: [String]
    /// Texts in which the rule must stay quiet.
    public var noMatch: [String]

    enum CodingKeys: String, CodingKey { case match, noMatch = "no_match" }

    /// Creates examples from lists of texts.
    public init(match: [String] = [], noMatch: [String] = []) {
        self.match = match
        self.noMatch = noMatch
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        match = try c.decodeIfPresent([String].self, forKey: .match) ?? []
        noMatch = try c.decodeIfPresent([String].self, forKey: .noMatch) ?? []
    }
}

/// One detection rule, as written in `rules/secrets/*.yaml`.
public struct SecretRule: Sendable, Codable, Equatable {
    /// Stable identifier, e.g. `github-pat-classic`.
    public var id: String
    /// What the secret is, for humans.
    public var description: String
    /// PCRE2 regex; the secret is capture group ``secretGroup`` (1 by default, 0 = whole match).
    public var regex: String
    /// What vectorscan prefilters with instead of ``regex``, when the exact pattern is slow to
    /// prefilter (a large bounded repeat such as `{64,32768}` makes every byte of a scan dearer). It
    /// must match wherever ``regex`` does; PCRE2 still confirms every candidate with ``regex``.
    public var prefilter: String?
    /// Which capture group holds the secret.
    public var secretGroup: Int
    /// Literal words that appear near or in every match (lower-case), used when vectorscan
    /// cannot prefilter the regex and documented for reviewers.
    public var keywords: [String]
    /// Minimum Shannon entropy (bits per character) of the secret, if any.
    public var entropy: Double?
    /// Rule-specific allow list.
    public var allow: SecretAllowList
    /// Severity of a leak.
    public var severity: SecretSeverity
    /// Whether the credential is long-lived (the default) or short-lived.
    public var lifetime: CredentialLifetime
    /// A named checksum the secret must satisfy in scans (`github-crc32`).
    public var checksum: String?
    /// A binary key container the rule finds by structure (`pkcs12`, `jks`, `pkcs8-der`): its
    /// regex finds the container's header, the engine checks the structure behind it, and the
    /// secret is the container in base64. Only such rules run on binary content.
    public var container: String?
    /// Examples the test suite checks.
    public var examples: SecretRuleExamples?

    /// Creates a rule; the defaults are those of a rules file that leaves the field out.
    public init(id: String, description: String, regex: String, prefilter: String? = nil, secretGroup: Int = 1, keywords: [String] = [],
                entropy: Double? = nil, allow: SecretAllowList = SecretAllowList(), severity: SecretSeverity = .high,
                lifetime: CredentialLifetime = .longLived, checksum: String? = nil, container: String? = nil,
                examples: SecretRuleExamples? = nil) {
        self.id = id
        self.description = description
        self.regex = regex
        self.prefilter = prefilter
        self.secretGroup = secretGroup
        self.keywords = keywords
        self.entropy = entropy
        self.allow = allow
        self.severity = severity
        self.lifetime = lifetime
        self.checksum = checksum
        self.container = container
        self.examples = examples
    }

    enum CodingKeys: String, CodingKey {
        case id, description, regex, prefilter, secretGroup = "secret_group", keywords, entropy, allow, severity, lifetime, checksum, container, examples
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        description = try c.decode(String.self, forKey: .description)
        regex = try c.decode(String.self, forKey: .regex)
        prefilter = try c.decodeIfPresent(String.self, forKey: .prefilter)
        secretGroup = try c.decodeIfPresent(Int.self, forKey: .secretGroup) ?? 1
        keywords = try c.decodeIfPresent([String].self, forKey: .keywords) ?? []
        entropy = try c.decodeIfPresent(Double.self, forKey: .entropy)
        allow = try c.decodeIfPresent(SecretAllowList.self, forKey: .allow) ?? SecretAllowList()
        severity = try c.decodeIfPresent(SecretSeverity.self, forKey: .severity) ?? .high
        lifetime = try c.decodeIfPresent(CredentialLifetime.self, forKey: .lifetime) ?? .longLived
        checksum = try c.decodeIfPresent(String.self, forKey: .checksum)
        container = try c.decodeIfPresent(String.self, forKey: .container)
        examples = try c.decodeIfPresent(SecretRuleExamples.self, forKey: .examples)
    }
}

/// The content of one rules file: an optional global allow list and a list of rules.
struct SecretRuleFile: Decodable {
    var name: String?
    var allow: SecretAllowList?
    var rules: [SecretRule]?
}

/// A set of rules plus the global allow list, as loaded from YAML.
public struct SecretRuleSet: Sendable {
    /// Rules in load order; a later rule with the same id replaces an earlier one.
    public private(set) var rules: [SecretRule]
    /// Allow list applied to every rule.
    public private(set) var allow: SecretAllowList
    /// Where each rule id is in `rules`.
    private var positions: [String: Int] = [:]

    /// An empty set.
    public init() {
        rules = []
        allow = SecretAllowList()
    }

    /// The rules embedded in the binary (generated from `rules/secrets/*.yaml`).
    public static func builtIn() -> SecretRuleSet {
        var set = SecretRuleSet()
        let files = EmbeddedRules.ruleFiles
        let count = files.reduce(0) { $0 + ($1.rules?.count ?? 0) }
        set.rules.reserveCapacity(count)
        set.positions.reserveCapacity(count)
        for file in files { set.add(file) }
        return set
    }

    /// Adds (or overrides by id) the rules in one YAML document; `source` names it in errors.
    public mutating func add(yaml text: String, source: String) throws {
        let file: SecretRuleFile
        do {
            file = try YAMLDecoder().decode(SecretRuleFile.self, from: text)
        } catch {
            throw SecretsError(.invalidRules, "\(source): not a valid rules file: \(Self.describe(error)); each file holds `rules:` (a list of rules with id, description, regex) and an optional `allow:`")
        }
        add(file)
    }

    mutating func add(_ file: SecretRuleFile) {
        if let allow = file.allow {
            self.allow.regexes += allow.regexes
            self.allow.paths += allow.paths
            self.allow.stopwords += allow.stopwords
        }
        for rule in file.rules ?? [] {
            if let index = positions[rule.id] {
                rules[index] = rule
            } else {
                positions[rule.id] = rules.count
                rules.append(rule)
            }
        }
    }

    /// Adds every `*.yaml` / `*.yml` file in `directory`, in name order.
    public mutating func add(directory: URL) throws {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        } catch {
            throw SecretsError(.invalidRules, "\(directory.path): cannot list the rules directory (\(describeError(error))); pass a readable directory to --rules")
        }
        for name in names.sorted() where name.hasSuffix(".yaml") || name.hasSuffix(".yml") {
            let url = directory.appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: url.path), let text = String(data: data, encoding: .utf8) else {
                throw SecretsError(.invalidRules, "\(url.path): cannot read the rules file as UTF-8; check its permissions and encoding")
            }
            try add(yaml: text, source: url.path)
        }
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? DecodingError {
            switch e {
            case .keyNotFound(let key, let ctx):
                return "missing key `\(key.stringValue)` at \(path(ctx.codingPath))"
            case .typeMismatch(_, let ctx), .valueNotFound(_, let ctx), .dataCorrupted(let ctx):
                return "\(ctx.debugDescription) at \(path(ctx.codingPath))"
            @unknown default:
                return "\(e)"
            }
        }
        return "\(error)"
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
    }
}
