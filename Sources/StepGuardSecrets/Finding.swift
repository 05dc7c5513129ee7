import StepGuardCore
/// One secret found by a scan, with where it was found.
public struct Finding: Sendable, Codable, Equatable {
    /// The rule that matched.
    public var ruleID: String
    /// What the secret is.
    public var description: String
    /// Severity of the rule.
    public var severity: SecretSeverity
    /// Long-lived or short-lived credential.
    public var lifetime: CredentialLifetime
    /// Path relative to the scan root or repository ("-" for stdin).
    public var path: String
    /// 1-based line of the start of the secret.
    public var line: Int
    /// 1-based column (in bytes) of the start of the secret.
    public var column: Int
    /// 1-based line of the end of the secret.
    public var endLine: Int
    /// The secret itself; reporters print it only through ``redact(_:mode:)``.
    public var secret: String
    /// Stable fingerprint independent of line numbers: `rule:path:hash`.
    public var fingerprint: String
    /// The commit (history mode).
    public var commit: String?
    /// Author name and e-mail (history mode).
    public var author: String?
    public var email: String?
    /// Commit date, ISO 8601 (history mode).
    public var date: String?

    /// Computes the fingerprint of a secret found by `ruleID` in `path`.
    public static func fingerprint(ruleID: String, path: String, secret: String) -> String {
        fingerprint(ruleID: ruleID, path: path, secretHash: secretHash(secret))
    }

    /// The fingerprint from the secret's ``secretHash(_:)``, computed once for many paths.
    static func fingerprint(ruleID: String, path: String, secretHash: String) -> String {
        "\(ruleID):\(path):\(secretHash)"
    }
}

/// What a scan found and what it skipped.
public struct ScanReport: Sendable {
    /// Findings not suppressed, in path/line order.
    public var findings: [Finding] = []
    /// Findings suppressed by inline comments, the ignore file or the baseline.
    public var suppressed = 0
    /// Files (or blobs) scanned.
    public var scannedFiles = 0
    /// Bytes scanned.
    public var scannedBytes = 0
    /// Files skipped because they look binary.
    public var skippedBinary = 0
    /// Files skipped because they are larger than the size limit.
    public var skippedLarge = 0
    /// Symbolic links skipped because they point outside the scanned tree (or nowhere).
    public var skippedSymlinks = 0
    /// Files skipped by the global path allow list.
    public var skippedAllowedPaths = 0
    /// Ignore-file entries that expired (their findings are reported again).
    public var expiredIgnores: [String] = []
    /// Commits walked (history mode).
    public var commits = 0
    /// History mode with ``ScanOptions/pairAWSKeysAcrossCommits``: AWS key ids paired with a
    /// secret access key added to the same file in another commit.
    var awsPairsAcrossCommits: [AWSKeyPairs.AcrossCommits] = []

    public init() {}
}
