import Foundation
import StepGuardTestSupport
import Testing

/// The step inherits stdin, stdout and stderr and nothing else unless `--keep-fd` names it: none
/// of stepguard's own descriptors (its event loops' epoll sets), and no descriptor its parent left
/// open. Such a descriptor could be a socket already connected somewhere, which leads out around
/// the proxy. Each test starts stepguard from a shell that holds fd 7 open on a file.
@Suite struct DescriptorTests {
    /// Runs `stepguard ARGUMENTS` from `sh` with fd 7 open on a file that holds "inherited".
    static func runHoldingFD7(_ arguments: [String]) throws -> ProgramResult {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = try directory.write("held", "inherited")
        let command = ([StepGuardBinary.path] + arguments).map { "'\($0)'" }.joined(separator: " ")  // no ' in them
        return try ProgramRun.start("/bin/sh", ["-c", "exec 7<'\(file)'; exec \(command)"]).wait(timeout: 60)
    }

    @Test(arguments: ["off", "required"])
    func theStepGetsOnlyStdinStdoutAndStderr(isolation: String) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let policy = try directory.write("policy.yaml", "version: 1\nisolation: \(isolation)\n")
        let result = try Self.runHoldingFD7(["run", "--policy", policy, "--", "/bin/sh", "-c", "ls /proc/$$/fd"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.split(separator: "\n") == ["0", "1", "2"])
    }

    @Test func keepFDPassesTheNamedDescriptor() throws {
        let result = try Self.runHoldingFD7(["run", "--keep-fd", "7", "--", "/bin/sh", "-c", "ls /proc/$$/fd; cat <&7"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "0\n1\n2\n7\ninherited")
    }

    @Test(arguments: [("8", "descriptor 8 is not open"), ("2", "stdin, stdout and stderr are always passed")])
    func keepFDMustNameAnOpenDescriptorAboveStderr(fd: String, reason: String) throws {
        let result = try Self.runHoldingFD7(["run", "--keep-fd", fd, "--", "true"])
        #expect(result.status == 64)
        #expect(result.stderr.contains("--keep-fd \(fd): \(reason)"), "\(result.stderr)")
    }
}
