/// A loaded and validated stepguard policy (`version: 1`).
///
/// Every field has its default filled in; ``effective(forStep:)`` applies a step's overrides.
public struct Policy: Sendable, Equatable {
    /// Where the policy came from: a file path, or `<built-in default>`.
    public var source: String
    /// `version:` — the policy format; only 1 exists.
    public var version: Int = 1
    /// `mode:` — enforce, or audit (decide and record, block nothing).
    public var mode: EnforcementMode = .enforce
    /// `on_violation:` — stop the step at once, or let it finish and exit 77.
    public var onViolation: ViolationAction = .kill
    /// How long a stopped step gets between SIGTERM and SIGKILL.
    public var gracePeriod: PolicyDuration = PolicyDuration(seconds: 5)
    /// The job's workload identity requirements; nil asks for no token.
    public var identity: IdentityPolicy?
    /// `credentials:` — long-lived secrets in the step's environment.
    public var credentials = CredentialsPolicy()
    /// `egress:` — the destinations the step may reach.
    public var egress = EgressPolicy()
    /// `services:` — catalog services whose requests are TLS-inspected and decided one by one.
    public var services: [ServiceRule] = []
    /// `network:` — name overrides and extra upstream trust.
    public var network = NetworkPolicy()
    /// `isolation:` — whether the step runs in its own namespaces.
    public var isolation: IsolationMode = .auto
    /// `filesystem:` — paths hidden from an isolated step.
    public var filesystem = FilesystemPolicy()
    /// `tripwires:` — whether touching a hidden path stops the step.
    public var tripwires: TripwireMode = .on
    /// `revoke:` — whether a violating step's credentials are revoked at their issuers.
    public var revoke: RevokeMode = .auto
    /// `limits:` — resource caps.
    public var limits = LimitsPolicy()
    /// Named step overrides (`steps:`), applied by ``effective(forStep:)``.
    public var steps: [String: StepOverride] = [:]

    /// A policy with every default, loaded from `source`.
    public init(source: String) { self.source = source }
}

/// `mode:` — `enforce` blocks what policy denies; `audit` decides and records but blocks nothing.
public enum EnforcementMode: String, Sendable, CaseIterable { case enforce, audit }

/// `on_violation:` — `kill` stops the step at once; `fail` denies the action, lets the step finish, exits 77.
public enum ViolationAction: String, Sendable, CaseIterable { case kill, fail }

/// `isolation:` — whether the step runs in its own user, network and mount namespaces.
public enum IsolationMode: String, Sendable, CaseIterable { case required, auto, off }

/// `tripwires:` — whether the step's touching a hidden path (`filesystem.hide`) is a violation:
/// `on` (under isolation; the step is stopped per `on_violation`) or `off`.
public enum TripwireMode: String, Sendable, CaseIterable { case on, off }

/// `revoke:` — after a violation, revoke at their issuers the credentials the step held (`auto`),
/// or not (`off`). `mode: audit` records what would be revoked and revokes nothing.
public enum RevokeMode: String, Sendable, CaseIterable { case auto, off }

/// `identity:` — the OIDC token the job must present and what it must say.
public struct IdentityPolicy: Sendable, Equatable {
    /// Where to get the token; nil means detect the CI provider from the environment.
    public var token: TokenSource?
    /// The token's required `iss`.
    public var issuer: String
    /// The token's required `aud` (one of its values).
    public var audience: String
    /// A JWKS URL or a file path (already resolved against the policy's directory); nil → OIDC discovery.
    public var jwks: String?
    /// JWS algorithms accepted (asymmetric only).
    public var algorithms: [String] = IdentityPolicy.defaultAlgorithms
    /// Claim name → matchers (any-of); every listed claim must match.
    public var claims: [String: [ClaimMatcher]] = [:]
    /// `identity.lifetime:` — limits on the token's age and lifetime.
    public var lifetime = LifetimePolicy()
    /// When true and no token can be had, the step does not run.
    public var required = true

    /// The algorithms accepted when the policy names none.
    public static let defaultAlgorithms = ["RS256", "ES256"]
    /// Algorithms a policy may allow (asymmetric only; `none` and HMAC are never accepted).
    public static let supportedAlgorithms = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"]

    /// Requirements for tokens from `issuer` for `audience`, taken from `token` (nil: the CI provider detected).
    public init(token: TokenSource? = nil, issuer: String, audience: String) {
        self.token = token
        self.issuer = issuer
        self.audience = audience
    }
}

/// `identity.token:` — the CI provider (or variable, or file) the OIDC token comes from.
public enum TokenSource: Sendable, Equatable, CustomStringConvertible {
    case github, gitlab, buildkite, circleci, azure
    case environment(String)
    case file(String)

    /// The CI providers `identity.token:` may name.
    public static let providerNames = ["github", "gitlab", "buildkite", "circleci", "azure"]

    public var description: String {
        switch self {
        case .github: "github"
        case .gitlab: "gitlab"
        case .buildkite: "buildkite"
        case .circleci: "circleci"
        case .azure: "azure"
        case .environment(let name): "env:\(name)"
        case .file(let path): "file:\(path)"
        }
    }
}

/// One accepted value for a claim: a glob matches JSON strings only; numbers and booleans compare exactly.
public enum ClaimMatcher: Sendable, Equatable, CustomStringConvertible {
    case glob(Glob)
    case number(Double)
    case bool(Bool)

    public var description: String {
        switch self {
        case .glob(let glob): "\"\(glob.pattern)\""
        case .number(let value): value.rounded() == value && abs(value) < 1e15 ? String(Int64(value)) : String(value)
        case .bool(let value): String(value)
        }
    }
}

/// `identity.lifetime:` — limits on the token's age and lifetime.
public struct LifetimePolicy: Sendable, Equatable {
    /// `max_ttl:` — the longest `exp − iat` accepted.
    public var maxTTL: PolicyDuration?
    /// `max_age:` — the longest time since `iat` accepted.
    public var maxAge: PolicyDuration?
    /// `leeway:` — clock skew allowed on `iat`, `nbf` and `exp`.
    public var leeway = PolicyDuration(seconds: 30)
    /// `min_remaining:` — the least time the token must still be valid for when the step starts.
    public var minRemaining: PolicyDuration?
    /// No limits beyond the default leeway.
    public init() {}
}

/// `credentials:` — what to do with long-lived secrets in the step's environment.
public struct CredentialsPolicy: Sendable, Equatable {
    /// `long_lived:` — refuse to start the step, remove the variables, or let them through.
    public enum LongLived: String, Sendable, CaseIterable { case deny, strip, allow }
    /// What to do with long-lived credentials found in the environment.
    public var longLived: LongLived = .deny
    /// Variable names exempted from classification.
    public var allowVars: [Glob] = []
    /// Long-lived credentials denied, none exempted.
    public init() {}
}

/// `egress:` — which destinations the step may reach.
public struct EgressPolicy: Sendable, Equatable {
    /// `default:` — the verdict for a destination no rule names.
    public enum Default: String, Sendable, CaseIterable { case allow, deny }
    /// What a destination no rule names gets.
    public var defaultAction: Default = .deny
    /// `allow:` — hosts, host globs, addresses and networks (with optional ports) the step may reach.
    public var allow: [EgressRule] = []
    /// `deny:` — destinations refused whatever `allow` says.
    public var deny: [EgressRule] = []
    /// `resolve_names_for_address_rules:` — under `default: deny`, look up names that no name rule
    /// allows to test their addresses against the address rules. Off: such names are denied
    /// without a DNS query (the query itself would carry the name, and data in it, out).
    public var resolveNamesForAddressRules = false
    /// Everything denied.
    public init() {}
}

/// One entry of `services:` — a catalog service that is TLS-inspected, and what it accepts.
public struct ServiceRule: Sendable, Equatable {
    /// The catalog name (`rules/services/NAME.yaml`).
    public var service: String
    /// Hosts for services whose host the policy gives (e.g. `hashicorp-vault`).
    public var hosts: [HostPattern] = []
    /// Any-of: a request is allowed when one of these accepts it.
    public var allow: [ServiceAllowance] = []
    /// Where `service:` was written, for errors found later (e.g. an unknown catalog name).
    public var location: SourceLocation?

    /// An entry naming `service`, allowing nothing yet.
    public init(service: String) { self.service = service }
}

/// `services[].allow:` — the conditions under which a request to the service is accepted.
public struct ServiceAllowance: Sendable, Equatable {
    /// The least credential accepted.
    public enum Credential: String, Sendable, CaseIterable {
        case workload, shortLived = "short-lived", any, none
    }
    /// HTTP methods accepted (none listed: any).
    public var methods: [String] = []
    /// Path globs accepted (none listed: any).
    public var paths: [Glob] = []
    /// Claims of the job's verified identity required, as in `identity.claims`.
    public var claims: [String: [ClaimMatcher]] = [:]
    /// The least credential class accepted in the request.
    public var credential: Credential = .workload
    /// Accepted only within this time after the step started.
    public var window: PolicyDuration?
    /// For token endpoints: the `audience` values a token may be requested for.
    public var audiences: [Glob] = []
    /// Accepts any method and path with a workload credential.
    public init() {}
}

/// `network:` — name overrides and extra upstream trust (mirrors, air-gapped setups, tests).
public struct NetworkPolicy: Sendable, Equatable {
    /// `resolve:` — `host:port` → `address:port` used instead of a DNS lookup (by the proxy and revocation).
    public var resolve: [HostPort: HostPort] = [:]
    /// A CA file (resolved against the policy's directory) trusted for upstream TLS.
    public var upstreamCA: String?
    /// `dns:` — the DNS server (`address:port` or `name:port`) that resolves the names the step and
    /// the proxy look up; nil: the host's resolver.
    public var dns: HostPort?
    /// No overrides, the system's trust only.
    public init() {}
}

/// `filesystem:` — paths hidden from the step when isolated.
public struct FilesystemPolicy: Sendable, Equatable {
    /// Paths (with `~` for the home directory) that appear empty inside the step.
    public var hide: [String] = FilesystemPolicy.defaultHidden
    /// The credential stores hidden when the policy names none.
    public static let defaultHidden = [
        "~/.aws", "~/.config/gcloud", "~/.azure", "~/.docker/config.json", "~/.kube", "~/.ssh",
        "~/.npmrc", "~/.pypirc", "~/.netrc", "~/.git-credentials", "~/.config/gh",
        "/var/run/secrets/kubernetes.io",
    ]
    /// The default hidden paths.
    public init() {}
}

/// `limits:` — resource caps for the step.
public struct LimitsPolicy: Sendable, Equatable {
    /// `processes:` — the most processes the step may have at once (a pids cgroup), nil for no cap.
    public var processes: Int?
    /// No caps.
    public init() {}
}

/// `steps.NAME:` — per-step changes. Scalars replace; `egress.allow`/`egress.deny`, `services` and
/// `identity.claims` add to the base policy.
public struct StepOverride: Sendable, Equatable {
    public var mode: EnforcementMode?
    public var onViolation: ViolationAction?
    public var gracePeriod: PolicyDuration?
    public var egressDefault: EgressPolicy.Default?
    public var egressAllow: [EgressRule] = []
    public var egressDeny: [EgressRule] = []
    public var egressResolveNames: Bool?
    public var credentials: CredentialsPolicy?
    public var services: [ServiceRule] = []
    public var identityClaims: [String: [ClaimMatcher]] = [:]
    public var isolation: IsolationMode?
    public var tripwires: TripwireMode?
    /// An override that changes nothing.
    public init() {}
}

/// A position in a policy file (1-based line and column).
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    public let file: String
    public let line: Int
    public let column: Int

    /// The position `line`:`column` (1-based) in `file`.
    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column)" }
}
