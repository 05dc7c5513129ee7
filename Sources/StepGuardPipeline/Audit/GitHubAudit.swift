import FoundationEssentials
import StepGuardCore
import Glibc
import StepGuardYAML

/// The audits of one GitHub Actions workflow.
struct GitHubAudit {
    let source: SourceText
    let root: Node
    /// The checkout the workflow was read from (local actions and scripts), when there is one.
    let repository: RepositoryFiles
    /// The events that trigger the workflow.
    let events: Set<String>
    var findings: [Finding] = []

    init(source: SourceText, root: Node) {
        self.source = source
        self.root = root
        self.repository = RepositoryFiles(workflowPath: source.path)
        self.events = Self.events(root.value("on") ?? root.value("true"))
    }

    mutating func report(_ rule: RuleID, _ location: Node, needle: String? = nil, _ message: String, remedy: String, severity: Severity? = nil) {
        let place = needle.map { source.location(of: $0, in: location) } ?? source.location(of: location)
        findings.append(Finding(rule, at: place, message, remedy: remedy, severity: severity))
    }

    /// What a job holds that an attacker would want: secrets, a write-scoped or default token, the OIDC token.
    struct Privilege {
        var secrets = false
        var writeToken = false
        /// No `permissions:` anywhere: the repository's default token, write unless the repository restricts it.
        var defaultToken = false
        var idToken = false

        /// Secrets, a write token or the OIDC token (the default token is not assumed to be write).
        var privileged: Bool { secrets || writeToken || idToken }
        /// Any credential, the default token included.
        var anyCredential: Bool { privileged || defaultToken }

        var description: String {
            [secrets ? "secrets" : nil, writeToken ? "a write-scoped GITHUB_TOKEN" : nil,
             defaultToken && !writeToken ? "the repository's default GITHUB_TOKEN (write unless the repository's settings restrict it)" : nil,
             idToken ? "id-token: write" : nil].compactMap { $0 }.joined(separator: " and ")
        }
    }

    /// Event names from `on:` (a string, a list, or a mapping).
    static func events(_ on: Node?) -> Set<String> {
        guard let on else { return [] }
        if let text = on.text { return [text] }
        if on.isSequence { return Set(on.items.compactMap(\.text)) }
        return Set(on.pairs.compactMap { $0.key.text })
    }

    /// Whether a permissions node grants `id-token: write`; returns the node to point at.
    static func idTokenGrant(_ permissions: Node?) -> (granted: Bool, node: Node?) {
        guard let permissions else { return (false, nil) }
        if permissions.text == "write-all" { return (true, permissions) }
        if let value = permissions.value("id-token"), value.text == "write" { return (true, permissions.key("id-token")) }
        return (false, nil)
    }

    /// Whether a permissions node gives the GITHUB_TOKEN a write scope (`write-all`, or any scope but
    /// `id-token` set to `write`). Absent permissions (the repository default) are not counted here.
    static func grantsWriteToken(_ permissions: Node?) -> Bool {
        guard let permissions else { return false }
        if permissions.text == "write-all" { return true }
        return permissions.pairs.contains { $0.key.text != "id-token" && $0.value.text == "write" }
    }

    mutating func run() -> [Finding] {
        let privilegedTrigger = events.contains("pull_request_target") || events.contains("workflow_run")

        // Top-level permissions.
        let topPermissions = root.value("permissions")
        let jobs = (root.value("jobs")?.pairs ?? []).map(\.value)
        // Every job declares its own permissions: the top-level default never applies.
        let everyJobDeclares = !jobs.isEmpty && jobs.allSatisfy { $0.isMapping && $0.value("permissions") != nil }
        // Called only as a reusable workflow: it runs with the caller's token, whose permissions the caller sets.
        let reusableOnly = events == ["workflow_call"]
        if topPermissions == nil, !everyJobDeclares, !reusableOnly, let first = root.pairs.first?.key {
            report(.permissionsMissing, first, "no top-level permissions: every job gets the repository's default GITHUB_TOKEN permissions",
                   remedy: "add `permissions: {contents: read}` at the top level and grant more per job only where needed")
        }
        let top = Self.idTokenGrant(topPermissions)
        if top.granted, let node = top.node {
            report(.idTokenWorkflowLevel, node, "id-token: write is granted to every job of the workflow",
                   remedy: "remove it from the top-level permissions and grant `id-token: write` only to the job that signs, publishes or deploys")
        }

        // toJSON(secrets) anywhere.
        for scalar in root.scalars where Expression.containsToJSONSecrets(scalar.text ?? "") {
            let text = scalar.text ?? ""
            let spelling = text.scalarRange(of: "tojson", caseInsensitive: true).map { String(text[$0]) } ?? "toJSON"
            report(.secretsToJSON, scalar, needle: spelling, "toJSON(secrets) exposes every secret of the repository to this step",
                   remedy: "pass only the secrets the step needs, one by one (`secrets.NAME`)")
        }

        let workflowEnv = root.value("env")
        let workflowHoldsSecrets = !(workflowEnv?.scalars.flatMap { Expression.secretNames(in: $0.text ?? "") }.isEmpty ?? true)
        if let workflowEnv { checkCredentials(env: workflowEnv, action: nil) }
        let workflowShell = root.value("defaults")?.value("run")?.value("shell")?.text

        checkBroadPermissions(topPermissions: topPermissions)
        for (jobKey, job) in root.value("jobs")?.pairs ?? [] where job.isMapping {
            auditJob(jobKey, job, topPermissions: topPermissions, topIdToken: top.granted, privilegedTrigger: privilegedTrigger,
                     workflowHoldsSecrets: workflowHoldsSecrets, workflowShell: workflowShell)
        }
        let source = self.source
        return findings.filter { !source.isIgnored($0) }.sorted { ($0.location.line, $0.location.column) < ($1.location.line, $1.location.column) }
    }

    private mutating func auditJob(_ jobKey: Node, _ job: Node, topPermissions: Node?, topIdToken: Bool, privilegedTrigger: Bool,
                                   workflowHoldsSecrets: Bool, workflowShell: String?) {
        let jobName = jobKey.text ?? "?"
        let permissions = job.value("permissions")
        let jobGrant = Self.idTokenGrant(permissions)
        let idToken = permissions == nil ? topIdToken : jobGrant.granted
        let inherits = job.value("secrets")?.text == "inherit"
        let steps = job.value("steps")?.items ?? []
        let fetchesSecrets = steps.contains { step in
            step.value("run").map { !ShellScan.secretFetches(in: source.contentLines(of: $0)).isEmpty } ?? false
        }
        let holdsSecrets = workflowHoldsSecrets || inherits || fetchesSecrets
            || job.scalars.contains { !Expression.secretNames(in: $0.text ?? "").isEmpty }
        // A write-scoped GITHUB_TOKEN is a credential too: every action in the job can read `github.token`.
        let writeToken = Self.grantsWriteToken(permissions ?? topPermissions)
        let privileged = holdsSecrets || idToken || writeToken
        let what = [holdsSecrets ? "secrets" : nil, writeToken ? "a write-scoped GITHUB_TOKEN" : nil, idToken ? "id-token: write" : nil]
            .compactMap { $0 }.joined(separator: " and ")
        let privilege = Privilege(secrets: holdsSecrets, writeToken: writeToken, defaultToken: permissions == nil && topPermissions == nil, idToken: idToken)

        if inherits, let value = job.value("secrets") {
            report(.secretsInherit, value, "job '\(jobName)' passes every secret of the repository to the called workflow",
                   remedy: "list only the secrets the called workflow needs under `secrets:`")
        }
        if let env = job.value("env") { checkCredentials(env: env, action: nil) }

        // Reusable workflow call: the callee's use of the token is unknown here.
        var consumer = false
        if let uses = job.value("uses"), let reference = uses.text {
            consumer = true
            if privileged, !Catalog.isSameRepository(reference), !Catalog.isPinned(reference) {
                let (message, remedy) = Self.unpinnedDescription(reference, jobName: jobName, what: what)
                report(.unpinnedAction, uses, message, remedy: remedy)
            }
        }

        let shell = job.value("defaults")?.value("run")?.value("shell")?.text ?? workflowShell
        var checkouts: [(uses: Node, step: Node)] = []
        var uploadedPaths: [[String]] = []
        var headCheckout: Node?

        for step in steps where step.isMapping {
            if let usesNode = step.value("uses"), let uses = usesNode.text {
                let lower = uses.lowercased()
                if !consumer, jobGrant.granted, OIDCConsumers(repository: repository).step(step) { consumer = true }
                if privileged, !Catalog.isFirstPartyOrLocal(uses), !Catalog.isPinned(uses) {
                    let (message, remedy) = Self.unpinnedDescription(uses, jobName: jobName, what: what)
                    report(.unpinnedAction, usesNode, message, remedy: remedy)
                }
                if lower.hasPrefix("actions/checkout@") {
                    checkouts.append((usesNode, step))
                    for key in ["ref", "repository"] {
                        if let ref = step.value("with")?.value(key), Self.isPullRequestHead(ref.text ?? "") { headCheckout = ref }
                    }
                }
                if lower.hasPrefix("actions/upload-artifact@") || lower.hasPrefix("actions/upload-pages-artifact@") {
                    let defaultPath = lower.hasPrefix("actions/upload-pages-artifact@") ? "_site/" : ""
                    let path = step.value("with")?.value("path")?.text ?? defaultPath
                    uploadedPaths.append(path.split(separator: "\n").map { $0.trimmingWhitespace() }.filter { !$0.isEmpty })
                }
                if let with = step.value("with") { checkCredentials(env: with, action: lower) }
                if Catalog.isStepGuardRunAction(uses) { continue }
            }
            if let env = step.value("env") { checkCredentials(env: env, action: nil) }
            guard let run = step.value("run") else { continue }
            let script = run.text ?? ""
            if !consumer, jobGrant.granted, OIDCConsumers(repository: repository).step(step) { consumer = true }
            if Self.isPullRequestHeadShell(script) { headCheckout = headCheckout ?? run }
            let stepShell = step.value("shell")?.text ?? shell
            let shellGuarded = stepShell.map(ShellScan.mentionsStepGuardRun) ?? false
            if shellGuarded { consumer = true }
            for fetch in ShellScan.secretFetches(in: source.contentLines(of: run)) where !fetch.guarded && !shellGuarded {
                findings.append(.secretFetch(fetch, job: jobName, at: source.location(line: fetch.line, column: fetch.column), federation: "the consumer's OIDC federation"))
            }
            for call in ShellScan.serviceCalls(in: source.contentLines(of: run)) where !call.guarded && !shellGuarded {
                findings.append(Finding(.unguardedServiceCall, at: source.location(line: call.line, column: call.column),
                                        "`\(call.command)` calls \(call.service) in job '\(jobName)' without stepguard run",
                                        remedy: "run it as `stepguard run [--policy FILE] -- \(call.command) …` or use the stepguard run action (`stepguard workflow wrap` does it)"))
            }
        }

        // Repository code that requests the token itself (a test suite or library using ambient credentials)
        // makes every step that runs repository code a possible consumer.
        if jobGrant.granted, !consumer, steps.contains(where: { ($0.value("run")?.text).map { run in Self.workspaceCodeMarkers.contains(where: run.contains) } ?? false }),
           repository.codeRequestsToken() {
            consumer = true
        }
        if jobGrant.granted, !consumer, let node = jobGrant.node {
            report(.idTokenUnused, node, "job '\(jobName)' has id-token: write but no step uses an OIDC consumer",
                   remedy: "remove `id-token: write` from this job, or give the token to the step that needs it")
        }
        for checkout in checkouts where checkout.step.value("with")?.value("persist-credentials")?.text?.lowercased() != "false" {
            // actions/checkout v6+ stores the credential outside .git/config: an upload does not carry it.
            if let major = checkoutMajorVersion(checkout.uses), major >= 6 { continue }
            let directory = checkout.step.value("with")?.value("path")?.text ?? ""
            guard uploadedPaths.contains(where: { Self.uploadMayInclude(gitDirectoryOf: directory, paths: $0) }) else { continue }
            report(.persistCredentials, checkout.uses, "actions/checkout keeps the GITHUB_TOKEN in .git/config in job '\(jobName)', which uploads artifacts that may include that .git",
                   remedy: "add `with: {persist-credentials: false}` to this checkout (or use actions/checkout v6 or later)")
        }
        if privilegedTrigger, privilege.anyCredential, let head = headCheckout {
            report(.untrustedCheckout, head, "job '\(jobName)' runs on a privileged trigger (pull_request_target/workflow_run), checks out the pull request's head and holds \(privilege.description)",
                   remedy: "check out the head only in an unprivileged `pull_request` workflow, or drop secrets and id-token from this job and set `permissions: {}` (or read-only scopes)")
        }
        auditUntrustedInput(jobName: jobName, job: job, steps: steps, privilege: privilege, untrustedHead: privilegedTrigger && headCheckout != nil)
    }

    /// Flags long-lived credentials passed from `secrets.*` in an env or `with:` mapping.
    private mutating func checkCredentials(env: Node, action: String?) {
        for (key, value) in env.pairs {
            guard let name = key.text, let text = value.text else { continue }
            let secrets = Expression.secretNames(in: text)
            guard !secrets.isEmpty else { continue }
            var names = [name] + secrets
            // Action inputs whose names are generic: judge them by the action.
            if let action {
                if action.hasPrefix("pypa/gh-action-pypi-publish"), name == "password" { names.append("PYPI_API_TOKEN") }
                if action.hasPrefix("docker/login-action"), name == "password" {
                    let registry = env.value("registry")?.text ?? "docker.io"
                    if registry.contains("docker.io") || registry.isEmpty { names.append("DOCKERHUB_PASSWORD") }
                    // Another registry (Harbor, Quay, a cloud one) decides its own credentials: a
                    // `DOCKER_PASSWORD`/`REGISTRY_PASSWORD` name says nothing about Docker Hub there.
                    else if Catalog.credential(named: names)?.name == "Docker Hub password" { continue }
                }
                if action.hasPrefix("google-github-actions/auth"), name == "credentials_json" { names.append("GCP_SA_KEY") }
                if action.hasPrefix("azure/login"), name == "creds" { names.append("AZURE_CREDENTIALS") }
            }
            guard let kind = Catalog.credential(named: names) else { continue }
            // AWS_* keys of an S3-compatible store that is not AWS (Cloudflare R2, MinIO…): no AWS federation applies.
            if kind.name == "AWS access key", let endpoint = env.pairs.first(where: { ($0.key.text ?? "").uppercased().hasPrefix("AWS_ENDPOINT_URL") })?.value.text,
               !endpoint.contains("amazonaws.com") { continue }
            // A reusable workflow's optional secret: the caller decides whether to pass a password or use OIDC.
            if secrets.allSatisfy(isOptionalCallerSecret) { continue }
            report(.longLivedCredential, value, needle: "secrets", "\(kind.name) passed from secrets.\(secrets[0]) to '\(name)'; the provider supports OIDC",
                   remedy: "use \(kind.github) and delete the stored secret")
        }
    }

    /// Whether `name` is a secret the workflow declares under `on.workflow_call.secrets` without `required: true`.
    func isOptionalCallerSecret(_ name: String) -> Bool {
        guard let declared = (root.value("on") ?? root.value("true"))?.value("workflow_call")?.value("secrets")?.pairs.first(where: { $0.key.text == name }) else {
            return false
        }
        return declared.value.value("required")?.text != "true"
    }

    /// What an unpinned `uses:` reference runs and how to pin it: a Docker image is pinned by an
    /// `@sha256:` digest, an action or a reusable workflow of another (or this) repository by a commit SHA.
    static func unpinnedDescription(_ reference: String, jobName: String, what: String) -> (message: String, remedy: String) {
        if reference.lowercased().hasPrefix("docker://") {
            return ("Docker image '\(reference)' is not pinned to a digest in job '\(jobName)', which holds \(what): the tag can be moved to another image",
                    "pin the image by digest: `docker://IMAGE@sha256:DIGEST` (keep the tag in a comment)")
        }
        let at = reference.lastIndex(of: "@")
        let path = at.map { String(reference[..<$0]) } ?? reference
        let ref = at.map { String(reference[reference.index(after: $0)...]) } ?? ""
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        if parts.count > 4, parts[2] == ".github", parts[3] == "workflows" {
            let repository = parts[0...1].joined(separator: "/")
            let file = parts[2...].joined(separator: "/")
            return ("reusable workflow '\(file)' of \(repository) is called at '\(ref)' (a branch or tag, which can move), not at a commit, in job '\(jobName)', which holds \(what)",
                    "pin it to a full 40-character commit SHA (keep the tag in a comment); if \(repository) is this repository, call `./\(file)` to run it from the caller's own commit")
        }
        let state = ref.isEmpty ? "has no ref (`@…`)" : "is not pinned to a full commit SHA (ref '\(ref)' can move)"
        return ("third-party action '\(reference)' \(state) in job '\(jobName)', which holds \(what)",
                "pin it to a full 40-character commit SHA (keep the tag in a comment)")
    }

    /// The major version of an `actions/checkout@…` reference: from a `vN…` tag, or for a commit SHA from
    /// a `# vN…` comment after it on the same line; nil when unknown (treated as an old version).
    func checkoutMajorVersion(_ uses: Node) -> Int? {
        guard let reference = uses.text, let at = reference.lastIndex(of: "@") else { return nil }
        let ref = String(reference[reference.index(after: at)...])
        if let major = Self.majorVersion(ref) { return major }
        guard Catalog.isPinned(reference), let mark = uses.mark else { return nil }
        let line = source.line(mark.line)
        guard let end = line.scalarRange(of: reference)?.upperBound else { return nil }
        let after = line[end...]
        guard let hash = after.firstIndex(of: "#") else { return nil }
        let comment = after[after.index(after: hash)...].trimmingWhitespace()
        let word: String = comment.split(separator: " ").first.map(String.init) ?? ""
        return Self.majorVersion(word)
    }

    /// `6` for `v6`, `v6.0.1`; nil for anything else.
    static func majorVersion(_ tag: String) -> Int? {
        guard tag.hasPrefix("v") || tag.hasPrefix("V") else { return nil }
        let digits = tag.dropFirst().prefix { $0.isNumber }
        let rest = tag.dropFirst(1 + digits.count)
        guard !digits.isEmpty, rest.isEmpty || rest.hasPrefix(".") else { return nil }
        return Int(digits)
    }

    /// Whether an upload of `paths` (an upload step's `path:` lines) may contain the `.git` directory of a
    /// checkout into `directory` (the checkout's `path:`, empty for the workspace). Unknown shapes
    /// (absolute or parent paths, globs and expressions that can expand to `.git`, its `config` or an ancestor)
    /// count as including it, unless `.git` is excluded.
    static func uploadMayInclude(gitDirectoryOf directory: String, paths: [String]) -> Bool {
        func normalized(_ path: String) -> String {
            var path = path
            while path.hasPrefix("./") { path.removeFirst(2) }
            while path.hasSuffix("/") { path.removeLast() }
            return path == "." ? "" : path
        }
        let checkout = normalized(directory)
        let git = checkout.isEmpty ? ".git" : checkout + "/.git"
        let included = paths.filter { !$0.hasPrefix("!") }.map(normalized)
        let excluded = paths.filter { $0.hasPrefix("!") }.map { normalized(String($0.dropFirst())) }
        if excluded.contains(where: { [git, git + "/**", "**/.git", "**/.git/**"].contains($0) }) { return false }
        if included.isEmpty { return true }
        let checkoutComponents = Set(checkout.split(separator: "/").map(String.init))
        return included.contains { path in
            if path.isEmpty || path.hasPrefix("/") || path.hasPrefix("~") || path.contains("..") { return true }
            let unknown = path.contains("$") || path.contains("*") || path.contains("?") || path.contains("[")
            guard unknown else {
                // The upload holds .git when it is .git, inside it, or one of its ancestors.
                return path == git || path.hasPrefix(git + "/") || git.hasPrefix(path + "/")
            }
            // A glob or expression can hold `.git/config` only if its last component can be `.git`,
            // `config` or a directory of the checkout path, and its literal leading directories lead there.
            let components = path.split(separator: "/").map(String.init)
            if let last = components.last, !last.contains("$"), !last.contains("*"), !last.contains("?"), !last.contains("["),
               ![".git", "config", "."].contains(last), !checkoutComponents.contains(last) {
                return false
            }
            let literal = components.prefix { !$0.contains("$") && !$0.contains("*") && !$0.contains("?") && !$0.contains("[") }.joined(separator: "/")
            if !literal.isEmpty, !(literal == git || literal.hasPrefix(git + "/") || git.hasPrefix(literal + "/")) { return false }
            return true
        }
    }

    /// Whether a checkout `ref:`/`repository:` names the pull request's head.
    static func isPullRequestHead(_ text: String) -> Bool {
        let squeezed = text.lowercased().filter { !$0.isWhitespace }
        return ["github.event.pull_request.head.", "github.head_ref", "github.event.workflow_run.head_",
                "refs/pull/", "github.event.pull_request.number", "github.event.number"].contains { squeezed.contains($0) }
    }

    /// Whether a script fetches or checks out the pull request's head.
    static func isPullRequestHeadShell(_ text: String) -> Bool {
        let lower = text.lowercased()
        return lower.contains("gh pr checkout") || (lower.contains("git ") && (lower.contains("refs/pull/") || lower.contains("pull/${{")))
            || (lower.contains("git checkout") && isPullRequestHead(lower))
    }
}
