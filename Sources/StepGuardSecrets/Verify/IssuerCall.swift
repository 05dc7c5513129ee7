/// A read-only identity call of a secret's issuer: the documented endpoint that answers "who am I"
/// for a credential without changing anything. Only these URLs ever receive a secret.
public struct IssuerCall: Sendable, Equatable {
    /// How the credential is presented.
    public enum Authentication: Sendable, Equatable {
        /// `Authorization: Bearer SECRET`.
        case bearer
        /// `NAME: SECRET` (GitLab's `PRIVATE-TOKEN`, Anthropic's `x-api-key`).
        case header(String)
        /// AWS Signature Version 4 (``AWSSigV4``) with the access key id (the finding) and the
        /// secret access key found beside it; the secret itself is never sent.
        case awsSigV4(region: String, service: String)
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
        /// AWS STS: 200 live; 403 with the error code `InvalidClientTokenId` rejected (AWS has no
        /// such active key id); anything else unknown (`SignatureDoesNotMatch`: the key id exists
        /// but was signed with another secret).
        case awsSTS
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
    /// Who else issues credentials of this format, when the format does not tell this issuer's
    /// from theirs (a self-managed GitLab, GitHub Enterprise Server): a rejection then only says
    /// that this issuer does not know the credential, and the result is `unknown`, not `revoked`.
    public var otherIssuers: String? = nil
    /// The fixed body (AWS STS's form), empty for the others.
    public var body: String = ""

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
        answer: .status, otherIssuers: gitHubEnterprise)
    static let githubInstallation = IssuerCall(
        issuer: "GitHub", method: "GET", url: "https://api.github.com/installation/repositories?per_page=1", authentication: .bearer,
        headers: [Header(name: "Accept", value: "application/vnd.github+json"), Header(name: "X-GitHub-Api-Version", value: "2022-11-28")],
        answer: .status, otherIssuers: gitHubEnterprise)
    /// GitHub Enterprise Server issues the same token formats as github.com (`ghp_`, `gho_`,
    /// `ghu_`, `ghs_`, `github_pat_`): nothing in a token names its instance.
    static let gitHubEnterprise = "a GitHub Enterprise Server instance"
    /// Self-managed GitLab issues `glpat-` tokens of the same format as gitlab.com.
    static let gitlab = IssuerCall(
        issuer: "GitLab.com", method: "GET", url: "https://gitlab.com/api/v4/personal_access_tokens/self",
        authentication: .header("PRIVATE-TOKEN"), headers: [], answer: .status, otherIssuers: "a self-managed GitLab instance")
    /// `sts:GetCallerIdentity` on the global endpoint: any valid key may call it, it changes nothing.
    static let awsSTS = stsCall("AWS STS", host: "sts.amazonaws.com", region: "us-east-1")
    /// The same call in AWS's other public partitions, whose keys have the same format and are
    /// unknown to the global endpoint: a key id it rejects is asked there before it is `revoked`.
    static let awsOtherPartitions = [
        stsCall("AWS STS China", host: "sts.cn-north-1.amazonaws.com.cn", region: "cn-north-1"),
        stsCall("AWS STS GovCloud", host: "sts.us-gov-west-1.amazonaws.com", region: "us-gov-west-1"),
    ]

    static func stsCall(_ issuer: String, host: String, region: String) -> IssuerCall {
        IssuerCall(
            issuer: issuer, method: "POST", url: "https://\(host)/", authentication: .awsSigV4(region: region, service: "sts"),
            headers: [Header(name: "Content-Type", value: "application/x-www-form-urlencoded; charset=utf-8")], answer: .awsSTS,
            prefixes: ["AKIA"], body: "Action=GetCallerIdentity&Version=2011-06-15")
    }
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
        "aws-access-key-id": awsSTS,
    ]

    /// Every host a call may reach (for `--verify-resolve`).
    public static var hosts: Set<String> { Set(byRule.values.map(\.host) + awsOtherPartitions.map(\.host)) }
}
