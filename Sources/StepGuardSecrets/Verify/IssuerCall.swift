/// A read-only identity call of a secret's issuer: the documented endpoint that answers "who am I"
/// for a credential without changing anything. Only these URLs ever receive a secret.
public struct IssuerCall: Sendable, Equatable {
    /// How the credential is presented.
    public enum Authentication: Sendable, Equatable {
        /// `Authorization: Bearer SECRET`.
        case bearer
        /// `NAME: SECRET` (GitLab's `PRIVATE-TOKEN`, Anthropic's `x-api-key`).
        case header(String)
    }

    /// How an answer is read.
    public enum Answer: Sendable, Equatable {
        /// 2xx: live; 401: rejected; anything else: unknown.
        case status
        /// Like ``status``, and 403 also means live: the issuer authenticated the key but the key
        /// may not read this resource (Stripe's restricted keys).
        case statusForbiddenIsLive
        /// Slack Web API: HTTP 200 with `"ok": true` (live) or `"ok": false` and an `error` naming
        /// a bad token (rejected).
        case slack
    }

    /// The issuer's name, for messages.
    public var issuer: String
    /// `GET` or `POST`.
    public var method: String
    /// The documented endpoint (https, fixed host).
    public var url: String
    /// How the secret is sent.
    public var authentication: Authentication
    /// Fixed headers the endpoint asks for (API version, accept).
    public var headers: [Header]
    /// How the answer is read.
    public var answer: Answer
    /// When not empty, only secrets starting with one of these are sent (the rule also matches
    /// credentials this endpoint does not take, e.g. refresh tokens).
    public var prefixes: [String] = []

    /// A fixed request header.
    public struct Header: Sendable, Equatable {
        public var name: String
        public var value: String
    }

    /// The host of ``url`` (`api.github.com`).
    public var host: String {
        let rest = url.dropFirst("https://".count)
        return String(rest.prefix { $0 != "/" && $0 != ":" })
    }

    /// The path of ``url`` (`/user`), for messages.
    public var path: String {
        let rest = url.dropFirst("https://".count)
        return rest.firstIndex(of: "/").map { String(rest[$0...]) } ?? "/"
    }

    /// Whether this call takes `secret` (see ``prefixes``).
    public func accepts(_ secret: String) -> Bool {
        prefixes.isEmpty || prefixes.contains { secret.hasPrefix($0) }
    }
}

extension IssuerCall {
    static let githubUser = IssuerCall(
        issuer: "GitHub", method: "GET", url: "https://api.github.com/user", authentication: .bearer,
        headers: [Header(name: "Accept", value: "application/vnd.github+json"), Header(name: "X-GitHub-Api-Version", value: "2022-11-28")],
        answer: .status)
    static let githubInstallation = IssuerCall(
        issuer: "GitHub", method: "GET", url: "https://api.github.com/installation/repositories?per_page=1", authentication: .bearer,
        headers: [Header(name: "Accept", value: "application/vnd.github+json"), Header(name: "X-GitHub-Api-Version", value: "2022-11-28")],
        answer: .status)
    static let gitlab = IssuerCall(
        issuer: "GitLab.com", method: "GET", url: "https://gitlab.com/api/v4/personal_access_tokens/self",
        authentication: .header("PRIVATE-TOKEN"), headers: [], answer: .status)
    static let slack = IssuerCall(
        issuer: "Slack", method: "POST", url: "https://slack.com/api/auth.test", authentication: .bearer,
        headers: [Header(name: "Content-Type", value: "application/x-www-form-urlencoded")], answer: .slack,
        prefixes: ["xoxb-", "xoxp-"])
    static let npm = IssuerCall(
        issuer: "npm", method: "GET", url: "https://registry.npmjs.org/-/whoami", authentication: .bearer,
        headers: [], answer: .status)
    static let stripe = IssuerCall(
        issuer: "Stripe", method: "GET", url: "https://api.stripe.com/v1/balance", authentication: .bearer,
        headers: [], answer: .statusForbiddenIsLive)
    static let openAI = IssuerCall(
        issuer: "OpenAI", method: "GET", url: "https://api.openai.com/v1/models", authentication: .bearer,
        headers: [], answer: .status)
    static let anthropic = IssuerCall(
        issuer: "Anthropic", method: "GET", url: "https://api.anthropic.com/v1/models", authentication: .header("x-api-key"),
        headers: [Header(name: "anthropic-version", value: "2023-06-01")], answer: .status, prefixes: ["sk-ant-api03-"])

    /// The call for each rule whose issuer has one (rule id → call). Rules not listed are reported
    /// `unknown` without any request.
    public static let byRule: [String: IssuerCall] = [
        "github-pat-classic": githubUser,
        "github-fine-grained-pat": githubUser,
        "github-oauth-token": githubUser,
        "github-user-to-server-token": githubUser,
        "github-installation-token": githubInstallation,
        "gitlab-pat": gitlab,
        "slack-bot-token": slack,
        "slack-user-token": slack,
        "npm-access-token": npm,
        "stripe-secret-key": stripe,
        "stripe-restricted-key": stripe,
        "stripe-test-secret-key": stripe,
        "openai-api-key": openAI,
        "anthropic-api-key": anthropic,
    ]

    /// Every host a call may reach (for `--verify-resolve`).
    public static var hosts: Set<String> { Set(byRule.values.map(\.host)) }
}
