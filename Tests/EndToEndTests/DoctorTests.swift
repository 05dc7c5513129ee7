import Foundation
import StepGuardTestSupport
import Testing

/// `stepguard doctor` on this machine, and on stand-ins for machines that lack each facility: a
/// user namespace whose nested limit is 0 (no user namespaces), a mount namespace without the pids
/// hierarchy, and libraries and the CA bundle covered by /dev/null.
@Suite struct DoctorTests {
    let directory: TemporaryDirectory
    let required: String

    init() throws {
        directory = try TemporaryDirectory()
        required = try directory.write("required.yaml", "version: 1\nisolation: required\nlimits: { processes: 32 }\n", mode: 0o644)
        chmod(directory.path, 0o755)
    }

    /// The text line of the check named `name` (its status first).
    static func line(_ output: String, _ name: String) -> String? {
        output.split(separator: "\n").map(String.init).first { $0.dropFirst(9).hasPrefix(name) }
    }

    @Test func everythingThisMachineGivesIsReported() throws {
        defer { directory.remove() }
        let run = try StepGuardBinary.run(["doctor", "--policy", required])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(Self.line(run.stdout, "user namespaces")?.hasPrefix("ok ") == true, "\(run.stdout)")
        #expect(Self.line(run.stdout, "user namespaces")?.contains("PID namespaces") == true)
        #expect(Self.line(run.stdout, "libgit2")?.contains("ok       libgit2 (scan --staged, --history): libgit2.so.") == true, "\(run.stdout)")
        #expect(Self.line(run.stdout, "libcurl")?.contains("libcurl/") == true, "\(run.stdout)")
        #expect(Self.line(run.stdout, "system trust store")?.hasPrefix("ok ") == true, "\(run.stdout)")
        #expect(Self.line(run.stdout, "Landlock") != nil)
        #expect(Self.line(run.stdout, "pids cgroup") != nil)
        #expect(run.stdout.contains("policy   \(required): a step can start here"))

        let json = try StepGuardBinary.run(["doctor", "--format", "json", "--policy", required])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let checks = try #require(object["checks"] as? [[String: Any]])
        #expect(checks.count == 7)
        #expect(checks.allSatisfy { ["ok", "missing", "limited"].contains($0["status"] as? String ?? "") })
        #expect((object["policy"] as? [String: Any])?["can_start"] as? Bool == true)
    }

    @Test func withoutUserNamespacesIsolationIsMissingAndARequiringPolicyExits69() throws {
        defer { directory.remove() }
        func doctor(_ arguments: String) throws -> ProgramResult {
            let script = "echo 0 > /proc/sys/user/max_user_namespaces && exec \"$0\" doctor \(arguments)"
            return try ProgramRun.start("/usr/bin/unshare", ["-U", "--map-current-user", "/bin/sh", "-c", script, StepGuardBinary.path]).wait()
        }
        let plain = try doctor("")
        #expect(plain.status == 0, "\(plain.stderr)")
        #expect(Self.line(plain.stdout, "user namespaces")?.hasPrefix("missing ") == true, "\(plain.stdout)")
        #expect(plain.stdout.contains("remedy: user.max_user_namespaces is 0: sudo sysctl -w user.max_user_namespaces=15000"))
        let requiring = try doctor("--policy \(required)")
        #expect(requiring.status == 69)
        // The message `run` gives for the same policy on the same machine.
        #expect(requiring.stderr.contains("isolation: required cannot be met: cannot isolate the step: creating user, network, mount and PID namespaces failed"),
                "\(requiring.stderr)")
        #expect(requiring.stdout.contains("a step would not start here (exit 69)"))
    }

    /// The isolation probe makes its private directory where `run` would: on a memory file system,
    /// else in `$TMPDIR`. With /dev/shm full and a TMPDIR that does not exist, both say so, naming
    /// it (the probe once used /tmp there, and reported isolation that `run` could not give).
    @Test(.enabled(if: getuid() == 0, "needs root to mount a full /dev/shm in a mount namespace"))
    func theIsolationProbeUsesTheTemporaryDirectoryRunWouldUse() throws {
        defer { directory.remove() }
        let missing = directory.path("no-such-tmp")
        let script = """
            mount -t tmpfs -o size=4k,nr_inodes=1 full /dev/shm || exit 90
            "$0" doctor --policy "$1"; echo "doctor $?"
            "$0" run --policy "$1" -- true; echo "run $?"
            """
        var environment = TestEnvironment.base
        environment["TMPDIR"] = missing
        let run = try ProgramRun.start("/usr/bin/unshare", ["--mount", "--propagation", "private", "/bin/sh", "-c", script,
                                                            StepGuardBinary.path, required], environment: environment).wait()
        let probe = Self.line(run.stdout, "user namespaces")
        #expect(probe?.hasPrefix("missing ") == true, "\(run.stdout) \(run.stderr)")
        #expect(probe?.contains(missing) == true, "\(run.stdout)")
        #expect(run.stdout.contains("a step would not start here (exit 69)\ndoctor 69\n"), "\(run.stdout)")
        #expect(run.stderr.contains("stepguard: an isolated step cannot be started here: "), "\(run.stderr)")
        #expect(!run.stdout.contains("run 0"), "\(run.stdout)")
        #expect(run.stderr.contains(missing), "\(run.stderr)")
    }

    @Test(.enabled(if: getuid() == 0, "needs root to change mounts"))
    func withoutThePidsHierarchyLibrariesOrCABundleEachIsMissing() throws {
        defer { directory.remove() }
        let script = """
            [ -d /sys/fs/cgroup/pids ] && umount /sys/fs/cgroup/pids
            for library in $(/sbin/ldconfig -p | awk '/libgit2\\.so\\.|libcurl\\.so\\.4 /{print $NF}'); do mount --bind /dev/null "$library"; done
            for bundle in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem; do [ -e $bundle ] && mount --bind /dev/null $bundle; done
            exec "$0" doctor --policy "$1"
            """
        let run = try ProgramRun.start("/usr/bin/unshare", ["-m", "/bin/sh", "-c", script, StepGuardBinary.path, required]).wait()
        #expect(Self.line(run.stdout, "libgit2")?.hasPrefix("missing ") == true, "\(run.stdout)")
        #expect(Self.line(run.stdout, "libcurl")?.hasPrefix("missing ") == true, "\(run.stdout)")
        #expect(Self.line(run.stdout, "system trust store")?.hasPrefix("missing ") == true, "\(run.stdout)")
        #expect(run.stdout.contains("remedy: install the runtime libgit2 package"))
        if !FileManager.default.fileExists(atPath: "/sys/fs/cgroup/pids/cgroup.procs") { return }
        // As root without a pids cgroup, limits.processes cannot be enforced: run would exit 69.
        #expect(Self.line(run.stdout, "pids cgroup")?.hasPrefix("missing ") == true, "\(run.stdout)")
        #expect(run.status == 69)
        #expect(run.stderr.contains("limits.processes: 32 cannot be met"))
    }
}

/// libgit2 is opened only by what needs it: on a machine without it (here: a mount namespace where
/// every libgit2 soname is /dev/null), scanning a directory outside any repository works, and a
/// repository's scan fails with the packages to install — never a crash.
@Suite struct WithoutLibgit2Tests {
    @Test(.enabled(if: getuid() == 0, "needs root to cover the library"))
    func aDirectoryScanNeedsNoLibgit2AndARepositoryScanSaysWhatToInstall() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try directory.write("plain/config.env", "DEPLOY_TOKEN=\(RandomSecret.githubPAT())\n")
        try directory.write("repo/config.env", "DEPLOY_TOKEN=\(RandomSecret.githubPAT())\n")
        let git = try ProgramRun.start("/usr/bin/git", ["-C", directory.path("repo"), "init", "-q"]).wait()
        try #require(git.status == 0)
        let script = """
            for library in $(/sbin/ldconfig -p | awk '/libgit2\\.so\\./{print $NF}'); do mount --bind /dev/null "$library"; done
            "$0" scan "$1"; echo "plain:$?"
            "$0" scan "$2"; echo "repo:$?"
            """
        let run = try ProgramRun.start("/usr/bin/unshare", ["-m", "/bin/sh", "-c", script, StepGuardBinary.path,
                                                            directory.path("plain"), directory.path("repo")]).wait()
        #expect(run.stdout.contains("plain:1"), "\(run.stdout) \(run.stderr)")
        #expect(run.stdout.contains("repo:2"), "\(run.stdout) \(run.stderr)")
        #expect(run.stderr.contains("install it with: apt-get install libgit2-1.5 (Debian 12), libgit2-1.7 (Ubuntu 24.04) or libgit2-1.9 (Debian 13)"))
    }
}
