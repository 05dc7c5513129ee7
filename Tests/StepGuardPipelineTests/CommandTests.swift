import Foundation
import Testing
@testable import StepGuardPipeline

/// `stepguard workflow check|wrap` through the built binary (built by `swift test` with the tests).
@Suite struct WorkflowCommandTests {
    /// The `stepguard` next to the test bundle, else the package's .build/debug one.
    static var binary: String {
        if let explicit = ProcessInfo.processInfo.environment["STEPGUARD_BINARY"] { return explicit }
        var directory = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
            .deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("stepguard").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory.deleteLastPathComponent()
        }
        return URL(fileURLWithPath: fixturesDirectory).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/debug/stepguard").path
    }

    func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = arguments
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sg-cmd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let out = directory.appendingPathComponent("out"), err = directory.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        try process.run()
        process.waitUntilExit()
        return (process.terminationStatus, try String(contentsOf: out, encoding: .utf8), try String(contentsOf: err, encoding: .utf8))
    }

    @Test func checkExitCodesAndFormats() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build stepguard first: \(Self.binary)")
        let findings = try run(["workflow", "check", fixture("npm-publish.yml")])
        #expect(findings.status == 1)
        #expect(findings.stdout.contains("npm-publish.yml:31:32: high[long-lived-credential]"))
        #expect(try run(["workflow", "check", fixture("guarded-release.yml")]).status == 0)
        let sarif = try run(["workflow", "check", "--format", "sarif", fixturesDirectory])
        #expect(sarif.status == 1)
        #expect(sarif.stdout.contains("\"version\" : \"2.1.0\""))
        let bad = FileManager.default.temporaryDirectory.appendingPathComponent("sg-bad-\(UUID().uuidString).yml").path
        try "on: [\n".write(toFile: bad, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: bad) }
        let invalid = try run(["workflow", "check", "--format", "json", bad])
        #expect(invalid.status == 78)
        #expect(invalid.stderr.contains("invalid YAML"))
        #expect(try run(["workflow", "check", "--format", "xml", bad]).status == 64)
    }

    @Test func wrapPrintsADiffThenWritesInPlace() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build stepguard first: \(Self.binary)")
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("sg-wrap-\(UUID().uuidString).yml").path
        try FileManager.default.copyItem(atPath: fixture("cosign-release.yml"), toPath: copy)
        defer { try? FileManager.default.removeItem(atPath: copy) }
        let original = try String(contentsOfFile: copy, encoding: .utf8)
        let diff = try run(["workflow", "wrap", copy])
        #expect(diff.status == 0)
        #expect(diff.stdout.contains("+        shell: stepguard run -- bash --noprofile --norc -eo pipefail {0}"))
        #expect(try String(contentsOfFile: copy, encoding: .utf8) == original)
        let write = try run(["workflow", "wrap", "--write", copy])
        #expect(write.status == 0)
        #expect(write.stderr.contains("wrapped 2 steps"))
        let after = try run(["workflow", "check", "--format", "json", copy])
        #expect(after.status == 1)
        #expect(!after.stdout.contains("unguarded-service-call"))
        #expect(try run(["workflow", "wrap", copy]).stdout.isEmpty)
    }

    @Test func wrapFailsWithoutChangesAndPinsWithRef() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build stepguard first: \(Self.binary)")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("sg-wrap-\(UUID().uuidString).yml").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        let unplaceable = "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - &checkout\n        uses: actions/checkout@v4\n      - run: make\n"
        try unplaceable.write(toFile: file, atomically: true, encoding: .utf8)
        let failed = try run(["workflow", "wrap", "--write", file])
        #expect(failed.status == 2)
        #expect(failed.stderr.contains("cannot place the setup step"))
        #expect(try String(contentsOfFile: file, encoding: .utf8) == unplaceable)

        try "on: push\npermissions: {contents: read}\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: make\n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try run(["workflow", "wrap", "--ref", "v1.0.0", file]).status == 64)
        let placeholder = try run(["workflow", "wrap", file])
        #expect(placeholder.stderr.contains("a placeholder; pin it with --ref"))
        let sha = String(repeating: "89abcdef01", count: 4)
        let pinned = try run(["workflow", "wrap", "--write", "--ref", sha, file])
        #expect(pinned.status == 0)
        #expect(try String(contentsOfFile: file, encoding: .utf8).contains("uses: stepguard/stepguard/actions/setup@\(sha)\n"))
    }
}
