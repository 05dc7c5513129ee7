/// Which AWS secret access keys were found beside each access key id: same file (and, in history
/// mode, same commit), at most ``maximumDistance`` lines apart — how credential files, `.env`
/// files and configuration blocks write them. In history mode a key id and a secret of one file
/// added in different commits are a pair too when, in the version of the file where the later of
/// the two was added, the other is still there within ``maximumDistance`` lines
/// (``AcrossCommits``, found by the history scan). `sts:GetCallerIdentity` must be signed with the
/// secret, so a key id without one cannot be verified.
struct AWSKeyPairs {
    static let keyRule = "aws-access-key-id"
    static let secretRule = "aws-secret-access-key"
    /// Lines between a key id and a secret that count as beside it.
    static let maximumDistance = 10
    /// At most this many secrets are tried per key id (nearest first).
    static let maximumCandidates = 3
    /// The end of the detail of a SignatureDoesNotMatch answer.
    static let mismatch = "SignatureDoesNotMatch: the key id exists, the secret access key is not its secret"

    /// A secret access key beside a key id: the value and its group key.
    struct Candidate: Equatable, Sendable {
        var secret: String
        var group: String
    }

    /// A key id's finding (path, commit, line) and a secret access key added to the same file in
    /// another commit, `distance` lines from it in the version of the later commit.
    struct AcrossCommits: Sendable {
        /// The key id's finding.
        var location: Location
        var distance: Int
        var candidate: Candidate
    }

    private var secrets: [Place: [(line: Int, candidate: Candidate)]] = [:]
    private var acrossCommits: [Location: [(distance: Int, candidate: Candidate)]] = [:]

    private struct Place: Hashable {
        var path: String
        var commit: String?
    }

    /// Where a finding stands: its file, its commit (history mode) and its line.
    struct Location: Hashable, Sendable {
        var path: String
        var commit: String?
        var line: Int
    }

    init(_ findings: [Finding], acrossCommits: [AcrossCommits] = []) {
        for f in findings where f.ruleID == Self.secretRule {
            secrets[Place(path: f.path, commit: f.commit), default: []].append((f.line, Candidate(secret: f.secret, group: SecretGroup.key(of: f))))
        }
        for pair in acrossCommits {
            self.acrossCommits[pair.location, default: []].append((pair.distance, pair.candidate))
        }
    }

    /// The distinct secrets beside any location of `group`, nearest first, at most ``maximumCandidates``.
    func secrets(near group: SecretGroup) -> [Candidate] {
        var found: [(distance: Int, candidate: Candidate)] = []
        for location in group.locations {
            for s in secrets[Place(path: location.path, commit: location.commit)] ?? [] {
                let distance = abs(s.line - location.line)
                if distance <= Self.maximumDistance { found.append((distance, s.candidate)) }
            }
            found += acrossCommits[Location(path: location.path, commit: location.commit, line: location.line)] ?? []
        }
        var out: [Candidate] = []
        for f in found.sorted(by: { $0.distance < $1.distance }) where !out.contains(f.candidate) {
            out.append(f.candidate)
            if out.count == Self.maximumCandidates { break }
        }
        return out
    }
}

extension AWSKeyPairs {
    /// The pairs of `found` (AWS key id and secret access key findings of a history scan, each with
    /// the blob it was found in) whose two findings were added to one file in different commits:
    /// the later one's blob must still hold the other's value within ``maximumDistance`` lines of
    /// it. `read` gives a blob's content (nil: unreadable, no pair).
    static func acrossCommits(_ found: [(finding: Finding, blob: ObjectKey)], read: (ObjectKey) -> [UInt8]?) -> [AcrossCommits] {
        var contents: [ObjectKey: [UInt8]?] = [:]
        func lines(of value: String, in blob: ObjectKey) -> [Int] {
            if contents[blob] == nil { contents[blob] = .some(read(blob)) }
            guard let bytes = contents[blob] ?? nil else { return [] }
            let needle = Array(value.utf8)
            guard !needle.isEmpty, bytes.count >= needle.count else { return [] }
            var out: [Int] = []
            var line = 1
            var i = 0
            while i <= bytes.count - needle.count {
                if bytes[i] == 10 { line += 1 } else if bytes[i] == needle[0], bytes[i..<(i + needle.count)].elementsEqual(needle) { out.append(line) }
                i += 1
            }
            return out
        }
        var pairs: [AcrossCommits] = []
        let keys = found.filter { $0.finding.ruleID == keyRule }
        let secretsByPath = Dictionary(grouping: found.filter { $0.finding.ruleID == secretRule }, by: { $0.finding.path })
        for key in keys {
            guard let commit = key.finding.commit else { continue }
            var seen = Set<String>()
            for secret in secretsByPath[key.finding.path] ?? [] where secret.finding.commit != commit && seen.insert(secret.finding.secret).inserted {
                // Whichever was added later: the other must still be there, near it.
                let inKeyVersion = lines(of: secret.finding.secret, in: key.blob).map { abs($0 - key.finding.line) }
                let inSecretVersion = lines(of: key.finding.secret, in: secret.blob).map { abs($0 - secret.finding.line) }
                guard let distance = (inKeyVersion + inSecretVersion).min(), distance <= maximumDistance else { continue }
                pairs.append(AcrossCommits(location: Location(path: key.finding.path, commit: commit, line: key.finding.line), distance: distance,
                                           candidate: Candidate(secret: secret.finding.secret, group: SecretGroup.key(of: secret.finding))))
            }
        }
        return pairs
    }
}
