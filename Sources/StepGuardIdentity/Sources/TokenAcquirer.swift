import StepGuardCore
import FoundationEssentials
import Glibc
import StepGuardPolicy

/// Obtains the job's OIDC token from its CI provider. Every path has a time limit and fails
/// closed with an error naming the provider and what was missing.
public struct TokenAcquirer: Sendable {
    /// Options (transport, command timeout).
    public let options: TokenAcquisitionOptions
    /// Maximum token length accepted from any source.
    public static let maximumTokenLength = 64 * 1024

    /// Creates an acquirer.
    public init(options: TokenAcquisitionOptions = TokenAcquisitionOptions()) {
        self.options = options
    }

    /// Gets a token for `audience` from `source` (nil: auto-detect from `environment`).
    public func acquire(source: TokenSource?, audience: String, environment: [String: String]) async throws(IdentityError) -> String {
        guard let source = source ?? TokenSource.detect(environment: environment) else {
            throw IdentityError(.tokenUnavailable, "no CI provider detected (none of GITHUB_ACTIONS, GITLAB_CI, BUILDKITE, CIRCLECI, TF_BUILD is set)",
                                remedy: "set identity.token in the policy (e.g. env:NAME or file:PATH), or set required: false")
        }
        let token: String
        switch source {
        case .github: token = try github(audience: audience, environment: environment)
        case .azure: token = try azure(environment: environment)
        case .gitlab:
            token = try self.variable(TokenSource.gitLabVariable, in: environment, provider: "GitLab",
                                 remedy: "declare it under the job's id_tokens: with aud: \(audience)")
        case .circleci:
            token = try self.variable("CIRCLE_OIDC_TOKEN_V2", in: environment, provider: "CircleCI",
                                 remedy: "run the job in a CircleCI context that issues OIDC tokens")
        case .environment(let name):
            token = try self.variable(name, in: environment, provider: "env:\(name)", remedy: "export the token in \(name) before running stepguard")
        case .file(let path): token = try file(path)
        case .buildkite: token = try await buildkite(audience: audience, environment: environment)
        }
        return try clean(token, provider: source.description)
    }

    private func clean(_ raw: String, provider: String) throws(IdentityError) -> String {
        let token = raw.trimmingWhitespaceAndNewlines()
        guard !token.isEmpty else {
            throw IdentityError(.tokenSource, "\(provider) returned an empty token", remedy: "check the provider's OIDC configuration")
        }
        guard token.utf8.count <= Self.maximumTokenLength else {
            throw IdentityError(.tokenSource, "\(provider) returned \(token.utf8.count) bytes; the limit is \(Self.maximumTokenLength)",
                                remedy: "check that the source holds a single JWT")
        }
        return token
    }

    private func variable(_ name: String, in environment: [String: String], provider: String, remedy: String) throws(IdentityError) -> String {
        guard let value = environment[name], !value.isEmpty else {
            throw IdentityError(.tokenUnavailable, "\(provider): the variable \(name) is not set", remedy: remedy)
        }
        return value
    }

    private func github(audience: String, environment: [String: String]) throws(IdentityError) -> String {
        let remedy = "give the job `permissions: id-token: write`"
        let url = try variable("ACTIONS_ID_TOKEN_REQUEST_URL", in: environment, provider: "GitHub Actions", remedy: remedy)
        let bearer = try variable("ACTIONS_ID_TOKEN_REQUEST_TOKEN", in: environment, provider: "GitHub Actions", remedy: remedy)
        let separator = url.contains("?") ? "&" : "?"
        let request = HTTPRequest(url: url + separator + "audience=" + Self.percentEncode(audience),
                                  headers: [("Authorization", "Bearer \(bearer)"), ("Accept", "application/json")])
        return try fetchJSONToken(request, field: "value", provider: "GitHub Actions token endpoint", shownURL: Self.withoutQuery(url))
    }

    private func azure(environment: [String: String]) throws(IdentityError) -> String {
        let url = try variable("SYSTEM_OIDCREQUESTURI", in: environment, provider: "Azure Pipelines",
                               remedy: "run the step in an Azure Pipelines job that can request OIDC tokens")
        let bearer = try variable("SYSTEM_ACCESSTOKEN", in: environment, provider: "Azure Pipelines",
                                  remedy: "map it into the step: env: { SYSTEM_ACCESSTOKEN: $(System.AccessToken) }")
        let separator = url.contains("?") ? "&" : "?"
        let request = HTTPRequest(method: .post, url: url + separator + "api-version=7.1-preview.1",
                                  headers: [("Authorization", "Bearer \(bearer)"), ("Content-Type", "application/json"), ("Accept", "application/json")])
        return try fetchJSONToken(request, field: "oidcToken", provider: "Azure Pipelines OIDC endpoint", shownURL: Self.withoutQuery(url))
    }

    private func fetchJSONToken(_ request: HTTPRequest, field: String, provider: String, shownURL: String) throws(IdentityError) -> String {
        let response = try options.transport.perform(request, purpose: .tokenSource)
        guard response.status == 200 else {
            throw IdentityError(.tokenSource, "\(provider) \(shownURL) returned HTTP \(response.status)",
                                remedy: "check the job's OIDC permissions and that the request token is still valid")
        }
        guard let json = try? StrictJSON.parse(response.body), let value = json.objectValue?[field]?.stringValue else {
            throw IdentityError(.tokenSource, "\(provider) \(shownURL) did not return a JSON object with a string \"\(field)\"",
                                remedy: "check that the URL is the provider's OIDC token endpoint")
        }
        return value
    }

    private func file(_ path: String) throws(IdentityError) -> String {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw IdentityError(.tokenUnavailable, "token file \(path) does not exist or cannot be read",
                                remedy: "write the token to \(path) before running stepguard, or fix identity.token")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG, info.st_size <= off_t(Self.maximumTokenLength) else {
            throw IdentityError(.tokenSource, "token file \(path) is not a regular file of at most \(Self.maximumTokenLength) bytes",
                                remedy: "point identity.token at a file holding one JWT")
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw IdentityError(.tokenSource, "token file \(path) cannot be read as UTF-8 text", remedy: "point identity.token at a file holding one JWT")
        }
        return text
    }

    private func buildkite(audience: String, environment: [String: String]) async throws(IdentityError) -> String {
        let arguments = ["oidc", "request-token", "--audience", audience]
        guard let executable = Self.findExecutable("buildkite-agent", path: environment["PATH"]) else {
            throw IdentityError(.tokenUnavailable, "Buildkite: buildkite-agent is not on PATH",
                                remedy: "run the step on a Buildkite agent, or set identity.token to another source")
        }
        let result: CommandResult
        do {
            result = try await CommandRunner.run(executable: executable, arguments: arguments, environment: environment,
                                                 timeout: options.commandTimeout, outputLimit: Self.maximumTokenLength)
        } catch {
            throw IdentityError(.tokenSource, "Buildkite: cannot run \(executable): \(error)", remedy: "check the agent installation")
        }
        if result.timedOut {
            throw IdentityError(.tokenSource, "Buildkite: `buildkite-agent oidc request-token` did not finish within \(Int(options.commandTimeout))s",
                                remedy: "check the agent's connection to Buildkite; stepguard fails closed")
        }
        guard result.status == 0 else {
            let stderr = String(decoding: result.standardError.prefix(300), as: UTF8.self).trimmingWhitespaceAndNewlines()
            throw IdentityError(.tokenSource, "Buildkite: `buildkite-agent oidc request-token --audience \(audience)` exited with status \(result.status)\(stderr.isEmpty ? "" : ": \(stderr)")",
                                remedy: "check the pipeline's OIDC policy in Buildkite")
        }
        return String(decoding: result.standardOutput, as: UTF8.self)
    }

    static func findExecutable(_ name: String, path: String?) -> String? {
        for directory in (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") where !directory.isEmpty {
            let candidate = "\(directory)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    static func percentEncode(_ value: String) -> String {
        value.percentEncoded(allowing: "-._~")
    }

    /// The URL without its query string (the query may carry request tokens).
    static func withoutQuery(_ url: String) -> String {
        url.split(separator: "?", maxSplits: 1).first.map(String.init) ?? url
    }
}
