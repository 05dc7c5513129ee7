import FoundationEssentials
import StepGuardCore
import Glibc
import StepGuardYAML

/// The audits of what outsiders control: template injection, writes of their data to the files that
/// set later steps' environment, spoofable bot checks, and cache and artifact poisoning.
extension GitHubAudit {
    /// Runs the untrusted-input audits on one job. `untrustedHead`: the job runs on a privileged trigger
    /// and checks out the pull request's head.
    mutating func auditUntrustedInput(jobName: String, job: Node, steps: [Node], privilege: Privilege, untrustedHead: Bool) {
        let privilegedEvents = !events.isDisjoint(with: Untrusted.privilegedEvents)
        // Env names set from attacker-controlled fields (workflow, job; a step's own are added per step).
        let outerTainted = Self.taintedEnv(root.value("env"), events: events).merging(Self.taintedEnv(job.value("env"), events: events)) { $1 }
        let artifactSteps = steps.filter(Self.downloadsTriggeringRunArtifacts)
        let untrustedFiles = untrustedHead || (!artifactSteps.isEmpty && events.contains("workflow_run"))

        if let condition = job.value("if") { checkBotCondition(condition, guarding: "job '\(jobName)'", privilege: privilege, privilegedEvents: privilegedEvents) }

        for step in steps where step.isMapping {
            if let condition = step.value("if") { checkBotCondition(condition, guarding: "a step of job '\(jobName)'", privilege: privilege, privilegedEvents: privilegedEvents) }
            let uses = step.value("uses")?.text?.lowercased() ?? ""
            // Scripts the runner expands `${{ }}` into: run:, and github-script's script:.
            var scripts: [(node: Node, language: String)] = []
            if let run = step.value("run") { scripts.append((run, "shell")) }
            if uses.hasPrefix("actions/github-script@"), let script = step.value("with")?.value("script") { scripts.append((script, "JavaScript")) }
            for (node, language) in scripts {
                for (raw, body) in Untrusted.expressions(in: node.text ?? "") {
                    let fields = Untrusted.fields(inExpression: body, events: events)
                    guard !fields.isEmpty else { continue }
                    let severity: Severity = privilege.privileged || (privilegedEvents && privilege.defaultToken) ? .critical : .high
                    let holding = privilege.privileged || (privilegedEvents && privilege.defaultToken) ? ", in a job holding \(privilege.description)" : ""
                    report(.templateInjection, node, needle: raw,
                           "`\(raw)` expands \(fields.joined(separator: ", ")), which an outsider writes, into the \(language) of a step of job '\(jobName)'\(holding): its text runs as code",
                           remedy: language == "shell"
                               ? "pass it through the step's env: (`env: {VALUE: \(raw)}`) and use \"$VALUE\" in the script"
                               : "pass it through the step's env: and read `process.env.VALUE` in the script",
                           severity: severity)
                }
            }
            if let run = step.value("run"), privilege.anyCredential {
                let tainted = outerTainted.merging(Self.taintedEnv(step.value("env"), events: events)) { $1 }
                checkEnvWrites(run, jobName: jobName, tainted: tainted, untrustedFiles: untrustedFiles, privilege: privilege)
            }
            if untrustedHead, Self.writesCache(step) {
                report(.cachePoisoning, step.value("uses") ?? step,
                       "job '\(jobName)' runs the pull request's code on a privileged trigger and saves a cache: it is saved in the default branch's scope, which release and publish jobs restore",
                       remedy: "do not save caches in jobs that run untrusted code (use actions/cache/restore only, or drop the cache input here)")
            }
        }
        if events.contains("workflow_run"), privilege.anyCredential, triggeringWorkflowsMayRunForks() {
            for index in steps.indices where Self.downloadsTriggeringRunArtifacts(steps[index]) {
                let download = steps[index]
                guard let how = Self.artifactReachesCode(steps, downloadIndex: index) else { continue }
                report(.artifactPoisoning, download.value("uses") ?? download.value("run") ?? download,
                       "job '\(jobName)' downloads the artifacts of the run that triggered it (which a pull request from a fork can produce) \(how), and holds \(privilege.description)",
                       remedy: "treat the artifact as untrusted data: download it outside the workspace (e.g. ${{ runner.temp }}), validate it, and never execute it")
                break
            }
        }
    }

    /// Env names whose value is an attacker-controlled field, with the field.
    static func taintedEnv(_ env: Node?, events: Set<String>) -> [String: String] {
        var tainted: [String: String] = [:]
        for (key, value) in env?.pairs ?? [] {
            guard let name = key.text, let text = value.text else { continue }
            let fields = Untrusted.expressions(in: text).flatMap { Untrusted.fields(inExpression: $0.body, events: events) }
            if let first = fields.first { tainted[name] = first }
        }
        return tainted
    }

    /// Reports lines of a script that write attacker-controlled data to `$GITHUB_ENV`, `$GITHUB_PATH` or
    /// `$GITHUB_OUTPUT`: an env variable set from an attacker-controlled field, the event payload's text
    /// fields, or (when the job checked out the untrusted head or downloaded the triggering run's
    /// artifacts) the content of files.
    mutating func checkEnvWrites(_ run: Node, jobName: String, tainted: [String: String], untrustedFiles: Bool, privilege: Privilege) {
        let lines = source.contentLines(of: run)
        var index = 0
        while index < lines.count {
            let start = lines[index]
            let line = start.text
            index += 1
            guard let target = ["GITHUB_ENV", "GITHUB_PATH", "GITHUB_OUTPUT"].first(where: { line.contains($0) }),
                  line.contains(">") || line.contains("tee") else { continue }
            // A here-document's body is the data written.
            var data = line
            if let heredoc = line.scalarRange(of: "<<") {
                let delimiter = line[heredoc.upperBound...].trimming(charactersIn: "-~ '\"").split(separator: " ").first.map(String.init) ?? ""
                while index < lines.count, !delimiter.isEmpty, lines[index].text.trimmingWhitespace() != delimiter {
                    data += "\n" + lines[index].text
                    index += 1
                }
            }
            var reason: String?
            for (name, field) in tainted where data.contains("$" + name) || data.contains("${" + name) {
                reason = "$\(name) (set from \(field))"
                break
            }
            let lower = data.lowercased()
            if reason == nil, lower.contains("github_event_path"),
               ["title", "body", "head_ref", ".ref", "message", "head_branch", "label"].contains(where: lower.contains) {
                reason = "text fields of the event payload ($GITHUB_EVENT_PATH)"
            }
            if reason == nil, untrustedFiles {
                let words = ShellScan.tokenize(data, line: 1, column: 1).map { ShellScan.basename($0.text) }
                if words.contains(where: { ["cat", "jq", "head", "tail", "sed", "awk", "grep", "cut", "yq", "<"].contains($0) }) || data.contains("$(<") || data.contains(" < ") {
                    reason = "the content of files from the untrusted pull request head or the triggering run's artifacts"
                }
            }
            guard let reason else { continue }
            let effect = target == "GITHUB_OUTPUT"
                ? "a later step or job that expands this output gets the attacker's text"
                : "a newline in it sets any variable (LD_PRELOAD, BASH_ENV, NODE_OPTIONS) or PATH entry for every later step"
            findings.append(Finding(.untrustedEnvWrite, at: source.location(line: start.line, column: start.column),
                                    "a step of job '\(jobName)', which holds \(privilege.description), writes \(reason) to $\(target): \(effect)",
                                    remedy: target == "GITHUB_OUTPUT"
                                        ? "validate the value (e.g. against a strict pattern) before writing it, and pass outputs to scripts through env:"
                                        : "do not write untrusted data to $\(target); if a later step needs it, pass it as a validated output through env:",
                                    severity: target == "GITHUB_OUTPUT" ? .medium : .high))
        }
    }

    /// Reports an `if:` that trusts `github.actor` (or `triggering_actor`) being a bot, on a trigger where
    /// an outsider can make a bot the actor of their own event (Dependabot re-running on a fork's branch),
    /// when the guarded job holds credentials.
    mutating func checkBotCondition(_ condition: Node, guarding what: String, privilege: Privilege, privilegedEvents: Bool) {
        guard privilegedEvents, privilege.anyCredential, let text = condition.text else { return }
        let squeezed = text.lowercased().filter { !$0.isWhitespace }
        let actor = ["github.actor", "github.triggering_actor", "github.event.sender.login"].first { squeezed.contains($0) }
        guard let actor, squeezed.contains("[bot]") else { return }
        // Requiring the pull request's author as well is not spoofable this way (unless `||` makes it optional).
        if squeezed.contains("github.event.pull_request.user.login"), !squeezed.contains("||") { return }
        report(.spoofableBotCheck, condition, needle: text.contains(actor) ? actor : nil,
               "`\(actor)` compared with a bot guards \(what), which holds \(privilege.description): on \(events.intersection(Untrusted.privilegedEvents).sorted().joined(separator: "/")) the actor is whoever caused the last event, which an outsider can make a bot",
               remedy: "check the pull request's author instead (`github.event.pull_request.user.login == 'dependabot[bot]'`), or run the privileged part on `pull_request` from a trusted branch")
    }

    /// Whether a step saves a cache (actions/cache, a setup action with caching on, rust-cache, setup-uv's cache).
    static func writesCache(_ step: Node) -> Bool {
        guard let uses = step.value("uses")?.text?.lowercased() else { return false }
        let with = step.value("with")
        func input(_ name: String) -> String? { with?.value(name)?.text?.lowercased() }
        if uses.hasPrefix("actions/cache@") || uses.hasPrefix("actions/cache/save@") { return true }
        if uses.hasPrefix("swatinem/rust-cache@") { return input("save-if") != "false" }
        if uses.hasPrefix("actions/setup-go@") { return input("cache") != "false" }
        if uses.hasPrefix("actions/setup-") { return !(input("cache") ?? "").isEmpty && input("cache") != "false" }
        if uses.hasPrefix("astral-sh/setup-uv@") { return input("enable-cache") == "true" }
        return false
    }

    /// Whether a step downloads the artifacts of the run that triggered a `workflow_run` workflow.
    static func downloadsTriggeringRunArtifacts(_ step: Node) -> Bool {
        let uses = step.value("uses")?.text?.lowercased() ?? ""
        let text = step.scalars.compactMap(\.text).joined(separator: "\n").lowercased().filter { !$0.isWhitespace }
        if uses.hasPrefix("actions/download-artifact@") { return text.contains("github.event.workflow_run.id") }
        if uses.hasPrefix("dawidd6/action-download-artifact@") { return true }
        if uses.hasPrefix("actions/github-script@") { return text.contains("listworkflowrunartifacts") && text.contains("workflow_run") }
        if step.value("run") != nil { return text.contains("ghrundownload") && text.contains("workflow_run") }
        return false
    }

    /// Words of a script that run code from the workspace (a repository script, a build, a package
    /// manager reading the workspace's manifests and lifecycle scripts).
    static let workspaceCodeMarkers = ["./", "make", "npm ", "yarn", "pnpm", "npx ", "uv run", "uv sync", "pip install .", "pip install -e",
                                       "python ", "python3 ", "bash ", "sh ", "source ", "go run", "go build", "go test", "cargo ",
                                       "gradle", "mvn", "node ", "bundle ", "rake"]

    /// How a downloaded artifact (the step at `downloadIndex`) reaches code the job runs, nil when it does not:
    /// extracted into the workspace root (where it can replace the scripts and manifests later steps run), or
    /// executed or unpacked by a later step from its own directory.
    static func artifactReachesCode(_ steps: [Node], downloadIndex: Int) -> String? {
        let download = steps[downloadIndex]
        let uses = download.value("uses")?.text?.lowercased() ?? ""
        // github-script and `gh run download` write where the script says: the workspace, as a rule.
        let path = uses.hasPrefix("actions/download-artifact@") || uses.hasPrefix("dawidd6/action-download-artifact@")
            ? (download.value("with")?.value("path")?.text ?? "").trimmingWhitespace() : ""
        let root = ["", ".", "./", "${{ github.workspace }}", "${{github.workspace}}"].contains(path)
        for later in steps[(downloadIndex + 1)...] {
            if root, later.value("uses")?.text.map(Catalog.isSameRepository) == true { return "into the workspace, where a later local action runs from" }
            guard let run = later.value("run")?.text else { continue }
            if root, workspaceCodeMarkers.contains(where: run.contains) { return "into the workspace, where later steps run its scripts and manifests" }
            if !root, run.contains(path), ["bash", "sh ", "source", "python", "node", "chmod", "unzip", "tar ", "./" + path].contains(where: run.contains) {
                return "and a later step executes or unpacks it (\(path))"
            }
        }
        return nil
    }

    /// Whether a workflow that triggers this one (`on.workflow_run.workflows`) may run for a pull request:
    /// true unless every named workflow is found next to this file and none runs on a pull request event.
    func triggeringWorkflowsMayRunForks() -> Bool {
        let names = Set((root.value("on")?.value("workflow_run")?.value("workflows")).map { $0.text.map { [$0] } ?? $0.items.compactMap(\.text) } ?? [])
        guard !names.isEmpty else { return true }
        let directory = FilePaths.deletingLastComponent(source.path)
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".yml") || $0.hasSuffix(".yaml") }
        var found: Set<String> = []
        for file in files {
            guard let text = try? String(contentsOfFile: FilePaths.appending(file, to: directory), encoding: .utf8),
                  let node = try? YAML.compose(yaml: text), let name = node.value("name")?.text, names.contains(name) else { continue }
            found.insert(name)
            let triggers = Self.events(node.value("on") ?? node.value("true"))
            if !triggers.isDisjoint(with: ["pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment", "issue_comment"]) { return true }
        }
        return found != names
    }
}
