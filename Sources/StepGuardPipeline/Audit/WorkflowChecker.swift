import FoundationEssentials
import StepGuardCore
import Glibc
import StepGuardPolicy
import StepGuardYAML

/// The CI system a file belongs to.
public enum WorkflowKind: String, Sendable, Codable {
    /// A GitHub Actions workflow (`.github/workflows/*.yml`).
    case github
    /// A GitLab CI file (`.gitlab-ci.yml`, or a component/template).
    case gitlab
}

/// The result of checking some files: findings, and the files that could not be checked.
public struct CheckReport: Sendable {
    /// Files checked, in order.
    public var files: [String] = []
    /// Every finding, in file order.
    public var findings: [Finding] = []
    /// Files that could not be read, parsed or recognized (the check fails closed on them).
    public var errors: [PipelineError] = []
}

/// Reads GitHub Actions workflows and GitLab CI files and reports identity and token risks.
public enum WorkflowChecker {
    /// Checks files and directories. A directory means its `.github/workflows/*.yml|yaml` and
    /// `.gitlab-ci.yml` when it has them, else every `*.yml|yaml` directly inside it.
    public static func check(paths: [String]) -> CheckReport {
        var report = CheckReport()
        for path in paths {
            do {
                for file in try workflowFiles(at: path) {
                    report.files.append(file)
                    do { report.findings += try check(file: file) } catch { report.errors.append(error) }
                }
            } catch {
                report.errors.append(error)
            }
        }
        return report
    }

    /// Checks one file read from disk.
    public static func check(file: String) throws(PipelineError) -> [Finding] {
        try check(text: try read(file), path: file)
    }

    /// Checks workflow text; `path` names it in locations and decides GitLab vs GitHub with the content.
    public static func check(text: String, path: String) throws(PipelineError) -> [Finding] {
        let (source, root, kind) = try parse(text: text, path: path)
        switch kind {
        case .github:
            var audit = GitHubAudit(source: source, root: root)
            return audit.run()
        case .gitlab:
            var audit = GitLabAudit(source: source, root: root)
            return audit.run()
        }
    }

    static func read(_ file: String) throws(PipelineError) -> String {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw PipelineError(.unreadable, at: SourceLocation(file: file, line: 1, column: 1), "cannot read the file",
                                remedy: "check that it exists and is readable")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw PipelineError(.unreadable, at: SourceLocation(file: file, line: 1, column: 1), "the file is not UTF-8 text",
                                remedy: "save it as UTF-8")
        }
        return text
    }

    /// Parses the text and decides which CI it is for; fails closed on anything else.
    static func parse(text: String, path: String) throws(PipelineError) -> (SourceText, Node, WorkflowKind) {
        let source = SourceText(path: path, text: text)
        var root: Node?
        do {
            let documents = try composeAllowingRepeatedMergeKeys(text)
            // A GitLab CI component: a `spec:` header document, then the jobs.
            if documents.count == 2, documents[0].value("spec") != nil {
                return (source, documents[1], .gitlab)
            }
            guard documents.count <= 1 else {
                throw PipelineError(.notAWorkflow, at: SourceLocation(file: path, line: 1, column: 1),
                                    "the file holds \(documents.count) YAML documents",
                                    remedy: "keep one workflow per file (a GitLab component may have one spec: header document)")
            }
            root = documents.first
        } catch let error as PipelineError {
            throw error
        } catch let error as YAMLError {
            let location = SourceLocation(file: path, line: error.mark.line, column: error.mark.column)
            throw PipelineError(.invalidYAML, at: location, "invalid YAML: \(yamlErrorSummary(error))\(excerpt(source, line: location.line))",
                                remedy: "fix the YAML syntax; nothing was checked in this file")
        } catch {
            throw PipelineError(.invalidYAML, at: SourceLocation(file: path, line: 1, column: 1), "invalid YAML: the parser failed (\(type(of: error)))",
                                remedy: "fix the YAML syntax; nothing was checked in this file")
        }
        guard let root, root.isMapping else {
            throw PipelineError(.notAWorkflow, at: SourceLocation(file: path, line: 1, column: 1), "the file is empty or not a YAML mapping",
                                remedy: "name a GitHub Actions workflow or a .gitlab-ci.yml")
        }
        let name = FilePaths.lastComponent(path)
        if name.hasSuffix("gitlab-ci.yml") || name.hasSuffix("gitlab-ci.yaml") { return (source, root, .gitlab) }
        if root.value("jobs") != nil, root.value("on") != nil || root.value("true") != nil { return (source, root, .github) }
        if root.value("stages") != nil || root.value("include") != nil || root.value("spec") != nil
            || root.pairs.contains(where: { $0.value.value("script") != nil }) { return (source, root, .gitlab) }
        throw PipelineError(.notAWorkflow, at: SourceLocation(file: path, line: 1, column: 1),
                            "neither a GitHub Actions workflow (on: and jobs:) nor a GitLab CI file (jobs with script:)",
                            remedy: "name a workflow under .github/workflows/ or a .gitlab-ci.yml")
    }

    /// The first private-use scalar of the stand-ins for repeated `<<` keys (see ``composeAllowingRepeatedMergeKeys(_:)``).
    static let mergeStandIn: UInt32 = 0xE000

    /// Parses every document of `text`. The reader refuses a mapping with two `<<:` merge keys (a YAML 1.1
    /// idiom GitLab accepts); each repeated `<<` the parser points at is replaced by a unique two-scalar
    /// stand-in of the same width (positions do not move) and parsing is retried. The stand-ins are
    /// read back as merge keys by ``Node/pairs``, where the last merge wins. Any other duplicate key
    /// (reported once the repeated `<<` are replaced), or a file that already holds stand-in scalars, still fails.
    static func composeAllowingRepeatedMergeKeys(_ text: String) throws(YAMLError) -> [Node] {
        var scalars = Array(text.unicodeScalars)
        let hasStandIns = scalars.contains { (mergeStandIn...0xF8FF).contains($0.value) }
        var next: UInt32 = 1
        while true {
            do throws(YAMLError) {
                return try YAML.composeAll(yaml: String(String.UnicodeScalarView(scalars)))
            } catch let error where error.kind == .duplicateKeys && error.duplicates.contains("<<") && !hasStandIns {
                let offset = lineStart(of: error.mark.line, in: scalars).map { $0 + error.mark.column - 1 }
                guard let offset, offset + 1 < scalars.count, scalars[offset] == "<", scalars[offset + 1] == "<",
                      next < 0xF8FF - mergeStandIn, let first = Unicode.Scalar(mergeStandIn), let second = Unicode.Scalar(mergeStandIn + next)
                else { throw error }
                scalars[offset] = first
                scalars[offset + 1] = second
                next += 1
            }
        }
    }

    /// The index of the first scalar of 1-based `line`.
    static func lineStart(of line: Int, in scalars: [Unicode.Scalar]) -> Int? {
        guard line >= 1 else { return nil }
        var current = 1
        for (index, scalar) in scalars.enumerated() where current < line && scalar == "\n" {
            current += 1
            if current == line { return index + 1 }
        }
        return current == line ? 0 : nil
    }

    /// What the parser said, without any copy of the file's text.
    static func yamlErrorSummary(_ error: YAMLError) -> String {
        switch error.kind {
        case .duplicateKeys:
            return "the key(s) \(error.duplicates.map { "'\($0)'" }.joined(separator: ", ")) appear twice in one mapping"
        case .reader:
            return error.problem
        case .scanner, .parser, .composer, .memory:
            return [error.context, error.problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ": ")
        }
    }

    /// ` near `LINE`` for a parse error: the line, trimmed, cut to 60 characters, with long token-like
    /// words (which could be secrets) cut to their first 4 characters; empty for a blank line.
    static func excerpt(_ source: SourceText, line: Int) -> String {
        let text = source.line(line).trimmingWhitespaceAndNewlines()
        guard !text.isEmpty else { return "" }
        let masked = text.split(separator: " ", omittingEmptySubsequences: false).map { word in
            word.count >= 20 ? String(word.prefix(4)) + "…" : String(word)
        }.joined(separator: " ")
        let cut = masked.count > 60 ? String(masked.prefix(60)) + "…" : masked
        return " near `\(cut)`"
    }

    /// The workflow files a path stands for.
    static func workflowFiles(at path: String) throws(PipelineError) -> [String] {
        var isDirectory = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw PipelineError(.unreadable, at: SourceLocation(file: path, line: 1, column: 1), "no such file or directory",
                                remedy: "name a workflow file or a repository directory")
        }
        guard isDirectory else { return [path] }
        func yamlFiles(_ directory: String) -> [String] {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            return names.filter { $0.hasSuffix(".yml") || $0.hasSuffix(".yaml") }.sorted()
                .map { FilePaths.appending($0, to: directory) }
        }
        let workflows = FilePaths.appending(".github/workflows", to: path)
        let gitlab = FilePaths.appending(".gitlab-ci.yml", to: path)
        var files = FileManager.default.fileExists(atPath: workflows) ? yamlFiles(workflows) : []
        if FileManager.default.fileExists(atPath: gitlab) { files.append(gitlab) }
        if files.isEmpty { files = yamlFiles(path) }
        guard !files.isEmpty else {
            throw PipelineError(.noWorkflows, at: SourceLocation(file: path, line: 1, column: 1),
                                "no workflow found (looked for .github/workflows/*.yml, .gitlab-ci.yml and *.yml)",
                                remedy: "name the workflow files explicitly")
        }
        return files
    }
}
