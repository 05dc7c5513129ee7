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

    /// With tripwires on, the private directory holds more than the empty files: the socket that
    /// covers a hidden socket (`trap-N.sock`) and the mount point of the writable covers
    /// (`covers/`). All of it goes once the step has started: a directory left per run would fill
    /// `/dev/shm` (or the temporary directory) run after run. As root and as nobody, in a mount
    /// namespace of the test's with a /dev/shm of its own.
    @Test(.enabled(if: getuid() == 0, "needs root to mount a private /dev/shm in a mount namespace"), arguments: [false, true])
    func nothingOfATripwiredSpawnIsLeftBehind(asNobody: Bool) throws {
        let spawn = try TripwiredSpawn(); defer { spawn.directory.remove() }
        let run = try spawn.run("""
            mount -t tmpfs -o mode=1777 shm /dev/shm || exit 90
            \(TripwiredSpawn.step(asNobody: asNobody))
            echo "status $?"
            \(TripwiredSpawn.reportLeftovers)
            exit 0
            """)
        #expect(run.status == 0, "\(run.status) \(run.stdout) \(run.stderr)")
        #expect(run.stdout.contains("ran\n") && run.stdout.contains("status 0\n"), "the step ran isolated: \(run.stdout) \(run.stderr)")
        let left = run.stdout.split(separator: "\n").filter { $0.hasPrefix("left ") }
        #expect(left.isEmpty, "\(left)")
    }

    /// A /dev/shm filled to the inode — room for the empty files, none for a trap socket or the
    /// writable covers' mount point (a local user, or an earlier step, can leave it so) — does not
    /// refuse a tripwired step either: everything moves to the temporary directory. Every number
    /// of free inodes from none to more than the spawn needs, as root and as nobody.
    @Test(.enabled(if: getuid() == 0, "needs root to mount a full /dev/shm in a mount namespace"), arguments: [false, true])
    func aDevShmFullToTheInodeDoesNotKeepATripwiredStepFromRunning(asNobody: Bool) throws {
        let spawn = try TripwiredSpawn(); defer { spawn.directory.remove() }
        // nr_inodes counts the file system's root: 1 leaves no inode free.
        let run = try spawn.run("""
            for inodes in 1 2 3 4 5 6 7 8 9 10; do
                mount -t tmpfs -o size=64k,nr_inodes=$inodes,mode=1777 shm /dev/shm || exit 90
                \(TripwiredSpawn.step(asNobody: asNobody))
                echo "inodes $inodes: status $?"
                \(TripwiredSpawn.reportLeftovers)
                umount /dev/shm || exit 92
            done
            exit 0
            """)
        #expect(run.status == 0, "\(run.status) \(run.stdout) \(run.stderr)")
        let statuses = run.stdout.split(separator: "\n").filter { $0.hasPrefix("inodes ") }
        #expect(statuses.count == 10, "\(run.stdout) \(run.stderr)")
        #expect(statuses.allSatisfy { $0.hasSuffix(": status 0") }, "\(statuses) \(run.stderr)")
        #expect(run.stdout.components(separatedBy: "ran\n").count == 11, "the step ran every time: \(run.stdout)")
        let left = run.stdout.split(separator: "\n").filter { $0.hasPrefix("left ") }
        #expect(left.isEmpty, "\(left)")
    }
}

/// A tripwired, isolated policy that hides `~/.npmrc` and a socket, in a temporary directory that
/// is also the step's (and nobody's) TMPDIR.
private struct TripwiredSpawn {
    let directory: TemporaryDirectory
    let policy: String
    var home: String { directory.path("home") }
    /// Where the hidden socket is bound (by ``run(_:)``).
    var socket: String { directory.path("home/agent.sock") }

    init() throws {
        let directory = try TemporaryDirectory()
        self.directory = directory
        chmod(directory.path, 0o777)  // nobody's TMPDIR
        _ = try directory.write("home/.npmrc", "registry=https://registry.example.test/\n", mode: 0o644)
        chmod(directory.path("home"), 0o755)
        policy = try directory.write("tripwired.yaml", """
            version: 1
            isolation: required
            tripwires: on
            filesystem: { hide: ["~/.npmrc", "\(directory.path("home/agent.sock"))"] }

            """, mode: 0o644)
    }

    /// The shell line that runs the step (`$0` the binary, `$1` the policy), as root or as nobody.
    static func step(asNobody: Bool) -> String {
        (asNobody ? "setpriv --reuid=nobody --regid=nogroup --clear-groups -- " : "") + "\"$0\" run --policy \"$1\" -- sh -c 'echo ran'"
    }

    /// Shell lines that print `left PATH: ENTRIES` for every private directory still there.
    static let reportLeftovers = """
        for left in /dev/shm/stepguard-hide-* "$TMPDIR"/stepguard-hide-*; do
            [ -e "$left" ] && echo "left $left:" $(ls -A "$left")
        done
        """

    /// Runs `script` as root in a private mount namespace, after the hidden socket is bound.
    func run(_ script: String) throws -> ProgramResult {
        var environment = TestEnvironment.base
        environment["HOME"] = home
        environment["TMPDIR"] = directory.path
        let bindSocket = "python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' \"$2\" || exit 91\n"
        return try ProgramRun.start("/usr/bin/unshare", ["--mount", "--propagation", "private", "/bin/sh", "-c", bindSocket + script,
                                                        StepGuardBinary.path, policy, socket], environment: environment).wait()
    }
}
