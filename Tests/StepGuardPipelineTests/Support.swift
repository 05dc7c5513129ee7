import Foundation
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
