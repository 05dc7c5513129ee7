import Foundation
import StepGuardTestSupport
import Testing

/// Issue #16, hole 7 (the environment block): with isolation off a step could read a stripped
/// credential back from stepguard's own `/proc/PID/environ`. Run as root, which reads another
/// process's environ whatever its dumpable flag, so only the wiped block itself protects it.
@Suite struct EnvironmentBlockTests {
    @Test func strippedValueIsGoneFromStepguardsEnvironBlock() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let token = RandomSecret.githubPAT()
        let policy = try directory.write("policy.yaml", "version: 1\nisolation: off\ncredentials: { long_lived: strip }\n")
        let copy = directory.path("environ")
        let step = "cat /proc/$PPID/environ > \(copy); tr '\\0' ' ' < /proc/$PPID/cmdline; echo; echo \"own=${GH_TOKEN:-unset}\""
        let result = try StepGuardBinary.run(["run", "--policy", policy, "--", "/bin/sh", "-c", step],
                                             environment: TestEnvironment.base.merging(["GH_TOKEN": token, "KEEP_ME": "visible"]) { $1 })
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("stepguard run"), "the step's parent is not stepguard: \(result.stdout)")
        #expect(result.stdout.hasSuffix("own=unset\n"))
        let block = try #require(FileManager.default.contents(atPath: copy))
        #expect(!block.isEmpty)
        #expect(block.range(of: Data(token.utf8)) == nil, "the stripped token is still in stepguard's /proc/PID/environ")
        #expect(block.range(of: Data("KEEP_ME=visible".utf8)) != nil, "the copy is not stepguard's environment block")
    }
}
