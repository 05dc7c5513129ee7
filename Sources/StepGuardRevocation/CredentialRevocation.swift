import Dispatch
import FoundationEssentials
import Glibc
import StepGuardAudit
import StepGuardCore
import StepGuardEgress
import StepGuardPolicy
import Synchronization

/// A credential the step held — from its environment, or minted through an exchange the proxy
/// intercepted — and how to revoke it at its issuer, if it can be.
public struct HeldCredential: Sendable {
    /// What it is, e.g. `GitHub installation token`.
    public let kind: String
    /// Where the step got it, e.g. `environment: GITHUB_TOKEN` or `minted by pypi-upload`.
    public let origin: String
    /// The request that revokes it, or nil when its issuer has no revocation call.
    let request: HTTPRequest?
    /// The statuses that mean "revoked".
    let revokedStatuses: Set<Int>
    /// For one that cannot be revoked: why, and when it expires.
    let notRevocable: String?
    /// The token: never print or log it (see ``redacted``).
    let token: String

    /// The token as it may be shown: a prefix and a hash.
    public var redacted: String { redact(token) }

    /// The URL the revocation request goes to, or nil.
    public var endpoint: String? { request?.url }
}

/// Revocation after a violation (`revoke: auto`): finds the credentials a step held and revokes
/// them at their issuers, in parallel, all within a bound, recording one `revocation` event each.
///
/// What each issuer's call does (the requests are those of the providers' documentation):
/// - GitHub installation tokens (`ghs_…`, including `GITHUB_TOKEN`): `DELETE /installation/token`
///   with the token as bearer, at `GITHUB_API_URL` (default `https://api.github.com`); 204 = revoked.
/// - Vault service tokens (`VAULT_TOKEN`): `POST /v1/auth/token/revoke-self` with `X-Vault-Token`
///   (and `X-Vault-Namespace` from `VAULT_NAMESPACE`) at `VAULT_ADDR`; 204 = revoked (the token and
///   its children). Batch tokens (`hvb.…`) cannot be revoked.
/// - GitHub App installation tokens minted during the step through `github-app-token`
///   (`POST /app/installations/{id}/access_tokens`): the same call, at `https://api.github.com`
///   where they were minted.
/// - Vault tokens minted by a login the proxy intercepted (`hashicorp-vault`'s `mints:`): the same
///   call, at `VAULT_ADDR`.
/// - Google OAuth access tokens minted through `gcp-sts` (workload identity federation) or
///   `gcp-iamcredentials` (`generateAccessToken`): `POST https://oauth2.googleapis.com/revoke` with
///   `token=` in a form body; 200 = revoked.
/// - AWS STS session credentials (`AWS_SESSION_TOKEN`) and OIDC ID tokens (a JWT in any variable):
///   no revocation call; reported as not revocable with their expiry.
/// - npm and PyPI trusted-publishing tokens (the catalog's `mints:`): no documented revocation call
///   for these; reported as not revocable with their lifetime.
public enum CredentialRevocation {
    /// The longest all revocations of a run may take together.
    public static let bound: TimeInterval = 5

    /// The credentials of `environment` (the step's) and of `minted` that revocation concerns,
    /// each token once (`VAULT_ADDR`, `VAULT_NAMESPACE` and `GITHUB_API_URL` come from `environment`).
    public static func held(environment: [String: String], minted: [MintedCredentials.Held]) -> [HeldCredential] {
        var found: [HeldCredential] = []
        var seen: Set<String> = []
        for name in environment.keys.sorted() {
            guard let value = environment[name], !value.isEmpty, !seen.contains(value) else { continue }
            if value.hasPrefix("ghs_") {
                seen.insert(value)
                found.append(github(value, origin: "environment: \(name)", environment: environment))
            } else if name == "VAULT_TOKEN" {
                seen.insert(value)
                found.append(vault(value, origin: "environment: \(name)", environment: environment))
            } else if name == "AWS_SESSION_TOKEN" {
                seen.insert(value)
                let expiry = environment["AWS_CREDENTIAL_EXPIRATION"].map { "expires at \($0)" } ?? "expires with its session (at most 12 hours)"
                found.append(HeldCredential(kind: "AWS STS session credentials", origin: "environment: \(name)", request: nil, revokedStatuses: [],
                                            notRevocable: "AWS has no call that revokes STS session credentials; \(expiry)", token: value))
            } else if let expiry = jwtExpiry(value) {
                seen.insert(value)
                found.append(HeldCredential(kind: "JWT (an OIDC ID token or the like)", origin: "environment: \(name)", request: nil, revokedStatuses: [],
                                            notRevocable: "an OIDC ID token has no revocation call; expires at \(expiry)", token: value))
            }
        }
        return found + self.minted(minted.filter { !seen.contains($0.token) }, environment: environment)
    }

    /// The credentials of `minted` (tokens obtained through an exchange the proxy intercepted).
    public static func minted(_ minted: [MintedCredentials.Held], environment: [String: String]) -> [HeldCredential] {
        var seen: Set<String> = []
        return minted.filter { seen.insert($0.token).inserted }.map { mintedCredential($0, environment: environment) }
    }

    static func github(_ token: String, origin: String, environment: [String: String]) -> HeldCredential {
        github(token, origin: origin, api: environment["GITHUB_API_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? githubAPI)
    }

    /// GitHub's API, where `github-app-token` mints installation tokens (and where they are revoked).
    static let githubAPI = "https://api.github.com"

    static func github(_ token: String, origin: String, api: String) -> HeldCredential {
        let request = HTTPRequest(method: .delete, url: trimmed(api) + "/installation/token",
                                  headers: [("Authorization", "Bearer \(token)"), ("Accept", "application/vnd.github+json"),
                                            ("X-GitHub-Api-Version", "2022-11-28")])
        return HeldCredential(kind: "GitHub installation token", origin: origin, request: request, revokedStatuses: [204],
                              notRevocable: nil, token: token)
    }

    static func vault(_ token: String, origin: String, environment: [String: String]) -> HeldCredential {
        if token.hasPrefix("hvb.") {
            return HeldCredential(kind: "Vault batch token", origin: origin, request: nil, revokedStatuses: [],
                                  notRevocable: "Vault batch tokens cannot be revoked; they expire at the end of their TTL", token: token)
        }
        guard let address = environment["VAULT_ADDR"].flatMap({ $0.isEmpty ? nil : $0 }) else {
            return HeldCredential(kind: "Vault token", origin: origin, request: nil, revokedStatuses: [],
                                  notRevocable: "VAULT_ADDR is not set in the step's environment: the Vault that issued it is unknown", token: token)
        }
        var headers = [("X-Vault-Token", token)]
        if let namespace = environment["VAULT_NAMESPACE"], !namespace.isEmpty { headers.append(("X-Vault-Namespace", namespace)) }
        let request = HTTPRequest(method: .post, url: trimmed(address) + "/v1/auth/token/revoke-self", headers: headers)
        return HeldCredential(kind: "Vault token", origin: origin, request: request, revokedStatuses: [204], notRevocable: nil, token: token)
    }

    /// Google's OAuth 2.0 revocation endpoint (RFC 7009 style): the token in a form body; 200 = revoked.
    static let googleRevocationURL = "https://oauth2.googleapis.com/revoke"

    static func google(_ token: String, origin: String) -> HeldCredential {
        var body = URLComponents()
        body.queryItems = [URLQueryItem(name: "token", value: token)]
        let form = (body.percentEncodedQuery ?? "").replacingAll("+", with: "%2B")
        let request = HTTPRequest(method: .post, url: googleRevocationURL,
                                  headers: [("Content-Type", "application/x-www-form-urlencoded")], body: Array(form.utf8))
        return HeldCredential(kind: "Google OAuth access token", origin: origin, request: request, revokedStatuses: [200],
                              notRevocable: nil, token: token)
    }

    static func mintedCredential(_ mint: MintedCredentials.Held, environment: [String: String]) -> HeldCredential {
        if mint.service == "hashicorp-vault" { return vault(mint.token, origin: "minted by hashicorp-vault (login)", environment: environment) }
        // Revoked where it was minted (the catalog's host), whatever GITHUB_API_URL says.
        if mint.service == "github-app-token" { return github(mint.token, origin: "minted by github-app-token", api: githubAPI) }
        if mint.service == "gcp-sts" || mint.service == "gcp-iamcredentials" { return google(mint.token, origin: "minted by \(mint.service)") }
        let minted = mint.minted.ISO8601Format()
        let lifetime: String = switch mint.service {
        case "pypi-upload": "PyPI has no revocation call for trusted-publishing tokens; it expires 15 minutes after it was minted (\(minted))"
        case "npm-publish": "npm documents no revocation call for trusted-publishing tokens; it is short-lived (minted \(minted))"
        default: "\(mint.service) has no revocation call stepguard knows; minted \(minted)"
        }
        return HeldCredential(kind: "\(mint.service) token", origin: "minted by \(mint.service)", request: nil, revokedStatuses: [],
                              notRevocable: lifetime, token: mint.token)
    }

    /// The `exp` of a value shaped like a JWT (three base64url parts, a JSON payload), as ISO 8601;
    /// nil for anything else. Not verified: it only says when the token stops being accepted.
    static func jwtExpiry(_ value: String) -> String? {
        guard let exp = (try? CompactJWT(value))?.claims["exp"]?.doubleValue else { return nil }
        return Date(timeIntervalSince1970: exp).ISO8601Format()
    }

    private static func trimmed(_ url: String) -> String {
        url.hasSuffix("/") ? String(url.dropLast()) : url
    }

    /// Revokes `credentials` (in `mode: audit` only records what it would revoke), in parallel and
    /// all within ``bound``, each only where ``RevocationTargets`` permits; records one `revocation`
    /// event each, saying `why`.
    public static func revoke(_ credentials: [HeldCredential], why: String, policy: Policy, trail: AuditTrail, transport: any HTTPClient) {
        let auditOnly = policy.mode == .audit
        let targets = RevocationTargets(policy: policy)
        let started = Date()
        let group = DispatchGroup()
        let recorded = RecordedOnce()
        @Sendable func record(_ index: Int, outcome: String, detail: String, status: Int? = nil) {
            guard recorded.first(index) else { return }
            let credential = credentials[index]
            var subject: [String: AuditValue] = [
                "credential": .string(credential.redacted), "kind": .string(credential.kind), "origin": .string(credential.origin),
                "outcome": .string(outcome), "why": .string(why),
                "milliseconds": .int(Int(Date().timeIntervalSince(started) * 1000)),
            ]
            if let endpoint = credential.endpoint { subject["endpoint"] = .string(endpoint) }
            if let status { subject["status"] = .int(status) }
            trail.record(AuditEvent(type: .revocation, decision: .deny,
                                    reason: "\(credential.kind) from \(credential.origin) (\(why)): \(detail)",
                                    rule: "revoke: auto", subject: subject))
        }
        for (index, credential) in credentials.enumerated() {
            guard let request = credential.request else {
                record(index, outcome: "not revocable", detail: credential.notRevocable ?? "no revocation call")
                continue
            }
            if let refusal = targets.refusal(for: request.url) {
                record(index, outcome: "failed", detail: "\(refusal); the credential may still be valid")
                continue
            }
            if auditOnly {
                record(index, outcome: "would revoke", detail: "would be revoked at \(request.url) (audit mode: nothing is revoked)")
                continue
            }
            group.enter()
            DetachedThread.detach {
                defer { group.leave() }
                do {
                    let status = try transport.send(request, timeout: bound).status
                    if credential.revokedStatuses.contains(status) {
                        record(index, outcome: "revoked", detail: "revoked at \(request.url)", status: status)
                    } else {
                        record(index, outcome: "failed", detail: "\(request.url) answered \(status); the credential may still be valid",
                               status: status)
                    }
                } catch {
                    record(index, outcome: "failed", detail: "\(error); the credential may still be valid")
                }
            }
        }
        // libcurl bounds each request; this bounds them all, should one outlast its timeout.
        if group.wait(timeout: .now() + bound + 0.5) == .timedOut {
            for index in credentials.indices {
                record(index, outcome: "failed", detail: "no answer within \(Int(bound)) s; the credential may still be valid")
            }
        }
    }
}

/// Which credentials have their event already (one each, whichever of the request and the overall
/// bound comes first).
private final class RecordedOnce: Sendable {
    private let indices = Mutex<Set<Int>>([])

    /// True the first time `index` is passed.
    func first(_ index: Int) -> Bool { indices.withLock { $0.insert(index).inserted } }
}
