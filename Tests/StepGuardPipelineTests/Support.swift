import Foundation
import Testing
@testable import StepGuardPipeline

/// The repository's fixtures/workflows folder.
let fixturesDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("fixtures/workflows").path

func fixture(_ name: String) -> String { (fixturesDirectory as NSString).appendingPathComponent(name) }

/// Findings as compact `rule@line:col` strings, sorted by position.
func compact(_ findings: [Finding]) -> [String] {
    findings.sorted { ($0.location.line, $0.location.column) < ($1.location.line, $1.location.column) }
        .map { "\($0.rule.rawValue)@\($0.location.line):\($0.location.column)" }
}

/// Checks inline workflow text.
func check(_ text: String, path: String = "workflow.yml") throws -> [Finding] {
    try WorkflowChecker.check(text: text, path: path)
}

/// The one finding `check` reports on `text`, after expecting that it is `expected` (`rule@line:col`).
func onlyFinding(_ text: String, is expected: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> Finding {
    let findings = try check(text)
    #expect(compact(findings) == [expected], sourceLocation: sourceLocation)
    return try #require(findings.first, sourceLocation: sourceLocation)
}

/// A GitHub workflow: `on: trigger`, `permissions:` (left out when nil), `jobs:`, then `jobs` (YAML
/// indented 2), so the jobs start on line 4 (line 3 without permissions).
func gitHubWorkflow(on trigger: String = "push", permissions: String? = "{contents: read}", jobs: String) -> String {
    (["on: \(trigger)"] + (permissions.map { ["permissions: \($0)"] } ?? []) + ["jobs:", jobs]).joined(separator: "\n")
}

/// A ``gitHubWorkflow(on:permissions:jobs:)`` of one job, `job`, on runner `x` whose `steps` are YAML
/// list items indented 6: the first step is on line 7 (line 6 without permissions).
func singleJobWorkflow(on trigger: String = "push", permissions: String? = "{contents: read}", job: String = "a", steps: String) -> String {
    gitHubWorkflow(on: trigger, permissions: permissions, jobs: "  \(job):\n    runs-on: x\n    steps:\n" + steps)
}
