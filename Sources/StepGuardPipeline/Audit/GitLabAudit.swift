import StepGuardCore
import StepGuardYAML

/// The audits of one `.gitlab-ci.yml` (or a GitLab CI component/template).
struct GitLabAudit {
    let source: SourceText
    let root: Node
    private(set) var findings: [Finding] = []

    /// Top-level keys that are not jobs.
    static let reserved: Set<String> = [
        "stages", "variables", "default", "include", "workflow", "image", "services", "before_script",
        "after_script", "cache", "spec", "pages:deploy", "types",
    ]

    init(source: SourceText, root: Node) {
        self.source = source
        self.root = root
    }

    mutating func run() -> [Finding] {
        if let variables = root.value("variables") { checkVariables(variables) }
        let defaults = root.value("default")
        for (key, job) in root.pairs where job.isMapping {
            guard let name = key.text, !Self.reserved.contains(name) else { continue }
            guard job.value("script") != nil || job.value("trigger") != nil || job.value("extends") != nil || job.value("id_tokens") != nil else { continue }
            auditJob(name, job, defaults: defaults)
        }
        if let defaults { auditScripts("default", defaults) }
        let source = self.source
        return findings.filter { !source.isIgnored($0) }.sorted { ($0.location.line, $0.location.column) < ($1.location.line, $1.location.column) }
    }

    /// Script scalars of `before_script`, `script`, `after_script` (nested lists flattened).
    static func scripts(_ job: Node) -> [Node] {
        ["before_script", "script", "after_script"].flatMap { key -> [Node] in
            guard let node = job.value(key) else { return [] }
            return node.scalars
        }
    }

    private mutating func auditScripts(_ name: String, _ job: Node) {
        for script in Self.scripts(job) {
            for call in ShellScan.serviceCalls(in: source.contentLines(of: script)) where !call.guarded {
                findings.append(Finding(.unguardedServiceCall, at: source.location(line: call.line, column: call.column),
                                        "`\(call.command)` calls \(call.service) in job '\(name)' without stepguard run",
                                        remedy: "run it as `stepguard run [--policy FILE] -- \(call.command) …` or include the stepguard component"))
            }
            for fetch in ShellScan.secretFetches(in: source.contentLines(of: script)) where !fetch.guarded {
                findings.append(.secretFetch(fetch, job: name, at: source.location(line: fetch.line, column: fetch.column), federation: "the consumer's OIDC federation (id_tokens:)"))
            }
            checkVariableUse(script)
            checkInjection(script, job: name)
        }
    }

    /// Attacker-chosen predefined variables (`$CI_MERGE_REQUEST_TITLE`, `$CI_COMMIT_BRANCH`…) re-read as
    /// code: under `eval`, `sh -c`/`bash -c` or `source <(…)`. (Plain `"$VAR"` in a script is data: the
    /// shell does not re-parse it.)
    private mutating func checkInjection(_ script: Node, job: String) {
        for line in source.contentLines(of: script) {
            let words = ShellScan.tokenize(line.text, line: line.line, column: line.column).map(\.text)
            let reparses = words.contains("eval") || zip(words, words.dropFirst()).contains { ["sh", "bash", "zsh", "dash"].contains(ShellScan.basename($0)) && $1 == "-c" }
            guard reparses else { continue }
            let scalars = Array(line.text.unicodeScalars)
            for variable in Untrusted.gitlabVariables {
                let candidates = ["${" + variable + "}", "$" + variable].compactMap { needle -> (offset: Int, end: Int)? in
                    let pattern = Array(needle.unicodeScalars)
                    return SourceText.find(pattern, in: scalars, from: 0).map { ($0, $0 + pattern.count) }
                }
                guard let match = candidates.first(where: { $0.end >= scalars.count || !Expression.isIdentifier(scalars[$0.end]) }) else { continue }
                let column = line.column + match.offset
                findings.append(Finding(.templateInjection, at: source.location(line: line.line, column: column),
                                        "$\(variable), which the author of a merge request, branch or commit chooses, is re-parsed as shell code (eval / sh -c) in job '\(job)'",
                                        remedy: "use it only as data (\"$\(variable)\" as an argument), never in eval or sh -c"))
            }
        }
    }

    /// `id_tokens:` audiences: missing, the GitLab instance itself (accepted by any service set up with
    /// defaults), or several in one token (a token leaked to one service is replayed to the others).
    private mutating func checkAudiences(_ tokens: Node, job: String) {
        for (key, value) in tokens.pairs {
            guard let name = key.text else { continue }
            guard let aud = value.value("aud") else {
                findings.append(Finding(.idTokenAudience, at: source.location(of: key), "the OIDC token \(name) of job '\(job)' has no aud:",
                                        remedy: "set `aud:` to the one service that accepts this token (e.g. `aud: sts.amazonaws.com`)"))
                continue
            }
            if aud.isSequence, aud.items.count > 1 {
                findings.append(Finding(.idTokenAudience, at: source.location(of: aud),
                                        "the OIDC token \(name) of job '\(job)' is valid for \(aud.items.count) audiences: any of those services can replay it to the others",
                                        remedy: "request one token per service, each with a single aud:"))
            } else if let text = aud.text?.trimmingWhitespace(),
                      ["$CI_SERVER_URL", "${CI_SERVER_URL}", "https://gitlab.com", "https://gitlab.com/"].contains(text) {
                findings.append(Finding(.idTokenAudience, at: source.location(of: aud),
                                        "the OIDC token \(name) of job '\(job)' has the GitLab instance as audience (\(text)), which every relying party set up with defaults accepts",
                                        remedy: "set `aud:` to the one service that accepts this token, and require that audience there"))
            }
        }
    }

    private mutating func auditJob(_ name: String, _ job: Node, defaults: Node?) {
        auditScripts(name, job)
        if let variables = job.value("variables") { checkVariables(variables) }
        let scripts = Self.scripts(job) + (defaults.map(Self.scripts) ?? [])
        let text = scripts.compactMap(\.text).joined(separator: "\n")
        if let tokens = job.value("id_tokens") { checkAudiences(tokens, job: name) }
        for (tokenKey, _) in job.value("id_tokens")?.pairs ?? [] {
            guard let token = tokenKey.text else { continue }
            let used = text.contains("$" + token) || text.contains("${" + token + "}") || Catalog.isOIDCShell(text)
                || job.value("secrets") != nil
                || (job.value("variables")?.scalars.contains { ($0.text ?? "").contains(token) } ?? false)
            if !used {
                findings.append(Finding(.idTokenUnused, at: source.location(of: tokenKey),
                                        "job '\(name)' requests the OIDC token \(token) but no script uses it",
                                        remedy: "remove \(token) from id_tokens:, or use it (e.g. run the script under stepguard run)"))
            }
        }
    }

    /// Long-lived credentials set in `variables:` from other variables.
    private mutating func checkVariables(_ variables: Node) {
        for (key, value) in variables.pairs {
            guard let name = key.text, let kind = Catalog.credential(named: [name]) else { continue }
            let text = value.text ?? value.value("value")?.text ?? ""
            guard text.contains("$") else { continue }
            findings.append(Finding(.longLivedCredential, at: source.location(of: value),
                                    "\(kind.name) set in \(name) from a CI/CD variable; the provider supports OIDC",
                                    remedy: "use \(kind.gitlab) and delete the stored variable"))
        }
    }

    /// Long-lived credentials read by a script (`$NPM_TOKEN`, `${AWS_SECRET_ACCESS_KEY}`).
    private mutating func checkVariableUse(_ script: Node) {
        for line in source.contentLines(of: script) {
            let scalars = Array(line.text.unicodeScalars)
            var index = 0
            while index < scalars.count {
                guard scalars[index] == "$" else { index += 1; continue }
                var cursor = index + 1
                if cursor < scalars.count, scalars[cursor] == "{" { cursor += 1 }
                let start = cursor
                while cursor < scalars.count, Expression.isIdentifier(scalars[cursor]) { cursor += 1 }
                let name = String(String.UnicodeScalarView(scalars[start..<cursor]))
                if !name.isEmpty, let kind = Catalog.credential(named: [name]) {
                    findings.append(Finding(.longLivedCredential, at: source.location(line: line.line, column: line.column + index),
                                            "\(kind.name) read from $\(name); the provider supports OIDC",
                                            remedy: "use \(kind.gitlab) and delete the stored variable"))
                }
                index = max(cursor, index + 1)
            }
        }
    }
}
