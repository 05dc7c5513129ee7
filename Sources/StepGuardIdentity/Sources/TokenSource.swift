import FoundationEssentials
import Glibc
import StepGuardPolicy

extension TokenSource {
    /// The variable GitLab's `id_tokens:` entry is read from for `token: gitlab`.
    public static let gitLabVariable = "STEPGUARD_ID_TOKEN"

    /// Detects the CI provider from its well-known variables; nil when none is recognized.
    public static func detect(environment: [String: String]) -> TokenSource? {
        if environment["GITHUB_ACTIONS"] == "true" { return .github }
        if environment["GITLAB_CI"] == "true" { return .gitlab }
        if environment["BUILDKITE"] == "true" { return .buildkite }
        if environment["CIRCLECI"] == "true" { return .circleci }
        if environment["TF_BUILD"]?.lowercased() == "true" { return .azure }
        return nil
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
