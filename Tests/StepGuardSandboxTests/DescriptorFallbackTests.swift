import Foundation
import StepGuardSandbox
import StepGuardTestSupport
import Testing

/// The close-on-exec fallbacks of CSandbox for kernels without `CLOSE_RANGE_CLOEXEC` (Linux < 5.11)
/// never run on a newer kernel through `stepguard run`, so `Harness/descriptors.c` includes
/// csandbox.c and calls them directly, in a process of its own (they change the flags of every
/// descriptor in their range, which the test runner's own descriptors must not see).
@Suite struct DescriptorFallbackTests {
    static let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    static let csandbox = StepGuardBinary.packageRoot.appendingPathComponent("Sources/CSandbox")

    /// The first C compiler on PATH (the Swift toolchain brings clang), found as `stepguard run` finds a step's program.
    static var compiler: String? {
        let environment = ProcessInfo.processInfo.environment
        return ["cc", "clang", "gcc"].lazy.compactMap { try? StepCommand(arguments: [$0], environment: environment).resolveExecutable() }.first
    }

    @Test func theListedAndCountedFallbacksMarkExactlyTheirRange() throws {
        let compiler = try #require(Self.compiler, "no C compiler on PATH")
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("sg-descriptors-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let build = try ProgramRun.start(compiler, ["-O2", "-I", Self.csandbox.appendingPathComponent("include").path, "-I", Self.csandbox.path,
                                                    Self.sources.appendingPathComponent("Harness/descriptors.c").path,
                                                    Self.csandbox.appendingPathComponent("capture.c").path,
                                                    Self.csandbox.appendingPathComponent("names.c").path, "-o", output]).wait()
        try #require(build.status == 0, "\(build.stderr)")
        let result = try ProgramRun.start(output, []).wait()
        #expect(result.status == 0 && result.stdout.hasPrefix("ok "), "\(result.stdout)\(result.stderr)")
        if result.status == 0 { print("close-on-exec fallbacks: \(result.stdout.trimmingCharacters(in: .newlines))") }
    }
}
