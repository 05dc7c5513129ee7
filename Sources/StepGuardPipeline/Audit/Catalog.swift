import FoundationEssentials
import StepGuardCore
import Glibc

/// A kind of long-lived credential that has an OIDC alternative.
struct CredentialKind {
    /// What it is, e.g. "AWS access key".
    let name: String
    /// Exact names (env keys, action inputs normalized to UPPER_SNAKE, secret names).
    let names: Set<String>
    /// Name fragments that also identify it.
    let fragments: [String]
    /// The OIDC alternative in GitHub Actions.
    let github: String
    /// The OIDC alternative in GitLab CI.
    let gitlab: String

    func matches(_ raw: String) -> Bool {
        let name = raw.uppercased().replacingAll("-", with: "_")
        if Self.isUserName(name) { return false }
        return names.contains(name) || fragments.contains { name.contains($0) }
    }

    /// Whether a normalized name is an account name (`DOCKERHUB_USERNAME`, `REGISTRY_USER`), not a password.
    static func isUserName(_ name: String) -> Bool {
        ["USER", "USERNAME", "USER_NAME"].contains { name == $0 || name.hasSuffix("_" + $0) }
    }
}

/// What the audits know about actions, credentials and OIDC consumers.
enum Catalog {
    static let credentials: [CredentialKind] = [
        CredentialKind(name: "AWS access key",
                       names: ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"], fragments: ["AWS_SECRET", "AWS_ACCESS_KEY"],
                       github: "aws-actions/configure-aws-credentials with role-to-assume and id-token: write (GitHub OIDC to an IAM role)",
                       gitlab: "id_tokens: with aud sts.amazonaws.com and aws sts assume-role-with-web-identity"),
        CredentialKind(name: "npm token",
                       names: ["NPM_TOKEN", "NODE_AUTH_TOKEN", "NPM_AUTH_TOKEN", "NPM_PUBLISH_TOKEN"], fragments: ["NPM_TOKEN"],
                       github: "npm trusted publishing (npm publish with id-token: write, no token)",
                       gitlab: "npm trusted publishing from GitLab CI (id_tokens: NPM_ID_TOKEN with aud npm:registry.npmjs.org)"),
        CredentialKind(name: "PyPI API token",
                       names: ["PYPI_API_TOKEN", "PYPI_TOKEN", "PYPI_PASSWORD", "TWINE_PASSWORD", "TEST_PYPI_API_TOKEN"], fragments: ["PYPI_TOKEN", "PYPI_API"],
                       github: "PyPI trusted publishing (pypa/gh-action-pypi-publish with id-token: write, no password)",
                       gitlab: "PyPI trusted publishing for GitLab (id_tokens: PYPI_ID_TOKEN with aud pypi)"),
        CredentialKind(name: "Docker Hub password",
                       names: ["DOCKERHUB_PASSWORD", "DOCKERHUB_TOKEN", "DOCKER_PASSWORD", "DOCKER_HUB_PASSWORD", "DOCKER_HUB_TOKEN", "DOCKER_TOKEN", "REGISTRY_PASSWORD"], fragments: ["DOCKERHUB_", "DOCKER_HUB_"],
                       github: "a Docker Hub OIDC connection (docker/login-action with DOCKERHUB_OIDC_CONNECTIONID, no password, and id-token: write; Team/Business plans), or a registry with OIDC federation: ghcr.io with GITHUB_TOKEN, Amazon ECR via role-to-assume, Artifact Registry via workload identity federation",
                       gitlab: "the GitLab container registry with CI_JOB_TOKEN, or a cloud registry through id_tokens federation"),
        CredentialKind(name: "Google service account key",
                       names: ["GCP_SA_KEY", "GOOGLE_CREDENTIALS", "GCP_CREDENTIALS", "CREDENTIALS_JSON", "GOOGLE_APPLICATION_CREDENTIALS", "GCLOUD_SERVICE_KEY"], fragments: ["SA_KEY", "SERVICE_ACCOUNT_KEY"],
                       github: "google-github-actions/auth with workload_identity_provider and id-token: write",
                       gitlab: "Google workload identity federation with id_tokens:"),
        CredentialKind(name: "Azure client secret",
                       names: ["AZURE_CREDENTIALS", "AZURE_CLIENT_SECRET", "ARM_CLIENT_SECRET", "CREDS"], fragments: ["AZURE_CLIENT_SECRET"],
                       github: "azure/login with client-id, tenant-id and subscription-id (federated credential) and id-token: write",
                       gitlab: "Azure workload identity federation with id_tokens:"),
        CredentialKind(name: "crates.io token",
                       names: ["CARGO_REGISTRY_TOKEN", "CRATES_IO_TOKEN"], fragments: [],
                       github: "crates.io trusted publishing (rust-lang/crates-io-auth-action with id-token: write)",
                       gitlab: "a short-lived token minted from id_tokens:"),
        CredentialKind(name: "Vault token",
                       names: ["VAULT_TOKEN"], fragments: [],
                       github: "hashicorp/vault-action with method: jwt and id-token: write",
                       gitlab: "Vault JWT auth with id_tokens: (secrets: vault:)"),
    ]

    /// The credential kind named by an env key, action input or secret name.
    static func credential(named names: [String]) -> CredentialKind? {
        credentials.first { kind in names.contains { kind.matches($0) } }
    }

    /// Actions (owner/repo prefixes, lower case) that request the job's OIDC token.
    static let oidcActions: [String] = [
        "aws-actions/configure-aws-credentials", "google-github-actions/auth", "azure/login",
        "pypa/gh-action-pypi-publish", "sigstore/cosign-installer", "sigstore/gh-action-sigstore-python",
        "actions/attest", "actions/attest-build-provenance", "actions/attest-sbom", "actions/deploy-pages",
        "hashicorp/vault-action", "slsa-framework/", "rust-lang/crates-io-auth-action", "octo-sts/action",
        "chainguard-dev/setup-chainctl", "ossf/scorecard-action", "docker/github-builder", "step-security/",
        "actions/publish-immutable-action", "codspeedhq/action", "js-devtools/npm-publish", "pulumi/auth-actions",
        "depot/", "namespacelabs/nscloud", "sigstore/sigstore-conformance",
    ]

    /// Whether a `uses:` reference is an action known to consume the OIDC token (including stepguard's own).
    static func isOIDCAction(_ uses: String) -> Bool {
        let name = uses.lowercased()
        return oidcActions.contains { name.hasPrefix($0) } || isStepGuardRunAction(uses)
    }

    /// Whether `uses:` names stepguard's run action (`…/actions/run@…` of a stepguard repository, or local).
    static func isStepGuardRunAction(_ uses: String) -> Bool {
        let path = uses.split(separator: "@").first.map(String.init) ?? uses
        return path.lowercased().contains("stepguard") && path.hasSuffix("actions/run") || path == "./actions/run"
    }

    /// Whether `uses:` names stepguard's setup action.
    static func isStepGuardSetupAction(_ uses: String) -> Bool {
        let path = uses.split(separator: "@").first.map(String.init) ?? uses
        return path.lowercased().contains("stepguard") && path.hasSuffix("actions/setup") || path == "./actions/setup"
    }

    /// Shell text that shows an OIDC consumer: a direct token request, keyless signing (cosign, the
    /// sigstore CLI), npm trusted publishing or provenance, a JWT login, a web-identity role. Verifying
    /// (`gh attestation verify`, `cosign verify`) needs no token and is not one.
    static func isOIDCShell(_ text: String) -> Bool {
        let lower = text.lowercased()
        if ["actions_id_token_request", "getidtoken", "vault_id_token", "--provenance", "npm_config_provenance",
            "assume-role-with-web-identity", "-method=jwt", "changeset publish", "lerna publish", "semantic-release"].contains(where: lower.contains) {
            return true
        }
        if ShellScan.mentionsStepGuardRun(text) || lower.contains("stepguard run") { return true }
        let calls = ShellScan.serviceCalls(in: text.split(separator: "\n", omittingEmptySubsequences: false).map { (String($0), 1, 1) })
        return calls.contains { $0.service.hasPrefix("Sigstore") || $0.service.hasPrefix("npm") || $0.service.contains("uv publish") }
    }

    /// Whether a script calls a service that needs the job's own OIDC token (what `workflow wrap` grants
    /// `id-token: write` for): a direct token request, keyless signing (cosign without `--key`, the sigstore
    /// CLI), npm or uv publishing without a token in `envNames` (trusted publishing), a JWT or web-identity
    /// login. A service reached with a stored credential (Vault with `VAULT_TOKEN`, AWS KMS, a registry
    /// push, a local service container) does not.
    static func needsJobToken(_ text: String, envNames: Set<String>) -> Bool {
        let lower = text.lowercased()
        if ["actions_id_token_request", "getidtoken", "assume-role-with-web-identity", "-method=jwt", "--provenance",
            "npm_config_provenance"].contains(where: lower.contains) { return true }
        let upperEnv = Set(envNames.map { $0.uppercased() })
        let calls = ShellScan.serviceCalls(in: text.split(separator: "\n", omittingEmptySubsequences: false).map { (String($0), 1, 1) })
        return calls.contains { call in
            if call.service.hasPrefix("Sigstore") { return !call.arguments.contains { $0 == "--key" || $0.hasPrefix("--key=") } }
            if call.service.hasPrefix("npm") { return upperEnv.isDisjoint(with: ["NODE_AUTH_TOKEN", "NPM_TOKEN", "NPM_AUTH_TOKEN"]) && !lower.contains("_authtoken") }
            if call.service.contains("uv publish") { return !upperEnv.contains("UV_PUBLISH_TOKEN") && !call.arguments.contains { $0.hasPrefix("--token") || $0 == "-t" } }
            return false
        }
    }

    /// Whether an action reference is first-party (`actions/*`, `github/*`), local or a Docker image pinned by digest.
    static func isFirstPartyOrLocal(_ uses: String) -> Bool {
        let lower = uses.lowercased()
        return isSameRepository(uses) || lower.hasPrefix("actions/") || lower.hasPrefix("github/")
    }

    /// Whether `uses:` names an action or workflow of the same repository at the caller's own commit
    /// (`./path`, or GitHub's `$/path`): nothing to pin.
    static func isSameRepository(_ uses: String) -> Bool {
        uses.hasPrefix("./") || uses.hasPrefix("$/")
    }

    /// Whether a reference is pinned to a full 40-hex commit SHA (or a Docker digest).
    static func isPinned(_ uses: String) -> Bool {
        if uses.hasPrefix("docker://") { return uses.contains("@sha256:") }
        guard let at = uses.lastIndex(of: "@") else { return false }
        let ref = uses[uses.index(after: at)...]
        return ref.count == 40 && ref.allSatisfy(\.isHexDigit)
    }
}
