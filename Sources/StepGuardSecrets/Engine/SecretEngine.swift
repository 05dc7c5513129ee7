#if canImport(Glibc)
import Glibc
#endif

/// A candidate secret found in a buffer, before line numbers and suppression.
struct RawMatch: Sendable {
    /// Index of the rule in ``SecretEngine/rules``.
    var ruleIndex: Int
    /// Byte range of the secret in the buffer.
    var range: Range<Int>
    /// The secret (invalid UTF-8 replaced).
    var secret: String
}

/// What one pass over a buffer found, and which rules could not finish it.
struct EngineResult: Sendable {
    var matches: [RawMatch] = []
    /// Indices of the rules whose regex hit a PCRE2 limit on this buffer (the rest of the buffer
    /// was not searched by them), with PCRE2's error code.
    var incomplete: [(rule: Int, code: Int32)] = []
}

/// Options of one pass over a buffer.
struct MatchOptions: Sendable {
    /// Enforce rule checksums (scan mode); the credential classifier does not, to fail closed.
    var verifyChecksums = true
}

/// A rule with its regexes compiled. A class: a search takes each rule it runs out of the
/// engine's list, and a struct of this size was copied there, field by field (a retain and a
/// release of each), for every value `run` classifies.
final class CompiledRule: Sendable {
    let rule: SecretRule
    let regex: PCRE2Regex
    let allowRegexes: [PCRE2Regex]
    let allowPaths: [PCRE2Regex]
    let stopwords: [[UInt8]]
    let keywords: [[UInt8]]
    let isGeneric: Bool
    /// The binary key container the rule finds by structure, if it is a container rule.
    let container: KeyContainer?

    init(rule: SecretRule, regex: PCRE2Regex, allowRegexes: [PCRE2Regex], allowPaths: [PCRE2Regex], stopwords: [[UInt8]],
         keywords: [[UInt8]], isGeneric: Bool, container: KeyContainer?) {
        self.rule = rule
        self.regex = regex
        self.allowRegexes = allowRegexes
        self.allowPaths = allowPaths
        self.stopwords = stopwords
        self.keywords = keywords
        self.isGeneric = isGeneric
        self.container = container
    }
}

/// How a ``SecretEngine`` finds the rules that may match a buffer before PCRE2 confirms them.
public enum SecretPrefilter: Sendable, Hashable {
    /// A vectorscan database of every rule's pattern: fastest on files and repositories, but it is
    /// compiled (about half a second) or loaded from the on-disk cache in `cacheDirectory` (a
    /// millisecond) first; nil keeps no cache.
    case vectorscan(cacheDirectory: String?)
    /// Each rule's keywords (every match contains one): nothing to build, and fast enough for short
    /// values — the step's environment, a request's headers. Used before every step.
    case keywords

    /// Where the compiled vectorscan database is cached, given the process environment:
    /// `$STEPGUARD_CACHE_DIR` (`off`: no cache), else `$XDG_CACHE_HOME/stepguard`, else
    /// `$HOME/.cache/stepguard`; nil when none is set. An empty variable counts as unset.
    public static func cacheDirectory(environment: [String: String]) -> String? {
        if environment["STEPGUARD_CACHE_DIR"] == "off" { return nil }
        if let directory = environment["STEPGUARD_CACHE_DIR"], !directory.isEmpty { return directory }
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty { return xdg + "/stepguard" }
        if let home = environment["HOME"], !home.isEmpty { return home + "/.cache/stepguard" }
        return nil
    }
}

/// Every rule compiled once: a prefilter for the first pass (vectorscan or keywords), PCRE2 (JIT)
/// to confirm and extract the secret group. Immutable and shared across threads.
final class SecretEngine: Sendable {
    let rules: [CompiledRule]
    /// Nil with the keyword prefilter.
    let database: VectorscanDatabase?
    /// Rules prefiltered by keyword: those the database cannot cover, or all of them without one.
    let keywordPrefiltered: [Int]
    /// Their keywords, by first byte.
    private let keywordIndex: KeywordIndex
    let allowRegexes: [PCRE2Regex]
    let allowPaths: [PCRE2Regex]
    let stopwords: [[UInt8]]

    /// Compiles and checks every rule of `ruleSet`. `deferCompiling` (only for the built-in rules,
    /// which the tests compile and check with it false) leaves each PCRE2 pattern to its first use.
    init(ruleSet: SecretRuleSet, prefilter: SecretPrefilter, deferCompiling: Bool = false) throws {
        func pattern(_ pattern: String, _ context: String) throws -> PCRE2Regex {
            deferCompiling ? PCRE2Regex(deferred: pattern, context: context) : try PCRE2Regex(pattern, context: context)
        }
        var seen = Set<String>(minimumCapacity: ruleSet.rules.count)
        var compiled: [CompiledRule] = []
        compiled.reserveCapacity(ruleSet.rules.count)
        for rule in ruleSet.rules {
            let where_ = "rule `\(rule.id)`"
            guard seen.insert(rule.id).inserted else { continue }
            let regex = try pattern(rule.regex, where_)
            guard deferCompiling || (rule.secretGroup >= 0 && rule.secretGroup <= regex.captureCount) else {
                throw SecretsError(.invalidRules, "\(where_): secret_group \(rule.secretGroup) but the regex has \(regex.captureCount) capture groups; put the secret in a group")
            }
            var container: KeyContainer?
            if let name = rule.container {
                guard let kind = KeyContainer(rawValue: name) else {
                    throw SecretsError(.invalidRules, "\(where_): unknown container `\(name)`; known: \(KeyContainer.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                container = kind
            }
            if let name = rule.checksum, !SecretChecks.knownChecksums.contains(name) {
                throw SecretsError(.invalidRules, "\(where_): unknown checksum `\(name)`; known: \(SecretChecks.knownChecksums.sorted().joined(separator: ", "))")
            }
            compiled.append(CompiledRule(
                rule: rule,
                regex: regex,
                allowRegexes: try rule.allow.regexes.map { try pattern($0, "\(where_) allow.regexes") },
                allowPaths: try rule.allow.paths.map { try pattern($0, "\(where_) allow.paths") },
                stopwords: rule.allow.stopwords.map { Array($0.lowercased().utf8) },
                keywords: rule.keywords.map { Array($0.lowercased().utf8) },
                isGeneric: rule.id.hasPrefix("generic") || rule.id == "connection-string-password" || rule.id == "url-basic-auth",
                container: container
            ))
        }
        rules = compiled
        if case .vectorscan(let cacheDirectory) = prefilter {
            database = try VectorscanDatabase(patterns: compiled.map { $0.rule.prefilter ?? $0.rule.regex }, cacheDirectory: cacheDirectory)
        } else {
            database = nil
        }
        keywordPrefiltered = database.map { $0.unsupported.sorted() } ?? Array(compiled.indices)
        keywordIndex = KeywordIndex(rules: keywordPrefiltered) { compiled[$0].keywords }
        allowRegexes = try ruleSet.allow.regexes.map { try pattern($0, "global allow.regexes") }
        allowPaths = try ruleSet.allow.paths.map { try pattern($0, "global allow.paths") }
        stopwords = ruleSet.allow.stopwords.map { Array($0.lowercased().utf8) }
    }

    /// Whether `path` is allowed by the global path allow list (the whole file is skipped).
    func pathAllowed(_ path: String) -> Bool {
        Self.anyMatch(allowPaths, path)
    }

    static func anyMatch(_ regexes: [PCRE2Regex], _ text: String) -> Bool {
        guard !regexes.isEmpty else { return false }
        var text = text
        return text.withUTF8 { utf8 in
            let raw = UnsafeRawBufferPointer(utf8)
            for r in regexes {
                var hit = false
                r.forEachMatch(in: raw) { _ in hit = true; return false }
                if hit { return true }
            }
            return false
        }
    }

    /// Whether the first 8000 bytes contain a NUL byte (git's heuristic for binary content).
    static func isBinary(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return false }
        return memchr(base, 0, min(bytes.count, 8000)) != nil
    }

    /// Candidate secrets in `bytes`, filtered by entropy, stop-words, allow lists and checksums.
    func matches(in bytes: UnsafeRawBufferPointer, path: String?, options: MatchOptions) -> [RawMatch] {
        search(bytes, path: path, options: options).matches
    }

    /// Candidate secrets in `bytes` and the rules that could not search all of it. In a binary
    /// buffer only the container rules run.
    func search(_ bytes: UnsafeRawBufferPointer, path: String?, options: MatchOptions) -> EngineResult {
        var result = EngineResult()
        guard !bytes.isEmpty else { return result }
        let binary = Self.isBinary(bytes)
        var hits = [Bool](repeating: false, count: rules.count)
        if let database, !database.scan(bytes, hits: &hits) {
            hits = [Bool](repeating: true, count: rules.count)
        }
        keywordIndex.markRules(in: bytes, hits: &hits)
        var out: [RawMatch] = []
        for index in hits.indices where hits[index] {
            let compiled = rules[index]
            if binary && compiled.container == nil { continue }
            if let path, Self.anyMatch(compiled.allowPaths, path) { continue }
            let outcome = compiled.regex.forEachMatch(in: bytes) { match in
                if let container = compiled.container {
                    // The regex found a header; the container is what its structure spans.
                    guard let range = container.extent(bytes, at: match.whole.lowerBound) else { return true }
                    out.append(RawMatch(ruleIndex: index, range: range, secret: SecretChecks.base64(UnsafeRawBufferPointer(rebasing: bytes[range]))))
                    return false
                }
                let group = compiled.rule.secretGroup
                let range: Range<Int>? = group == 0 ? match.whole : match.groups[group - 1]
                guard let range, !range.isEmpty else { return true }
                let secretBytes = UnsafeRawBufferPointer(rebasing: bytes[range])
                if accept(secretBytes, rule: compiled, options: options) {
                    out.append(RawMatch(ruleIndex: index, range: range, secret: String(decoding: secretBytes, as: UTF8.self)))
                }
                return true
            }
            if case .limitHit(let code) = outcome { result.incomplete.append((index, code)) }
        }
        result.matches = Self.dropOverlappingGeneric(out, rules: rules)
        return result
    }

    private func accept(_ secret: UnsafeRawBufferPointer, rule: CompiledRule, options: MatchOptions) -> Bool {
        if let minimum = rule.rule.entropy, SecretChecks.entropy(secret) < minimum { return false }
        let lowered = secret.map { ($0 >= 65 && $0 <= 90) ? $0 + 32 : $0 }
        for word in rule.stopwords where Self.contains(lowered, word) { return false }
        for word in stopwords where Self.contains(lowered, word) { return false }
        if rule.rule.allow.encodedText, let text = SecretChecks.encodedText(secret, stopwords: rule.stopwords + stopwords) {
            // Readable text is a placeholder unless a rule finds a secret in it (JSON with a password).
            let holdsSecret = text.withUnsafeBytes { !search($0, path: nil, options: options).matches.isEmpty }
            if !holdsSecret { return false }
        }
        for r in rule.allowRegexes + allowRegexes {
            var hit = false
            r.forEachMatch(in: secret) { _ in hit = true; return false }
            if hit { return false }
        }
        if options.verifyChecksums, let name = rule.rule.checksum,
           !SecretChecks.checksum(name, valid: String(decoding: secret, as: UTF8.self)) {
            return false
        }
        return true
    }

    /// A generic rule's match that overlaps a specific rule's match is dropped; duplicates of the
    /// same rule and range are dropped.
    static func dropOverlappingGeneric(_ matches: [RawMatch], rules: [CompiledRule]) -> [RawMatch] {
        guard matches.count > 1 else { return matches }
        let specific = matches.filter { !rules[$0.ruleIndex].isGeneric }
        var result: [RawMatch] = []
        var seen = Set<String>()
        for m in matches {
            if rules[m.ruleIndex].isGeneric, specific.contains(where: { $0.range.overlaps(m.range) }) { continue }
            if rules[m.ruleIndex].isGeneric, result.contains(where: { rules[$0.ruleIndex].isGeneric && $0.range.overlaps(m.range) }) { continue }
            guard seen.insert("\(m.ruleIndex):\(m.range.lowerBound)").inserted else { continue }
            result.append(m)
        }
        return result.sorted { $0.range.lowerBound < $1.range.lowerBound }
    }

    /// Naive substring search (needles are short keywords and stop-words).
    static func contains<H: RandomAccessCollection>(_ haystack: H, _ needle: [UInt8]) -> Bool where H.Element == UInt8, H.Index == Int {
        guard !needle.isEmpty else { return true }
        guard haystack.count >= needle.count else { return false }
        let first = needle[0]
        var i = haystack.startIndex
        let last = haystack.endIndex - needle.count
        while i <= last {
            if haystack[i] == first {
                var j = 1
                while j < needle.count && haystack[i + j] == needle[j] { j += 1 }
                if j == needle.count { return true }
            }
            i += 1
        }
        return false
    }
}
