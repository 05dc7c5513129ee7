import FoundationEssentials
import StepGuardCore
import Glibc

/// Output formats of `workflow check`.
public enum FindingFormat: String, Sendable, CaseIterable {
    /// `file:line:col: severity[id]: message` and a remedy line.
    case text
    /// One JSON object: `findings`, `errors`, `files`.
    case json
    /// SARIF 2.1.0 (GitHub code scanning, IDEs).
    case sarif
    /// GitHub Actions workflow commands (`::error file=…,line=…,col=…::…`), shown as annotations.
    case github

    /// Renders a report in this format (ends with a newline when not empty).
    public func render(_ report: CheckReport) -> String {
        switch self {
        case .text: Self.text(report)
        case .json: Self.json(report)
        case .sarif: Self.sarif(report)
        case .github: Self.github(report)
        }
    }

    static func text(_ report: CheckReport) -> String {
        var out = ""
        for finding in report.findings { out += finding.description + "\n" }
        for error in report.errors { out += error.description + "\n" }
        let count = report.findings.count
        out += "\(report.files.count) file\(report.files.count == 1 ? "" : "s") checked, \(count) finding\(count == 1 ? "" : "s")"
        out += report.errors.isEmpty ? "\n" : ", \(report.errors.count) error\(report.errors.count == 1 ? "" : "s")\n"
        return out
    }

    private static func encode(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? String(data: encoder.encode(value), encoding: .utf8) ?? "{}") ?? "{}"
    }

    struct ErrorRecord: Encodable { let file: String; let line: Int; let column: Int; let message: String; let remedy: String }
    struct JSONReport: Encodable { let files: [String]; let findings: [Finding]; let errors: [ErrorRecord] }

    static func json(_ report: CheckReport) -> String {
        let errors = report.errors.map { ErrorRecord(file: $0.location.file, line: $0.location.line, column: $0.location.column, message: $0.message, remedy: $0.remedy) }
        return encode(JSONReport(files: report.files, findings: report.findings, errors: errors)) + "\n"
    }

    static func github(_ report: CheckReport) -> String {
        func escapeData(_ s: String) -> String {
            s.replacingAll("%", with: "%25").replacingAll("\r", with: "%0D").replacingAll("\n", with: "%0A")
        }
        func escapeProperty(_ s: String) -> String { escapeData(s).replacingAll(":", with: "%3A").replacingAll(",", with: "%2C") }
        var out = ""
        for f in report.findings {
            let level = f.severity >= .high ? "error" : "warning"
            out += "::\(level) file=\(escapeProperty(f.location.file)),line=\(f.location.line),col=\(f.location.column),title=\(escapeProperty("stepguard \(f.rule.rawValue)"))::\(escapeData("\(f.message) — \(f.remedy)"))\n"
        }
        for e in report.errors {
            out += "::error file=\(escapeProperty(e.location.file)),line=\(e.location.line),col=\(e.location.column),title=stepguard::\(escapeData("\(e.message); \(e.remedy)"))\n"
        }
        return out
    }

    struct SARIF: Encodable {
        struct Run: Encodable { let tool: Tool; let results: [Result]; let invocations: [Invocation] }
        struct Tool: Encodable { let driver: Driver }
        struct Driver: Encodable { let name: String; let informationUri: String; let version: String; let rules: [Rule] }
        struct Rule: Encodable {
            let id: String; let name: String; let shortDescription: Message; let help: Message
            let defaultConfiguration: Configuration; let properties: Properties
        }
        struct Properties: Encodable { let severity: String; let securitySeverity: String
            enum CodingKeys: String, CodingKey { case severity, securitySeverity = "security-severity" } }
        struct Configuration: Encodable { let level: String }
        struct Message: Encodable { let text: String }
        struct Result: Encodable { let ruleId: String; let level: String; let message: Message; let locations: [Location] }
        struct Location: Encodable { let physicalLocation: Physical }
        struct Physical: Encodable { let artifactLocation: Artifact; let region: Region }
        struct Artifact: Encodable { let uri: String }
        struct Region: Encodable { let startLine: Int; let startColumn: Int }
        struct Invocation: Encodable { let executionSuccessful: Bool; let toolExecutionNotifications: [Notification] }
        struct Notification: Encodable { let level: String; let message: Message; let locations: [Location] }
        let version = "2.1.0"
        let schema = "https://json.schemastore.org/sarif-2.1.0.json"
        let runs: [Run]
        enum CodingKeys: String, CodingKey { case version, schema = "$schema", runs }
    }

    static func level(_ severity: Severity) -> String { severity >= .high ? "error" : "warning" }

    static func sarif(_ report: CheckReport) -> String {
        let scores: [Severity: String] = [.critical: "9.5", .high: "8.0", .medium: "5.5", .low: "3.0"]
        let rules = RuleID.allCases.map {
            SARIF.Rule(id: $0.rawValue, name: $0.rawValue, shortDescription: .init(text: $0.summary), help: .init(text: $0.summary),
                       defaultConfiguration: .init(level: level($0.severity)),
                       properties: .init(severity: $0.severity.rawValue, securitySeverity: scores[$0.severity]!))
        }
        func location(_ file: String, _ line: Int, _ column: Int) -> SARIF.Location {
            .init(physicalLocation: .init(artifactLocation: .init(uri: file), region: .init(startLine: line, startColumn: column)))
        }
        let results = report.findings.map {
            SARIF.Result(ruleId: $0.rule.rawValue, level: level($0.severity), message: .init(text: "\($0.message). Remedy: \($0.remedy)"),
                         locations: [location($0.location.file, $0.location.line, $0.location.column)])
        }
        let notes = report.errors.map {
            SARIF.Notification(level: "error", message: .init(text: "\($0.message); \($0.remedy)"),
                               locations: [location($0.location.file, $0.location.line, $0.location.column)])
        }
        let run = SARIF.Run(tool: .init(driver: .init(name: "stepguard", informationUri: "https://github.com/stepguard/stepguard", version: "0.1.0", rules: rules)),
                            results: results, invocations: [.init(executionSuccessful: report.errors.isEmpty, toolExecutionNotifications: notes)])
        return encode(SARIF(runs: [run])) + "\n"
    }
}
