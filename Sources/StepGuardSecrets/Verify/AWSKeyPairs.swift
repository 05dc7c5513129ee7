/// Which AWS secret access keys were found beside each access key id: same file (and, in history
/// mode, same commit), at most ``maximumDistance`` lines apart — how credential files, `.env`
/// files and configuration blocks write them. `sts:GetCallerIdentity` must be signed with the
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
    struct Candidate: Equatable {
        var secret: String
        var group: String
    }

    private var secrets: [Place: [(line: Int, candidate: Candidate)]] = [:]

    private struct Place: Hashable {
        var path: String
        var commit: String?
    }

    init(_ findings: [Finding]) {
        for f in findings where f.ruleID == Self.secretRule {
            secrets[Place(path: f.path, commit: f.commit), default: []].append((f.line, Candidate(secret: f.secret, group: SecretGroup.key(of: f))))
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
        }
        var out: [Candidate] = []
        for f in found.sorted(by: { $0.distance < $1.distance }) where !out.contains(f.candidate) {
            out.append(f.candidate)
            if out.count == Self.maximumCandidates { break }
        }
        return out
    }
}
