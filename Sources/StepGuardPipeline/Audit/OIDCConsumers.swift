import FoundationEssentials
import StepGuardCore
import Glibc
import StepGuardYAML

/// Whether a job's steps use the OIDC token that `id-token: write` grants: actions known to request it,
/// action inputs that configure OIDC (`audience`, `role-to-assume`, `use_oidc`…), scripts that request it
/// or sign and publish keylessly — and, when the checker has the checkout, the local actions
/// (`uses: ./…`), repository scripts, Makefiles, `package.json` scripts and GoReleaser configs the steps run.
///
/// The answer only decides `id-token-unused`, a rule about a grant nobody uses: what cannot be told
/// (a JavaScript or Docker local action, a local action without a checkout) counts as a consumer.
struct OIDCConsumers {
    let repository: RepositoryFiles

    /// Local composite actions are followed this deep.
    static let maximumDepth = 3

    /// Whether the step (a mapping with `uses:` or `run:`) consumes the job's OIDC token.
    func step(_ step: Node, depth: Int = 0) -> Bool {
        let env = step.value("env")
        if let env, env.pairs.contains(where: Self.isOIDCSetting) { return true }
        if let uses = step.value("uses")?.text {
            return self.uses(uses, with: step.value("with"), depth: depth)
        }
        guard let run = step.value("run")?.text else { return false }
        return script(run, directory: step.value("working-directory")?.text ?? "")
    }

    /// Whether an action reference (with its `with:` inputs) consumes the token.
    func uses(_ uses: String, with: Node?, depth: Int) -> Bool {
        if Catalog.isOIDCAction(uses) { return true }
        if let with, with.pairs.contains(where: Self.isOIDCSetting) { return true }
        let lower = uses.lowercased()
        if lower.hasPrefix("changesets/action"), with?.value("publish") != nil { return true }
        if lower.hasPrefix("goreleaser/goreleaser-action") { return goReleaserSigns(directory: with?.value("workdir")?.text ?? "") }
        // Any other action may request the token (it only needs ACTIONS_ID_TOKEN_REQUEST_*): only the
        // ones known not to count as non-consumers.
        if Self.knownNonConsumers.contains(where: lower.hasPrefix) { return false }
        guard Catalog.isSameRepository(lower) else { return true }
        // A local action: read it when the checkout is here; a composite action is judged by its steps.
        guard depth < Self.maximumDepth, let action = repository.localAction(uses),
              action.value("runs")?.value("using")?.text == "composite" else { return true }
        return (action.value("runs")?.value("steps")?.items ?? []).contains { step($0, depth: depth + 1) }
    }

    /// Actions known not to request the OIDC token (set-up, caches, artifacts, first-party helpers, builds).
    /// Those that do (``Catalog/oidcActions``, or OIDC inputs) are checked first.
    static let knownNonConsumers = GitHubAudit.tokenFreeActions + [
        "actions/", "github/codeql-action/", "docker/", "softprops/action-gh-release@", "peter-evans/", "codecov/codecov-action@",
        "golangci/golangci-lint-action@", "goto-bus-stop/setup-zig@", "mlugg/setup-zig@", "msys2/setup-msys2@", "ilammy/msvc-dev-cmd@",
        "jdx/mise-action@", "extractions/setup-just@", "arduino/setup-protoc@", "bufbuild/buf-setup-action@", "mxschmitt/action-tmate@",
    ]

    /// Whether a script consumes the token itself, or runs a repository script, Makefile, `package.json`
    /// script or GoReleaser config that does (`directory`: the step's `working-directory`).
    func script(_ text: String, directory: String) -> Bool {
        if Catalog.isOIDCShell(text) { return true }
        guard repository.root != nil else { return false }
        for line in text.split(separator: "\n") {
            let words = ShellScan.tokenize(String(line), line: 1, column: 1)
            for (index, word) in words.enumerated() where !word.isOperator {
                let name = ShellScan.basename(word.text)
                let rest = words[(index + 1)...].prefix { !$0.isOperator }.map(\.text)
                let positional = rest.filter { !$0.hasPrefix("-") }
                switch name {
                case "make", "gmake":
                    let makeDirectory = rest.firstIndex(of: "-C").flatMap { rest.indices.contains($0 + 1) ? rest[$0 + 1] : nil } ?? ""
                    let base = FilePaths.appending(makeDirectory, to: directory)
                    if ["GNUmakefile", "makefile", "Makefile"].contains(where: { repository.text($0, in: base).map(Self.isOIDCText) ?? false }) { return true }
                case "npm", "pnpm", "yarn", "bun":
                    let scriptName = ["run", "run-script"].contains(positional.first ?? "") ? positional.dropFirst().first : positional.first
                    if let scriptName, packageScript(scriptName, directory: directory).map(Self.isOIDCText) ?? false { return true }
                case "goreleaser":
                    if goReleaserSigns(directory: directory) { return true }
                default:
                    if Self.isScriptPath(word.text), let body = repository.text(Self.relative(word.text), in: directory), Self.isOIDCText(body) { return true }
                }
            }
        }
        return false
    }

    /// The command of `scripts.NAME` in the `package.json` of `directory`.
    func packageScript(_ name: String, directory: String) -> String? {
        guard let text = repository.text("package.json", in: directory),
              let scripts = (try? StrictJSON.parse(text))?.objectValue?["scripts"]?.objectValue else { return nil }
        return scripts[name]?.stringValue
    }

    /// Whether a GoReleaser config in `directory` signs with cosign (keyless by default in CI).
    func goReleaserSigns(directory: String) -> Bool {
        [".goreleaser.yml", ".goreleaser.yaml", "goreleaser.yml", "goreleaser.yaml"].contains { name in
            repository.text(name, in: directory).map { $0.contains("cosign") || $0.contains("sigstore") } ?? false
        }
    }

    /// A word that names a script file of the repository (`./release.sh`, `scripts/sign.py`).
    static func isScriptPath(_ word: String) -> Bool {
        guard !word.contains("://"), !word.contains("$"), !word.hasPrefix("-") else { return false }
        let extensions = [".sh", ".bash", ".py", ".js", ".mjs", ".cjs", ".ts", ".rb", ".pl"]
        return word.hasPrefix("./") || extensions.contains { word.hasSuffix($0) }
    }

    static func relative(_ word: String) -> String {
        var path = word
        while path.hasPrefix("./") { path.removeFirst(2) }
        return path
    }

    /// Text of a repository file (script, Makefile, package.json command) that requests or uses the token.
    static func isOIDCText(_ text: String) -> Bool {
        let lower = text.lowercased()
        return Catalog.isOIDCShell(text) || lower.contains("id_token") || lower.contains("idtoken")
            || lower.contains("detect_credential") || lower.contains("oidc")
    }

    /// An env or input entry that configures OIDC (`audience`, `role-to-assume`, `use_oidc: true`,
    /// `workload_identity_provider`, `NPM_CONFIG_PROVENANCE: true`…).
    static func isOIDCSetting(_ pair: (key: Node, value: Node)) -> Bool {
        guard let key = pair.key.text?.lowercased().replacingAll("_", with: "-") else { return false }
        let value = (pair.value.text ?? "").lowercased()
        if value == "false" || value.isEmpty { return false }
        if value.contains("actions-id-token") || value.contains("actions_id_token") { return true }
        return key.contains("oidc") || key.contains("id-token") || key.contains("identity-token") || key == "npm-config-provenance"
            || key.contains("attest")
            || ["audience", "role-to-assume", "workload-identity-provider", "exchange-url", "trusted-publishing"].contains(key)
    }
}
