import Foundation
import StepGuardTestSupport
import Testing

/// Issue #16, hole 7 (the environment block): with isolation off a step could read a stripped
/// credential back from stepguard's own `/proc/PID/environ`. Run as root, which reads another
/// process's environ whatever its dumpable flag, so only the wiped block itself protects it; and
/// as `nobody`, the case (where a non-dumpable stepguard may also refuse the read).
@Suite struct EnvironmentBlockTests {
    @Test(arguments: [false, true])
    func strippedValueIsGoneFromStepguardsEnvironBlock(asNobody: Bool) throws {
        if asNobody && getuid() != 0 { return }  // already unprivileged: the root case is the nobody case
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        chmod(directory.path, 0o777)
        let token = RandomSecret.githubPAT()
        let policy = try directory.write("policy.yaml", "version: 1\nisolation: off\ncredentials: { long_lived: strip }\n", mode: 0o644)
        let copy = directory.path("environ")
        let step = "cat /proc/$PPID/environ > \(copy); tr '\\0' ' ' < /proc/$PPID/cmdline; echo; echo \"own=${GH_TOKEN:-unset}\""
        let arguments = ["run", "--policy", policy, "--", "/bin/sh", "-c", step]
        var environment = TestEnvironment.base.merging(["GH_TOKEN": token, "KEEP_ME": "visible"]) { $1 }
        let result: ProgramResult
        if asNobody {
            environment["HOME"] = directory.path
            result = try StepGuardBinary.runAsNobody(arguments, environment: environment)
        } else {
            result = try StepGuardBinary.run(arguments, environment: environment)
        }
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasSuffix("own=unset\n"))
        let block = try #require(FileManager.default.contents(atPath: copy))
        #expect(block.range(of: Data(token.utf8)) == nil, "the stripped token is still in stepguard's /proc/PID/environ")
        if !asNobody || !block.isEmpty {  // as nobody, a non-dumpable stepguard refuses the read: also protected
            #expect(result.stdout.contains("stepguard run"), "the step's parent is not stepguard: \(result.stdout)")
            #expect(block.range(of: Data("KEEP_ME=visible".utf8)) != nil, "the copy is not stepguard's environment block")
        }
    }
}
