import Foundation
import StepGuardTestSupport
import Testing

/// An isolated spawn makes the sources of its covers (and of the step's resolv.conf) in a private
/// directory on a memory file system when there is one — `$TMPDIR` if it is tmpfs, else
/// `/dev/shm`. `/dev/shm` is writable by every local user (and by a step that sees it), so it may
/// be full: the step must then still run, from the temporary directory as before.
@Suite struct ScratchDirectoryTests {
    @Test(.enabled(if: getuid() == 0, "needs root to mount a full /dev/shm in a mount namespace"))
    func aFullDevShmDoesNotKeepAnIsolatedStepFromRunning() throws {
        let directory = try TemporaryDirectory(); defer { directory.remove() }
        let policy = try directory.write("required.yaml", "version: 1\nisolation: required\n")
        // A /dev/shm with no inode left (its root takes the only one), in a private mount
        // namespace; TMPDIR on the test's file system.
        let script = """
            mount -t tmpfs -o size=4k,nr_inodes=1 full /dev/shm || exit 90
            mkdir /dev/shm/x 2>/dev/null && exit 91
            exec "$0" run --policy "$1" -- sh -c 'echo ran; ls /etc/resolv.conf >/dev/null'
            """
        var environment = TestEnvironment.base
        environment["TMPDIR"] = directory.path
        let run = try ProgramRun.start("/usr/bin/unshare", ["--mount", "--propagation", "private", "/bin/sh", "-c", script,
                                                            StepGuardBinary.path, policy], environment: environment).wait()
        #expect(run.status == 0, "\(run.status) \(run.stdout) \(run.stderr)")
        #expect(run.stdout.contains("ran"), "\(run.stderr)")
        // Nothing is left behind in the temporary directory either.
        let left = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix("stepguard-hide-") }
        #expect(left.isEmpty, "\(left)")
    }
}
