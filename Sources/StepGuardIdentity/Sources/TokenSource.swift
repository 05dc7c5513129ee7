import Foundation

/// Where the job's OIDC token comes from (policy key `identity.token`).
public enum TokenSource: Sendable, Equatable, CustomStringConvertible {
    /// GitHub Actions: `ACTIONS_ID_TOKEN_REQUEST_URL` + `&audience=…`, `Bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN`, response `{"value"}`.
    case github
    /// GitLab CI: the JWT in the variable named by the pipeline's `id_tokens:` (default `STEPGUARD_ID_TOKEN`).
    case gitlab(variable: String)
    /// Buildkite: `buildkite-agent oidc request-token --audience AUD`.
    case buildkite
    /// CircleCI: `CIRCLE_OIDC_TOKEN_V2`.
    case circleci
    /// Azure Pipelines: `POST $SYSTEM_OIDCREQUESTURI?api-version=7.1-preview.1`, `Bearer $SYSTEM_ACCESSTOKEN`, response `{"oidcToken"}`.
    case azure
    /// Any environment variable.
    case environment(String)
    /// A file holding the token (relative paths are relative to the working directory).
    case file(String)

    /// GitLab's default variable name.
    public static let defaultGitLabVariable = "STEPGUARD_ID_TOKEN"

    /// Parses a policy value: `github`, `gitlab`, `gitlab:NAME`, `buildkite`, `circleci`, `azure`,
    /// `env:NAME`, `file:PATH`.
    public static func parse(_ text: String) throws(IdentityError) -> TokenSource {
        switch text {
        case "github": return .github
        case "gitlab": return .gitlab(variable: defaultGitLabVariable)
        case "buildkite": return .buildkite
        case "circleci": return .circleci
        case "azure": return .azure
        default: break
        }
        if text.hasPrefix("gitlab:"), let name = validVariable(String(text.dropFirst(7))) { return .gitlab(variable: name) }
        if text.hasPrefix("env:"), let name = validVariable(String(text.dropFirst(4))) { return .environment(name) }
        if text.hasPrefix("file:"), text.count > 5 { return .file(String(text.dropFirst(5))) }
        throw IdentityError(.policy, "identity.token \"\(text)\" is not a token source",
                            remedy: "use github, gitlab, buildkite, circleci, azure, env:NAME or file:PATH (or omit it to auto-detect)")
    }

    private static func validVariable(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        func isLetter(_ b: UInt8) -> Bool { (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b == 95 }
        guard let first = bytes.first, isLetter(first),
              bytes.allSatisfy({ isLetter($0) || ($0 >= 48 && $0 <= 57) }) else { return nil }
        return name
    }

    /// Detects the CI provider from its well-known variables; nil when none is recognized.
    public static func detect(environment: [String: String]) -> TokenSource? {
        if environment["GITHUB_ACTIONS"] == "true" { return .github }
        if environment["GITLAB_CI"] == "true" { return .gitlab(variable: defaultGitLabVariable) }
        if environment["BUILDKITE"] == "true" { return .buildkite }
        if environment["CIRCLECI"] == "true" { return .circleci }
        if environment["TF_BUILD"]?.lowercased() == "true" { return .azure }
        return nil
    }

    public var description: String {
        switch self {
        case .github: return "github"
        case .gitlab(let variable): return variable == Self.defaultGitLabVariable ? "gitlab" : "gitlab:\(variable)"
        case .buildkite: return "buildkite"
        case .circleci: return "circleci"
        case .azure: return "azure"
        case .environment(let name): return "env:\(name)"
        case .file(let path): return "file:\(path)"
        }
    }
}

/// Options for obtaining a token.
public struct TokenAcquisitionOptions: Sendable {
    /// HTTP client for the GitHub and Azure token endpoints.
    public var transport: any HTTPTransport
    /// Time limit for `buildkite-agent`, in seconds.
    public var commandTimeout: TimeInterval

    /// Creates options.
    public init(transport: any HTTPTransport = CurlTransport(), commandTimeout: TimeInterval = 15) {
        self.transport = transport
        self.commandTimeout = commandTimeout
    }
}
