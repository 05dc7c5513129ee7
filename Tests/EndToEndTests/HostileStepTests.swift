import Foundation
import StepGuardTestSupport
import Testing

/// A hostile step attacks the containment itself: it is root in its namespaces (as it is when CI
/// runs stepguard as root) or `nobody`, and tries to undo the hidden paths, to see and signal
/// processes outside the job, to rewrite the audit log, and to read stepguard's own memory. Each
/// attack is also run without isolation (or against the host directly) as a control, proving it
/// would have worked. Everything stays on this machine: no attack touches the network.
@Suite struct HostileStepTests {
    let directory: TemporaryDirectory
    let home: String
    let marker: String

    init() throws {
        directory = try TemporaryDirectory()
        chmod(directory.path, 0o755)
        home = directory.path("home")
        // A value only the hidden files hold: if it is printed, a store was un-hidden.
        marker = "hidden-marker-\(UUID().uuidString.prefix(8))"
        try directory.write("home/.aws/credentials", "[default]\n\(marker)\n", mode: 0o644)
        try directory.write("home/.npmrc", "\(marker)\n", mode: 0o644)
        chmod(home, 0o755)
        chmod(home + "/.aws", 0o755)
    }

    func policy(_ isolation: String, _ extra: String = "") throws -> String {
        try directory.write("policy-\(isolation).yaml", "version: 1\nisolation: \(isolation)\non_violation: fail\n\(extra)", mode: 0o644)
    }

    /// Runs `stepguard run` as root (this process's user) or as nobody, with HOME set to the test's home.
    func run(_ arguments: [String], asNobody: Bool) throws -> ProgramResult {
        let environment = TestEnvironment.with(["HOME": home])
        if asNobody {
            return try StepGuardBinary.runAsNobody(["run"] + arguments, environment: environment)
        }
        return try StepGuardBinary.run(["run"] + arguments, environment: environment)
    }

    /// Every way a step that holds capabilities in its namespaces could un-hide a mount.
    static let unhideAttempts = """
        umount ~/.aws; umount -l ~/.aws; umount ~/.npmrc
        mount -o remount,rw ~/.npmrc
        mkdir -p /tmp/$$-view && mount --bind ~ /tmp/$$-view && cat /tmp/$$-view/.aws/credentials
        unshare -Urm sh -c 'umount ~/.aws; umount -l ~/.npmrc; cat ~/.aws/credentials ~/.npmrc'
        nsenter -t 1 -m -U cat ~/.aws/credentials
        cat /proc/1/root$HOME/.aws/credentials
        cat ~/.aws/credentials ~/.npmrc
        true
        """

    @Test(arguments: [false, true])
    func aStepCannotUnhideCredentialStores(asNobody: Bool) throws {
        defer { directory.remove() }
        guard !asNobody || getuid() == 0 else { return }
        let extra = "filesystem: { hide: [\"~/.aws\", \"~/.npmrc\"] }\n"
        let isolated = try run(["--policy", try policy("required", extra), "-v", "--", "/bin/sh", "-c", Self.unhideAttempts], asNobody: asNobody)
        // The attempts that reach a covered store trip its tripwire (on_violation: fail lets the rest run).
        #expect(isolated.status == 77, "\(isolated.stderr)")
        #expect(isolated.stderr.contains("DENY tripwire [operation=open path=\(home)/.aws/credentials"), "\(isolated.stderr)")
        #expect(!isolated.stdout.contains(marker) && !isolated.stderr.contains(marker),
                "a hidden store was read: \(isolated.stdout) \(isolated.stderr)")
        #expect(isolated.stderr.contains("hidden: \(home)/.aws, \(home)/.npmrc"))
        let control = try run(["--policy", try policy("off"), "--", "/bin/sh", "-c", "cat ~/.aws/credentials"], asNobody: asNobody)
        #expect(control.stdout.contains(marker))
    }

    @Test(arguments: [false, true])
    func anIsolatedStepSeesAndSignalsOnlyItsOwnProcesses(asNobody: Bool) throws {
        defer { directory.remove() }
        guard !asNobody || getuid() == 0 else { return }
        // A process outside the job with a secret-looking argument, as a runner agent might have.
        let outsider = try ProgramRun.start("/usr/bin/python3", ["-c", "import time; time.sleep(300)", marker])
        defer { outsider.send(SIGKILL); _ = try? outsider.wait(timeout: 10) }
        // The pattern comes from a file: on grep's own command line it would find itself.
        let pattern = try directory.write("pattern", marker + "\n", mode: 0o644)
        let script = """
            grep -a -l -F -f \(pattern) /proc/[0-9]*/cmdline 2>/dev/null | wc -l
            kill -0 \(outsider.pid) 2>/dev/null && echo outsider-signalable
            kill -0 \(getpid()) 2>/dev/null && echo runner-signalable
            ls /proc | grep -cE '^[0-9]+$'
            """
        let isolated = try run(["--policy", try policy("required"), "--", "/bin/sh", "-c", script], asNobody: asNobody)
        let lines = isolated.stdout.split(separator: "\n").map(String.init)
        #expect(isolated.status == 0, "\(isolated.stderr)")
        #expect(lines.first == "0", "the outsider's command line is visible: \(lines)")
        #expect(!isolated.stdout.contains("signalable"), "\(lines)")
        // stepguard's init, the shell, ls and grep: nothing from the host.
        #expect(Int(lines.last ?? "") ?? 99 <= 5, "\(lines)")
        guard !asNobody else { return }  // nobody cannot signal root's processes anyway
        let control = try run(["--policy", try policy("off"), "--", "/bin/sh", "-c", script], asNobody: false)
        #expect(control.stdout.contains("outsider-signalable") && control.stdout.contains("runner-signalable"), "\(control.stdout)")
        #expect(!control.stdout.hasPrefix("0\n"))
    }

    /// In a container that masks parts of /proc, the kernel refuses the step a /proc of its own. The
    /// step is isolated all the same (its PID namespace still keeps it from signalling anything
    /// outside), and the verdict says what it can see. A bind mount over /proc/timer_list in a
    /// private mount namespace stands in for the container's masks.
    @Test(.enabled(if: getuid() == 0, "needs root to mask /proc"))
    func whereTheStepCannotHaveItsOwnProcTheVerdictSaysSo() throws {
        defer { directory.remove() }
        let outsider = try ProgramRun.start("/usr/bin/python3", ["-c", "import time; time.sleep(300)"])
        defer { outsider.send(SIGKILL); _ = try? outsider.wait(timeout: 10) }
        let policy = try policy("required")
        let run = try ProgramRun.start("/usr/bin/unshare", ["-m", "sh", "-c",
            "mount --bind /dev/null /proc/timer_list && exec \"$0\" run --policy \"$1\" -- sh -c \"$2\"",
            StepGuardBinary.path, policy, "kill -0 \(outsider.pid) 2>/dev/null && echo outsider-signalable; echo done"]).wait()
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout == "done\n")
        #expect(run.stderr.contains("isolated, but the host's /proc is visible"), "\(run.stderr)")
    }

    /// Hidden files are covered read-only. An unprivileged user namespace may not change the atime
    /// flags a mount inherited, so the cover keeps them: on a `noatime` filesystem (a private tmpfs
    /// here) hiding works for nobody too, and the cover cannot be written.
    @Test(.enabled(if: getuid() == 0, "needs root to mount the noatime filesystem"))
    func hiddenFilesOnANoatimeFilesystemAreCoveredReadOnly() throws {
        defer { directory.remove() }
        let script = """
            mount -t tmpfs -o noatime,mode=1777 tmpfs "$0" && mkdir -m 755 "$0/home" && echo "$1" > "$0/home/.npmrc" && chmod 644 "$0/home/.npmrc" \
              && printf 'version: 1\nisolation: required\ntripwires: off\n' > "$0/p.yaml" \
              && exec setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME="$0/home" TMPDIR="$0" "$2" run --policy "$0/p.yaml" -- \
                 sh -c 'cat ~/.npmrc; echo written > ~/.npmrc || echo refused'
            """
        let mountPoint = directory.path("noatime")
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let run = try ProgramRun.start("/usr/bin/unshare", ["-m", "/bin/sh", "-c", script, mountPoint, marker, StepGuardBinary.path]).wait()
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout == "refused\n", "\(run.stdout)")
    }

    @Test func anIsolatedStepCannotRewriteTheAuditLog() throws {
        defer { directory.remove() }
        let log = directory.path("audit.jsonl")
        let policy = try policy("required", "egress: { default: deny }\n")
        let script = """
            curl -s -o /dev/null -w '%{http_code}\\n' http://denied.invalid/
            echo '{"type":"exit","decision":"allow","forged":true}' >> \(log)
            : > \(log); rm -f \(log); mv \(log) \(log).moved
            chmod 666 \(log) && echo forged >> \(log)
            true
            """
        let isolated = try run(["--policy", policy, "--audit-log", log, "--", "/bin/sh", "-c", script], asNobody: false)
        #expect(isolated.status == 77, "\(isolated.stderr)")
        #expect(isolated.stdout == "403\n")
        let records = try directory.read("audit.jsonl")
        #expect(!records.contains("forged"), "\(records)")
        #expect(records.contains("\"decision\":\"deny\"") && records.contains("denied.invalid"))
        #expect(!FileManager.default.fileExists(atPath: log + ".moved"))
        // Control: without isolation the same user can write to the file.
        let control = try run(["--policy", try self.policy("off"), "--audit-log", log, "--", "/bin/sh", "-c",
                               "echo forged >> \(log)"], asNobody: false)
        #expect(control.status == 0)
        #expect(try directory.read("audit.jsonl").contains("forged"))
    }

    /// Without isolation the step can write to the log's file (same user); stepguard notices when
    /// what it wrote was changed or the file replaced, and that is a violation (exit 77), whatever
    /// the rest of the run did. Lines merely appended by others are not a change (runs may share a log).
    @Test(arguments: [
        ("grep -v deny LOG > LOG.tmp; cat LOG.tmp > LOG", "was truncated"),
        ("sed -i 's/deny/allow/' LOG", "was replaced"),
        ("mv LOG LOG.old; echo '{}' > LOG", "was replaced"),
        ("rm LOG", "was removed or moved"),
        ("sed 's/deny/allow/' LOG > LOG.tmp; dd if=LOG.tmp of=LOG conv=notrunc status=none", "was rewritten"),
    ])
    func aStepThatChangesTheAuditLogWithoutIsolationIsAViolation(change: String, says: String) throws {
        defer { directory.remove() }
        let log = directory.path("audit.jsonl")
        let policy = try policy("off", "egress: { default: deny }\n")
        let script = "curl -s -o /dev/null http://denied.invalid/; " + change.replacingOccurrences(of: "LOG", with: log)
        let run = try run(["--policy", policy, "--audit-log", log, "--", "/bin/sh", "-c", script], asNobody: false)
        #expect(run.status == 77, "\(run.stderr)")
        #expect(run.stderr.contains("DENY isolation") && run.stderr.contains(says), "\(run.stderr)")
        // A changed file records it too; a replaced or removed one cannot be trusted to (stepguard
        // appends to the file it opened): stderr and the exit status carry the verdict.
        if says == "was truncated" || says == "was rewritten" {
            #expect(try directory.read("audit.jsonl").contains("built-in: audit log integrity"))
        }
    }

    @Test func linesAppendedByOthersAreNotAChange() throws {
        defer { directory.remove() }
        let log = directory.path("audit.jsonl")
        let run = try run(["--policy", try policy("off"), "--audit-log", log, "--", "/bin/sh", "-c", "echo '{\"other\":1}' >> \(log)"],
                          asNobody: false)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(!run.stderr.contains("audit log"))
    }

    /// Without isolation a step of the same uid could read stepguard's environment and memory and
    /// attach to it; stepguard is not dumpable, so the kernel refuses. (root would pass these
    /// checks: a root step without isolation is out of reach of any same-host protection.)
    @Test func aStepOfTheSameUserCannotReadOrAttachToStepguard() throws {
        defer { directory.remove() }
        guard getuid() == 0 else { return }
        let script = """
            import ctypes, os
            parent = os.getppid()
            for what in ("environ", "mem", "maps"):
                try:
                    with open(f"/proc/{parent}/{what}", "rb") as f:
                        f.read(1)
                    print(what, "readable")
                except OSError as error:
                    print(what, "refused", error.errno)
            libc = ctypes.CDLL(None, use_errno=True)
            PTRACE_ATTACH = 16
            result = libc.ptrace(PTRACE_ATTACH, parent, None, None)
            print("ptrace", "attached" if result == 0 else f"refused {ctypes.get_errno()}")
            """
        let guarded = try run(["--policy", try policy("off"), "--", "python3", "-c", script], asNobody: true)
        #expect(guarded.status == 0, "\(guarded.stderr)")
        #expect(guarded.stdout == "environ refused 13\nmem refused 13\nmaps refused 13\nptrace refused 1\n", "\(guarded.stdout)")
        // Control: the same step against an ordinary parent of the same user.
        let environment = TestEnvironment.with(["HOME": home])
        let readParent = "import os; open(f'/proc/{os.getppid()}/environ', 'rb').read(1); print('environ readable')"
        let direct = try ProgramRun.start("/usr/bin/setpriv", StepGuardBinary.asNobody + ["/bin/sh", "-c", "python3 -c \"$0\"; true", readParent],
                                          environment: environment).wait()
        #expect(direct.stdout.hasPrefix("environ readable"), "\(direct.stdout) \(direct.stderr)")
    }
}
