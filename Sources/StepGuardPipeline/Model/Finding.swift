import StepGuardPolicy

/// How serious a finding is.
public enum Severity: String, Sendable, Codable, Comparable, CaseIterable {
    /// Worth knowing; no direct path to a credential.
    case low
    /// Widens what a compromised step could reach (default permissions, persisted tokens).
    case medium
    /// A credential or identity is exposed to more code than needs it, or used outside stepguard.
    case high
    /// Untrusted code runs with secrets or the job's identity.
    case critical

    private var rank: Int { Self.allCases.firstIndex(of: self)! }
    public static func < (lhs: Severity, rhs: Severity) -> Bool { lhs.rank < rhs.rank }
}

/// The audits `workflow check` runs; the raw value is the id used in reports and in
/// `# stepguard: ignore[id]` comments.
public enum RuleID: String, Sendable, Codable, CaseIterable {
    /// `id-token: write` granted to the whole workflow.
    case idTokenWorkflowLevel = "id-token-workflow-level"
    /// `id-token: write` (or GitLab `id_tokens:`) on a job that has no OIDC consumer.
    case idTokenUnused = "id-token-unused"
    /// No top-level `permissions:`: every job gets the repository's default token permissions.
    case permissionsMissing = "permissions-missing"
    /// A long-lived cloud or registry credential where the provider supports OIDC.
    case longLivedCredential = "long-lived-credential"
    /// `secrets: inherit` on a reusable workflow call.
    case secretsInherit = "secrets-inherit"
    /// `toJSON(secrets)` exposes every secret at once.
    case secretsToJSON = "secrets-tojson"
    /// `pull_request_target` / `workflow_run` job that checks out the PR head and holds secrets or id-token.
    case untrustedCheckout = "untrusted-checkout"
    /// A third-party action not pinned to a full commit SHA in a job with secrets or id-token.
    case unpinnedAction = "unpinned-action"
    /// `actions/checkout` keeps the token in `.git/config` in a job that uploads artifacts.
    case persistCredentials = "checkout-persist-credentials"
    /// A step calls a signing or secret service without `stepguard run`.
    case unguardedServiceCall = "unguarded-service-call"
    /// An attacker-controlled value (`${{ github.event.issue.title }}`, `github.head_ref`…) expanded into a
    /// script (`run:`, github-script `script:`; GitLab: `$CI_MERGE_REQUEST_TITLE`… under `eval`/`sh -c`).
    case templateInjection = "template-injection"
    /// `write-all`/`read-all`, workflow-level write scopes several jobs inherit, or write scopes a job cannot use.
    case permissionsBroad = "permissions-broad"
    /// Attacker-controlled data written to `$GITHUB_ENV`, `$GITHUB_PATH` or `$GITHUB_OUTPUT` in a privileged job.
    case untrustedEnvWrite = "untrusted-env-write"
    /// `github.actor == '…[bot]'` guarding a privileged job or step on a trigger where the actor can be spoofed.
    case spoofableBotCheck = "spoofable-bot-check"
    /// A job on a privileged trigger runs the untrusted head and writes the cache of the default branch.
    case cachePoisoning = "cache-poisoning"
    /// A privileged `workflow_run` job downloads artifacts of the run that triggered it (possibly a fork's).
    case artifactPoisoning = "artifact-poisoning"
    /// GitLab `id_tokens:` with no audience, a generic one (the GitLab instance) or several.
    case idTokenAudience = "id-token-audience"

    /// How serious findings of this rule are.
    public var severity: Severity {
        switch self {
        case .untrustedCheckout: .critical
        case .idTokenWorkflowLevel, .longLivedCredential, .secretsInherit, .secretsToJSON, .unpinnedAction, .unguardedServiceCall,
             .templateInjection, .untrustedEnvWrite, .spoofableBotCheck, .cachePoisoning, .artifactPoisoning: .high
        case .idTokenUnused, .permissionsMissing, .persistCredentials, .permissionsBroad, .idTokenAudience: .medium
        }
    }

    /// One line saying what the rule looks for (SARIF rule description, docs).
    public var summary: String {
        switch self {
        case .idTokenWorkflowLevel: "id-token: write granted to every job of the workflow"
        case .idTokenUnused: "OIDC token permission on a job that never uses an OIDC consumer"
        case .permissionsMissing: "no top-level permissions: jobs get the default GITHUB_TOKEN permissions"
        case .longLivedCredential: "long-lived cloud or registry credential where the provider supports OIDC"
        case .secretsInherit: "secrets: inherit passes every secret to the called workflow"
        case .secretsToJSON: "toJSON(secrets) exposes every secret at once"
        case .untrustedCheckout: "privileged trigger checks out untrusted pull request code while holding secrets or id-token"
        case .unpinnedAction: "third-party action not pinned to a full commit SHA in a job holding secrets or id-token"
        case .persistCredentials: "actions/checkout persists the token in .git/config in a job that uploads artifacts"
        case .unguardedServiceCall: "signing or secret service called outside stepguard run"
        case .templateInjection: "attacker-controlled value expanded into a script"
        case .permissionsBroad: "token permissions broader than the jobs use"
        case .untrustedEnvWrite: "attacker-controlled data written to GITHUB_ENV, GITHUB_PATH or GITHUB_OUTPUT in a privileged job"
        case .spoofableBotCheck: "spoofable github.actor bot check guards a privileged job or step"
        case .cachePoisoning: "untrusted code writes the default branch's cache that release jobs restore"
        case .artifactPoisoning: "privileged workflow_run job uses artifacts of the (possibly forked) run that triggered it"
        case .idTokenAudience: "GitLab id_tokens: audience missing, generic or shared by several services"
        }
    }
}

/// One risk found in a workflow: where, what, how serious, and the one-line remedy.
public struct Finding: Sendable, Equatable, Codable, CustomStringConvertible {
    /// The audit that found it.
    public let rule: RuleID
    /// Severity: the rule's, or higher where the finding says why (e.g. an injection into a job holding secrets).
    public let severity: Severity
    /// Exact position in the workflow file (from the YAML parser's marks).
    public let location: SourceLocation
    /// What is wrong here.
    public let message: String
    /// What to do, in one line.
    public let remedy: String

    /// Creates a finding; `severity` defaults to the rule's.
    public init(_ rule: RuleID, at location: SourceLocation, _ message: String, remedy: String, severity: Severity? = nil) {
        self.rule = rule
        self.severity = severity ?? rule.severity
        self.location = location
        self.message = message
        self.remedy = remedy
    }

    public var description: String {
        "\(location): \(severity.rawValue)[\(rule.rawValue)]: \(message)\n    remedy: \(remedy)"
    }

    enum CodingKeys: String, CodingKey { case id, severity, file, line, column, message, remedy }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(rule, forKey: .id)
        try c.encode(severity, forKey: .severity)
        try c.encode(location.file, forKey: .file)
        try c.encode(location.line, forKey: .line)
        try c.encode(location.column, forKey: .column)
        try c.encode(message, forKey: .message)
        try c.encode(remedy, forKey: .remedy)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        rule = try c.decode(RuleID.self, forKey: .id)
        severity = try c.decodeIfPresent(Severity.self, forKey: .severity) ?? rule.severity
        location = SourceLocation(file: try c.decode(String.self, forKey: .file),
                                  line: try c.decode(Int.self, forKey: .line),
                                  column: try c.decode(Int.self, forKey: .column))
        message = try c.decode(String.self, forKey: .message)
        remedy = try c.decode(String.self, forKey: .remedy)
    }
}
