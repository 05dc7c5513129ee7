import FoundationEssentials
import StepGuardCore
import Glibc
import StepGuardPolicy
import StepGuardYAML

/// How `workflow wrap` rewrites a workflow.
public struct WrapOptions: Sendable {
    /// Wrap only steps whose `id`, `name` or derived step name matches (nil: every `run:` step).
    public var only: Glob?
    /// The `uses:` of the setup step added once per job.
    public var setupUses: String
    /// The `version` input of the setup step (nil: none, the action builds from source).
    public var setupVersion: String?
    /// `--policy` passed to `stepguard run`.
    public var policy: String?
    /// `--mode` passed to `stepguard run`.
    public var mode: String?
    /// Whether the policy has an `identity:` section: then every job with a wrapped step needs
    /// `id-token: write`; otherwise only jobs whose wrapped steps call signing or secret services.
    public var policyDeclaresIdentity: Bool
    /// Step names the policy has overrides for (`steps:`): only these get `--step NAME`, because
    /// `stepguard run --step` refuses a name the policy does not define.
    public var policySteps: Set<String>

    /// Creates options; the defaults wrap every `run:` step with the built-in policy.
    public init(only: Glob? = nil, setupUses: String = WrapOptions.defaultSetupUses, setupVersion: String? = nil,
                policy: String? = nil, mode: String? = nil, policyDeclaresIdentity: Bool = false, policySteps: Set<String> = []) {
        self.only = only
        self.setupUses = setupUses
        self.setupVersion = setupVersion
        self.policy = policy
        self.mode = mode
        self.policyDeclaresIdentity = policyDeclaresIdentity
        self.policySteps = policySteps
    }

    /// The setup action used when none is given: a placeholder tag to replace with a commit SHA
    /// (``pinned(_:to:)``, `workflow wrap --ref SHA`); `workflow check` reports a tag as unpinned.
    public static let defaultSetupUses = "stepguard/stepguard/actions/setup@v0.1.0"

    /// `setupUses` with its ref replaced by `ref`, which must be a full 40-character commit SHA; nil otherwise.
    public static func pinned(_ setupUses: String, to ref: String) -> String? {
        guard ref.count == 40, ref.allSatisfy(\.isHexDigit) else { return nil }
        let path = setupUses.split(separator: "@", maxSplits: 1).first.map(String.init) ?? setupUses
        return path + "@" + ref.lowercased()
    }

    /// What `wrap` needs to know of a policy file: whether it has an `identity:` section, and the
    /// names under `steps:` (nothing when it cannot be read; `stepguard run` reports that itself).
    public static func policyFacts(file: String) -> (declaresIdentity: Bool, steps: Set<String>) {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8), let root = try? YAML.compose(yaml: text) else { return (false, []) }
        return (root.value("identity") != nil, Set(root.value("steps")?.pairs.compactMap { $0.key.text } ?? []))
    }
}

/// One change `wrap` made: `length` UTF-8 bytes at `offset` of the original replaced by `text`.
public struct TextEdit: Sendable, Equatable {
    /// Byte offset in the original file.
    public let offset: Int
    /// Bytes of the original replaced (0 for a pure insertion).
    public let length: Int
    /// The new text.
    public let text: String
}

/// The result of wrapping a workflow.
public struct WrapResult: Sendable {
    /// The file name, for the diff headers.
    public let path: String
    /// The original text.
    public let original: String
    /// The rewritten text (equal to ``original`` when nothing was wrapped).
    public let wrapped: String
    /// Every change, in file order; all bytes outside them are the original's.
    public let edits: [TextEdit]
    /// Steps now running under `stepguard run`, as `job/step`.
    public let wrappedSteps: [String]
    /// Jobs that were given `id-token: write`.
    public let idTokenJobs: [String]
    /// Steps left as they were, with the reason (`file:line:col: reason`).
    public let skipped: [String]

    /// A unified diff from the original to the wrapped text (empty when nothing changed).
    public var diff: String { UnifiedDiff.make(from: original, to: wrapped, path: path) }
}

/// Rewrites GitHub Actions `run:` steps to run under `stepguard run`, working on the original text with
/// the parser's marks so that every byte outside the inserted lines stays as it was (the YAML is never re-emitted).
///
/// A step is wrapped by giving it a custom `shell:` (`stepguard run --step NAME -- bash … {0}`); its `run:`
/// text — block scalars included — is not touched. A setup step is added once per job, and
/// `id-token: write` only to jobs that need it.
public enum WorkflowWrapper {
    /// Wraps the workflow in `text`.
    public static func wrap(text: String, path: String, options: WrapOptions = WrapOptions()) throws(PipelineError) -> WrapResult {
        let (source, root, kind) = try WorkflowChecker.parse(text: text, path: path)
        guard kind == .github else {
            throw PipelineError(.unsupported, at: SourceLocation(file: path, line: 1, column: 1),
                                "wrap rewrites GitHub Actions workflows only",
                                remedy: "in GitLab CI include actions/gitlab/stepguard.yml, or prefix script lines with `stepguard run --`")
        }
        var builder = Builder(source: source, root: root, options: options)
        builder.run()
        // Half a wrap is worse than none: a wrapped step without its setup step (or id-token) fails.
        if let failure = builder.failure { throw failure }
        let edits = builder.edits.sorted { $0.offset < $1.offset }
        var bytes = Array(text.utf8)
        for edit in edits.reversed() {
            bytes.replaceSubrange(edit.offset..<(edit.offset + edit.length), with: Array(edit.text.utf8))
        }
        return WrapResult(path: path, original: text, wrapped: String(decoding: bytes, as: UTF8.self), edits: edits,
                          wrappedSteps: builder.wrapped, idTokenJobs: builder.idTokenJobs, skipped: builder.skipped)
    }

    /// Wraps a file read from disk.
    public static func wrap(file: String, options: WrapOptions = WrapOptions()) throws(PipelineError) -> WrapResult {
        try wrap(text: try WorkflowChecker.read(file), path: file, options: options)
    }

    /// The `shell:` template for a base shell, or nil when it cannot run under a custom shell.
    static func template(forShell shell: String) -> String? {
        switch shell.trimmingWhitespace() {
        case "bash": "bash --noprofile --norc -eo pipefail {0}"
        case "sh": "sh -e {0}"
        case "python": "python {0}"
        case let custom where custom.contains("{0}") && !custom.hasPrefix("pwsh") && !custom.hasPrefix("powershell") && !custom.hasPrefix("cmd"):
            custom
        default: nil
        }
    }

    /// Why a job's runner is not (or may not be) Linux, nil when it is Linux: `runs-on` naming Windows or
    /// macOS, directly, in a label list or `group:`/`labels:`, or through `${{ matrix.KEY }}` values
    /// (`strategy.matrix.KEY` and `include:` entries); any other expression cannot be told.
    static func nonLinuxRunner(_ job: Node) -> String? {
        guard let runsOn = job.value("runs-on") else { return nil }
        var labels: [String] = []
        for scalar in runsOn.scalars {
            let text = scalar.text ?? ""
            let expressions = Untrusted.expressions(in: text)
            guard !expressions.isEmpty else { labels.append(text); continue }
            for (raw, body) in expressions {
                let key = body.trimmingWhitespace()
                guard key.hasPrefix("matrix."), key.dropFirst(7).allSatisfy({ Expression.isIdentifier($0.unicodeScalars.first!) || $0 == "-" }) else {
                    return "runs on `\(raw)`, which wrap cannot resolve to an operating system"
                }
                let name = String(key.dropFirst(7))
                let matrix = job.value("strategy")?.value("matrix")
                var values = (matrix?.value(name)?.items ?? []).compactMap(\.text) + (matrix?.value(name)?.text.map { [$0] } ?? [])
                values += (matrix?.value("include")?.items ?? []).compactMap { $0.value(name)?.text }
                guard !values.isEmpty, values.allSatisfy({ !$0.contains("${{") }) else {
                    return "runs on `\(raw)`, which wrap cannot resolve to an operating system"
                }
                labels += values
            }
        }
        let foreign = labels.filter { let lower = $0.lowercased(); return lower.contains("windows") || lower.contains("macos") || lower.hasPrefix("mac") }
        return foreign.isEmpty ? nil : "runs on \(foreign.map { "`\($0)`" }.joined(separator: ", "))"
    }

    /// A step name usable with `--step`: letters, digits, `-`, `_`, `.`.
    static func slug(_ text: String) -> String {
        var out = ""
        for c in text.lowercased().unicodeScalars {
            if Expression.isIdentifier(c) || c == "-" || c == "." { out.unicodeScalars.append(c) } else if !out.hasSuffix("-") { out += "-" }
        }
        return out.trimming(charactersIn: "-")
    }

    static func shellWord(_ text: String) -> String {
        let safe = text.unicodeScalars.allSatisfy { Expression.isIdentifier($0) || "-._/=:".unicodeScalars.contains($0) }
        return safe ? text : "'" + text.replacingAll("'", with: "'\\''") + "'"
    }

    /// A YAML scalar for `text`: plain when safe, else single-quoted.
    static func yamlScalar(_ text: String) -> String {
        let risky = text.contains(": ") || text.contains(" #") || text.hasPrefix("'") || text.hasPrefix("\"") || text.hasSuffix(" ")
        return risky ? "'" + text.replacingAll("'", with: "''") + "'" : text
    }

    struct Builder {
        let source: SourceText
        let root: Node
        let options: WrapOptions
        var edits: [TextEdit] = []
        var wrapped: [String] = []
        var idTokenJobs: [String] = []
        var skipped: [String] = []
        /// Why the workflow cannot be wrapped (nothing is changed then).
        var failure: PipelineError?
        let lineOffsets: [Int]
        /// The file's line ending, used for inserted lines (`\r\n` files stay `\r\n`).
        let newline: String

        init(source: SourceText, root: Node, options: WrapOptions) {
            self.source = source
            self.newline = source.text.contains("\r\n") ? "\r\n" : "\n"
            self.root = root
            self.options = options
            var offsets: [Int] = []
            var offset = 0
            for line in source.lines {
                offsets.append(offset)
                offset += line.utf8.count + 1
            }
            lineOffsets = offsets
        }

        /// Byte offset of a 1-based line and column (columns count Unicode scalars, as the parser's marks do).
        func offset(line: Int, column: Int) -> Int {
            let text = source.line(line)
            let prefix = String(String.UnicodeScalarView(text.unicodeScalars.prefix(column - 1)))
            return lineOffsets[line - 1] + prefix.utf8.count
        }

        func mark(_ node: Node) -> (line: Int, column: Int) { (node.mark?.line ?? 1, node.mark?.column ?? 1) }

        func indentString(_ count: Int) -> String { String(repeating: " ", count: count) }

        mutating func skip(_ node: Node, _ reason: String) { skipped.append("\(source.location(of: node)): \(reason)") }

        /// Records the first reason the workflow cannot be wrapped; `wrap` then throws it and changes nothing.
        mutating func fail(_ node: Node, _ message: String, remedy: String) {
            if failure == nil { failure = PipelineError(.unsupported, at: source.location(of: node), message, remedy: remedy) }
        }

        mutating func run() {
            let workflowShell = root.value("defaults")?.value("run")?.value("shell")?.text
            let topGrant = GitHubAudit.idTokenGrant(root.value("permissions")).granted
            for (jobKey, job) in root.value("jobs")?.pairs ?? [] where job.isMapping {
                wrapJob(jobKey, job, workflowShell: workflowShell, topGrant: topGrant)
            }
        }

        mutating func wrapJob(_ jobKey: Node, _ job: Node, workflowShell: String?, topGrant: Bool) {
            let jobName = jobKey.text ?? "job"
            guard let steps = job.value("steps"), steps.isSequence else { return }
            if let reason = WorkflowWrapper.nonLinuxRunner(job) {
                skip(jobKey, "job '\(jobName)' \(reason): stepguard run needs a Linux runner; the job was left as it is")
                return
            }
            let outerEnv = Set((root.value("env")?.pairs ?? []).compactMap(\.key.text) + (job.value("env")?.pairs ?? []).compactMap(\.key.text))
            let baseShell = job.value("defaults")?.value("run")?.value("shell")?.text ?? workflowShell ?? "bash"
            var wrappedHere = 0
            var callsServices = false
            var hasSetup = false
            for (index, step) in steps.items.enumerated() {
                if let uses = step.value("uses")?.text, Catalog.isStepGuardSetupAction(uses) { hasSetup = true }
                guard step.isMapping, let run = step.value("run"), let runKey = step.key("run") else { continue }
                if case let .mapping(mapping) = step, mapping.style == .flow { skip(step, "flow-style step; not wrapped"); continue }
                let stepName = step.value("id")?.text ?? step.value("name")?.text.map(WorkflowWrapper.slug) ?? "\(jobName)-\(index + 1)"
                if let only = options.only {
                    let candidates = [step.value("id")?.text, step.value("name")?.text, stepName, "\(jobName)/\(stepName)"].compactMap { $0 }
                    guard candidates.contains(where: only.matches) else { continue }
                }
                let shellNode = step.value("shell")
                let base = shellNode?.text ?? baseShell
                if ShellScan.mentionsStepGuardRun(base) || ShellScan.mentionsStepGuardRun(run.text ?? "") { continue }
                guard let template = WorkflowWrapper.template(forShell: base) else {
                    skip(run, "shell '\(base)' cannot run under a custom shell; wrap the command itself with `stepguard run --`")
                    continue
                }
                var command = ["stepguard", "run"]
                if let policy = options.policy { command += ["--policy", WorkflowWrapper.shellWord(policy)] }
                if let mode = options.mode { command += ["--mode", mode] }
                if options.policySteps.contains(stepName) { command += ["--step", WorkflowWrapper.shellWord(stepName)] }
                command += ["--", template]
                let value = WorkflowWrapper.yamlScalar(command.joined(separator: " "))
                if let shellNode {
                    guard let (start, length) = scalarSpan(shellNode) else { skip(shellNode, "multi-line shell: value; not wrapped"); continue }
                    edits.append(TextEdit(offset: start, length: length, text: value))
                } else {
                    let (runLine, runColumn) = mark(runKey)
                    let (firstLine, _) = mark(step.pairs.first!.key)
                    if runLine != firstLine || step.pairs.first!.key.text != "run" {
                        edits.append(TextEdit(offset: offset(line: runLine, column: 1), length: 0,
                                              text: indentString(runColumn - 1) + "shell: " + value + newline))
                    } else {
                        edits.append(TextEdit(offset: offset(line: runLine, column: runColumn), length: 0,
                                              text: "shell: " + value + newline + indentString(runColumn - 1)))
                    }
                }
                wrappedHere += 1
                wrapped.append("\(jobName)/\(stepName)")
                let stepEnv = outerEnv.union((step.value("env")?.pairs ?? []).compactMap(\.key.text))
                if Catalog.needsJobToken(run.text ?? "", envNames: stepEnv) { callsServices = true }
            }
            guard wrappedHere > 0 else { return }
            if !hasSetup, let first = steps.items.first { insertSetup(before: first) }
            if options.policyDeclaresIdentity || callsServices { grantIdToken(jobKey, job, topGrant: topGrant) }
        }

        /// Start and byte length of a single-line scalar value (plain or quoted).
        func scalarSpan(_ node: Node) -> (Int, Int)? {
            guard case let .scalar(scalar) = node, scalar.style != .literal, scalar.style != .folded else { return nil }
            let (line, column) = mark(node)
            let scalars = Array(source.line(line).unicodeScalars)
            var end = column - 1
            switch scalar.style {
            case .singleQuoted:
                end += 1
                while end < scalars.count {
                    if scalars[end] == "'" { if end + 1 < scalars.count, scalars[end + 1] == "'" { end += 2; continue }; end += 1; break }
                    end += 1
                }
            case .doubleQuoted:
                end += 1
                while end < scalars.count {
                    if scalars[end] == "\\" { end += 2; continue }
                    if scalars[end] == "\"" { end += 1; break }
                    end += 1
                }
            default:
                while end < scalars.count, !(scalars[end] == "#" && end > 0 && scalars[end - 1] == " ") { end += 1 }
                while end > column - 1, scalars[end - 1] == " " || scalars[end - 1] == "\r" { end -= 1 }
            }
            let start = offset(line: line, column: column)
            return (start, offset(line: line, column: end + 1) - start)
        }

        mutating func insertSetup(before step: Node) {
            guard let firstKey = step.pairs.first?.key else {
                fail(step, "cannot place the setup step before this step (it is not a mapping); nothing was changed",
                     remedy: "add `- uses: \(options.setupUses)` as the job's first step by hand")
                return
            }
            var line = mark(firstKey).line
            let column = mark(firstKey).column
            let scalars = Array(source.line(line).unicodeScalars)
            var dash = scalars[..<(column - 1)].lastIndex(of: "-").flatMap { index in scalars[..<index].allSatisfy { $0 == " " } ? index : nil }
            // The item's dash alone on the line above (`-` then the keys indented below it), a common style.
            if dash == nil, scalars[..<(column - 1)].allSatisfy({ $0 == " " }), line > 1 {
                let above = source.line(line - 1).trimming(charactersIn: "\r")
                let indent = SourceText.indentation(above)
                let rest = above.dropFirst(indent)
                if rest.hasPrefix("-"), rest.dropFirst().allSatisfy({ $0 == " " }) || rest.dropFirst().trimmingWhitespace().hasPrefix("#") {
                    dash = indent
                    line -= 1
                }
            }
            guard let dash else {
                fail(step, "cannot place the setup step before this step (it is not a block-style `- key:` item); nothing was changed",
                     remedy: "add `- uses: \(options.setupUses)` as the job's first step by hand, or write the steps in block style")
                return
            }
            var text = indentString(dash) + "- name: Set up stepguard" + newline + indentString(column - 1) + "uses: " + options.setupUses + newline
            if let version = options.setupVersion {
                text += indentString(column - 1) + "with:" + newline + indentString(column + 1) + "version: " + WorkflowWrapper.yamlScalar(version) + newline
            }
            edits.append(TextEdit(offset: offset(line: line, column: 1), length: 0, text: text))
        }

        mutating func grantIdToken(_ jobKey: Node, _ job: Node, topGrant: Bool) {
            let jobName = jobKey.text ?? "job"
            if let permissions = job.value("permissions") {
                if GitHubAudit.idTokenGrant(permissions).granted { return }
                if let value = permissions.value("id-token"), let span = scalarSpan(value) {
                    edits.append(TextEdit(offset: span.0, length: span.1, text: "write"))
                } else if case let .mapping(mapping) = permissions, mapping.style != .flow, let first = permissions.pairs.first?.key {
                    let (line, column) = mark(first)
                    edits.append(TextEdit(offset: offset(line: line, column: 1), length: 0, text: indentString(column - 1) + "id-token: write" + newline))
                } else {
                    fail(permissions, "job '\(jobName)' needs `id-token: write` but these permissions cannot be edited in place; nothing was changed",
                         remedy: "add `id-token: write` to them by hand (block style), then wrap again")
                    return
                }
                idTokenJobs.append(jobName)
                return
            }
            if topGrant { return }
            guard let firstKey = job.pairs.first?.key, mark(firstKey).line > mark(jobKey).line else {
                fail(job, "job '\(jobName)' needs `id-token: write` but it is written in flow style; nothing was changed",
                     remedy: "add `permissions: {id-token: write}` to the job by hand, then wrap again")
                return
            }
            let (line, column) = mark(firstKey)
            let unit = max(2, column - mark(jobKey).column)
            var lines = ["permissions:"]
            var scopes: [(String, String)] = []
            if let top = root.value("permissions"), top.isMapping {
                scopes = top.pairs.compactMap { pair in pair.key.text.flatMap { key in pair.value.text.map { (key, $0) } } }.filter { $0.0 != "id-token" }
            } else {
                scopes = [("contents", "read")]
            }
            lines += scopes.map { indentString(unit) + "\($0.0): \($0.1)" }
            lines.append(indentString(unit) + "id-token: write")
            edits.append(TextEdit(offset: offset(line: line, column: 1), length: 0,
                                  text: lines.map { indentString(column - 1) + $0 + newline }.joined()))
            idTokenJobs.append(jobName)
        }
    }
}
