import Foundation
import StepGuardTestSupport
import Testing

/// `tripwires:` through the built binary: a step that reaches for a hidden credential store is
/// killed at once (or fails, or is only recorded in audit mode), whatever it finds there; a step
/// that works in its workspace and reads ordinary files under $HOME trips nothing. Run as this
/// process's user and, when that is root, as nobody.
@Suite struct TripwireTests {
    let directory: TemporaryDirectory
    let home: String
    /// A value only the hidden files hold: if it is printed, a store was read.
    let marker: String

    init() throws {
        directory = try TemporaryDirectory()
        chmod(directory.path, 0o777)  // nobody writes its audit log here
        home = directory.path("home")
        marker = "hidden-marker-\(UUID().uuidString.prefix(8))"
        try directory.write("home/.aws/credentials", "[default]\n\(marker)\n", mode: 0o644)
        try directory.write("home/.aws/config", "[default]\n", mode: 0o644)
        try directory.write("home/.ssh/keys/deploy", "\(marker)\n", mode: 0o644)
        try directory.write("home/.npmrc", "\(marker)\n", mode: 0o644)
        try directory.write("home/notes.txt", "ordinary\n", mode: 0o644)
        try directory.write("home/workspace/src/main.c", "int main(void) { return 0; }\n", mode: 0o644)
        for path in ["home", "home/.aws", "home/.ssh", "home/.ssh/keys", "home/workspace", "home/workspace/src"] {
            chmod(directory.path(path), 0o755)
        }
    }

    func policy(_ body: String) throws -> String {
        try directory.write("policy-\(UUID().uuidString.prefix(6)).yaml", "version: 1\n\(body)", mode: 0o644)
    }

    /// Runs `stepguard run` with HOME at the test's home, as this user or as nobody (nil when
    /// nobody is asked for but the tests do not run as root).
    func run(_ arguments: [String], asNobody: Bool = false) throws -> ProgramResult? {
        var environment = TestEnvironment.base
        environment["HOME"] = home
        if asNobody {
            guard getuid() == 0 else { return nil }
            return try ProgramRun.start("/usr/bin/setpriv", ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--",
                                                             StepGuardBinary.path, "run"] + arguments,
                                        environment: environment).wait()
        }
        return try StepGuardBinary.run(["run"] + arguments, environment: environment)
    }

    /// The audit log's events of type `tripwire`.
    func tripwireEvents(_ log: String) throws -> [[String: Any]] {
        try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").compactMap { line in
            try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        }.filter { $0["type"] as? String == "tripwire" }
    }

    /// Runs a Python step that does `action` (a statement), then reports every 5 ms how long it
    /// has been alive since: its last report bounds the time from the action to the kill. Returns
    /// the run and that time, or nil when nobody is asked for but the tests do not run as root.
    func killAfter(_ action: String, log: String, asNobody: Bool) throws -> (result: ProgramResult, lived: Double)? {
        let step = """
            import os, sys, time
            start = time.monotonic()
            try:
                \(action)
            except OSError as error:
                print("refused", error, flush=True)
            while True:
                print(f"alive {time.monotonic() - start:.4f}", flush=True)
                time.sleep(0.005)
            """
        let arguments = ["--policy", try policy("isolation: required\n"), "--audit-log", log, "--", "python3", "-c", step]
        guard let result = try run(arguments, asNobody: asNobody) else { return nil }
        let alive = result.stdout.split(separator: "\n").compactMap { $0.hasPrefix("alive ") ? Double($0.dropFirst(6)) : nil }
        return (result, alive.last ?? 0)
    }

    /// The step opens ~/.aws/credentials and is killed within 100 ms.
    @Test(arguments: [false, true])
    func openingAHiddenCredentialFileKillsTheStepWithin100ms(asNobody: Bool) throws {
        defer { directory.remove() }
        let log = directory.path("audit-\(asNobody).jsonl")
        guard let (result, lived) = try killAfter(#"print(open(os.path.expanduser("~/.aws/credentials")).read(), flush=True)"#,
                                                  log: log, asNobody: asNobody) else { return }
        #expect(result.status == 77, "\(result.stderr)")
        #expect(!result.stdout.contains(marker))
        #expect(lived < 0.1, "the step lived \(lived) s after the open")
        #expect(result.stderr.contains("verdict: BLOCKED — tripwire: the step tried to open \(home)/.aws/credentials"), "\(result.stderr)")
        #expect(result.stderr.contains("step killed by signal 9"))
        let denied = try tripwireEvents(log).filter { $0["decision"] as? String == "deny" }
        #expect(denied.first?["path"] as? String == "\(home)/.aws/credentials")
        #expect(denied.first?["operation"] as? String == "open")
        #expect(denied.first?["rule"] as? String == "tripwires: \(home)/.aws")
        #expect((denied.first?["processes"] as? String)?.contains("python3") == true, "\(denied)")
    }

    /// Every way of touching a store trips: listing it, opening a name only the host has (a decoy
    /// stands in for it), a hidden file, a nested directory, through a symbolic link, changing it.
    @Test(arguments: [
        ("ls ~/.aws", "list", "/.aws"),
        ("cat ~/.npmrc", "open", "/.npmrc"),
        ("ls ~/.ssh/keys", "list", "/.ssh/keys"),
        ("cat ~/.ssh/keys/deploy", "open", "/.ssh/keys/deploy"),
        ("link=$(mktemp -u) && ln -s ~/.aws/config $link && cat $link; rm -f $link", "open", "/.aws/config"),
        ("rm -f ~/.aws/config", "delete", "/.aws/config"),  // the names filter sees the call before inotify the change
        ("touch ~/.aws/new", "create", "/.aws/new"),
    ])
    func touchingAStoreInAnyWayTrips(command: String, operation: String, path: String) throws {
        defer { directory.remove() }
        let log = directory.path("audit.jsonl")
        let result = try #require(try run(["--policy", try policy("isolation: required\non_violation: fail\n"), "--audit-log", log,
                                           "--", "sh", "-c", command]))
        #expect(result.status == 77, "\(command): \(result.stderr)")
        let denied = try tripwireEvents(log).filter { $0["decision"] as? String == "deny" }
        #expect(denied.first?["operation"] as? String == operation, "\(command): \(denied)")
        #expect(denied.first?["path"] as? String == home + path, "\(command): \(denied)")
        #expect(!result.stdout.contains(marker))
    }

    /// Writing to a hidden file (`echo x > ~/.npmrc`) used to fail on its read-only cover (EROFS)
    /// before inotify saw an open, and removing one on its mount point (EBUSY): nothing tripped.
    /// Now the write-open reaches a writable cover and the removal the names filter: the step is
    /// killed at once, as root in its namespace and as nobody; the hidden file is neither shown
    /// nor changed.
    @Test(arguments: [(#"open(os.path.expanduser("~/.npmrc"), "w").write("overwritten")"#, "open"),
                      (#"os.unlink(os.path.expanduser("~/.npmrc"))"#, "delete")], [false, true])
    func writingOrRemovingAHiddenFileKillsTheStepWithin100ms(attempt: (action: String, operation: String), asNobody: Bool) throws {
        defer { directory.remove() }
        try expectKilledWithin100ms(after: attempt.action, operation: attempt.operation, path: "\(home)/.npmrc", asNobody: asNobody)
    }

    /// Runs ``killAfter(_:log:asNobody:)`` with `action` and expects the step killed within 100 ms,
    /// its first trip `operation` on `path`, and ~/.npmrc as it was.
    func expectKilledWithin100ms(after action: String, operation: String, path: String, asNobody: Bool) throws {
        let log = directory.path("audit-\(operation)-\(asNobody).jsonl")
        guard let (result, lived) = try killAfter(action, log: log, asNobody: asNobody) else { return }
        #expect(result.status == 77, "\(result.stderr)")
        #expect(lived < 0.1, "the step lived \(lived) s after the \(operation)")
        #expect(result.stderr.contains("step killed by signal 9"), "\(result.stderr)")
        let denied = try tripwireEvents(log).filter { $0["decision"] as? String == "deny" }
        #expect(denied.first?["path"] as? String == path, "\(denied)")
        #expect(denied.first?["operation"] as? String == operation, "\(denied)")
        #expect(try String(contentsOfFile: "\(home)/.npmrc", encoding: .utf8) == "\(marker)\n", "the hidden file is unchanged")
    }

    /// Every way of writing to or changing a hidden file or a hidden directory trips, naming what was
    /// done, as root in the namespace and as nobody; the hidden files stay as they were.
    @Test(arguments: [
        ("echo x > ~/.npmrc", "write", "/.npmrc"),
        ("touch ~/.npmrc", "open", "/.npmrc"),
        ("chmod 600 ~/.npmrc", "change attributes", "/.npmrc"),
        ("python3 -c 'import os; os.truncate(os.path.expanduser(\"~/.npmrc\"), 0)'", "write", "/.npmrc"),
        ("python3 -c 'import os; os.close(os.open(os.path.expanduser(\"~/.npmrc\"), os.O_WRONLY | os.O_CREAT))'", "write", "/.npmrc"),
        ("link=$(mktemp -u) && ln -s ~/.npmrc $link && echo x > $link; rm -f $link", "write", "/.npmrc"),
        ("echo x > ~/.aws/credentials", "write", "/.aws/credentials"),
        ("python3 -c 'import os; os.truncate(os.path.expanduser(\"~/.aws/credentials\"), 0)'", "write", "/.aws/credentials"),
        ("mkdir ~/.aws/x", "create", "/.aws/x"),
        ("mv ~/.aws/config ~/.aws/moved", "rename", "/.aws/config"),
        ("rm ~/.ssh/keys/deploy", "delete", "/.ssh/keys/deploy"),
        ("ln ~/.aws/config ~/.aws/hard", "create", "/.aws/hard"),
        // Refused by the kernel on the cover's mount point (EBUSY) or across mounts (EXDEV) before
        // inotify sees anything: seen by the names filter.
        ("rm -f ~/.npmrc", "delete", "/.npmrc"),
        ("cd ~ && rm -f .npmrc", "delete", "/.npmrc"),
        ("mv ~/.npmrc ~/moved", "rename", "/.npmrc"),
        ("t=$(mktemp) && mv $t ~/.npmrc", "rename", "/.npmrc"),
        ("ln ~/.npmrc ~/hard", "link", "/.npmrc"),
        ("ln ~/.aws/credentials ~/hard", "link", "/.aws/credentials"),
        ("t=$(mktemp) && ln $t ~/.aws/new", "link", "/.aws/new"),
        ("rmdir ~/.aws", "delete", "/.aws"),
        ("mv ~/.aws ~/aws", "rename", "/.aws"),
        ("link=$(mktemp -u) && ln -s ~ $link && rm -f $link/.npmrc", "delete", "/.npmrc"),
        ("cd ~ && rm -f /proc/self/cwd/.npmrc", "delete", "/.npmrc"),
        ("cd ~/.aws && python3 -c 'import os; os.rename(\"credentials\", \"/tmp/stolen\")'", "rename", "/.aws/credentials"),
    ], [false, true])
    func writingToAStoreInAnyWayTrips(attempt: (command: String, operation: String, path: String), asNobody: Bool) throws {
        defer { directory.remove() }
        let log = directory.path("audit-\(asNobody).jsonl")
        guard let result = try run(["--policy", try policy("isolation: required\non_violation: fail\n"), "--audit-log", log,
                                    "--", "sh", "-c", attempt.command], asNobody: asNobody) else { return }
        #expect(result.status == 77, "\(attempt.command): \(result.stderr)")
        let denied = try tripwireEvents(log).filter { $0["decision"] as? String == "deny" }
        #expect(denied.contains { $0["operation"] as? String == attempt.operation && $0["path"] as? String == home + attempt.path },
                "\(attempt.command): \(denied)")
        #expect(!result.stdout.contains(marker))
        #expect(try String(contentsOfFile: "\(home)/.npmrc", encoding: .utf8) == "\(marker)\n")
        #expect(try String(contentsOfFile: "\(home)/.aws/credentials", encoding: .utf8) == "[default]\n\(marker)\n")
        #expect(try String(contentsOfFile: "\(home)/.ssh/keys/deploy", encoding: .utf8) == "\(marker)\n")
    }

    /// A 64-bit step that removes a hidden file through the i386 entry (`int 0x80`, where system
    /// calls have other numbers) trips all the same: the names filter knows both tables.
    @Test func removingAHiddenFileThroughTheI386EntryTrips() throws {
        defer { directory.remove() }
        let compiler = try #require(["/usr/bin/cc", "/usr/bin/clang", "/usr/bin/gcc"].first { FileManager.default.isExecutableFile(atPath: $0) },
                                    "no C compiler")
        let source = try directory.write("i386-unlink.c", """
            #include <stdio.h>
            #include <string.h>
            #include <sys/mman.h>
            int main(int argc, char **argv) {
                // int 0x80 passes 32-bit pointers: the path goes below 4 GiB.
                char *path = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
                if (argc != 2 || path == MAP_FAILED) return 64;
                strncpy(path, argv[1], 4095);
                long result;
                __asm__ volatile ("int $0x80" : "=a"(result) : "a"(10), "b"((unsigned)(unsigned long)path) : "memory");  // unlink
                printf("i386 unlink: %ld\\n", result);
                return 0;
            }
            """, mode: 0o644)
        let program = directory.path("i386-unlink")
        let build = try ProgramRun.start(compiler, ["-O1", "-o", program, source]).wait()
        try #require(build.status == 0, "\(build.stderr)")
        chmod(program, 0o755)
        let log = directory.path("audit.jsonl")
        let result = try #require(try run(["--policy", try policy("isolation: required\non_violation: fail\n"), "--audit-log", log,
                                           "--", program, "\(home)/.npmrc"]))
        #expect(result.status == 77, "\(result.stderr)")
        #expect(result.stdout == "i386 unlink: -16\n", "refused on the cover (EBUSY) all the same: \(result.stdout)")
        let denied = try tripwireEvents(log).filter { $0["decision"] as? String == "deny" }
        #expect(denied.contains { $0["operation"] as? String == "delete" && $0["path"] as? String == "\(home)/.npmrc" }, "\(denied)")
        #expect((denied.first?["process"] as? String)?.hasSuffix(" i386-unlink") == true, "\(denied)")
    }

    /// Where the names filter cannot be installed (here: stepguard runs inside another isolated
    /// step with tripwires, whose filter already has the one listener a process may have), the
    /// step runs with the other tripwires and the `tripwire` event says what is not watched, and why.
    @Test func whenTheNamesFilterIsRefusedTheEventSaysSo() throws {
        defer { directory.remove() }
        let outerSecret = try directory.write("outer-secret", "outer\n", mode: 0o644)
        let outer = try policy("isolation: required\nfilesystem: { hide: [\"\(outerSecret)\"] }\n")
        let log = directory.path("inner.jsonl")
        let result = try #require(try run(["--policy", outer, "--", StepGuardBinary.path, "run", "--policy", try policy("isolation: required\n"),
                                           "--audit-log", log, "--", "sh", "-c", "cat ~/.aws/credentials; echo inner-done"]))
        #expect(result.status == 77, "the inner step's open trips as before: \(result.stderr)")
        let armed = try tripwireEvents(log).first { $0["decision"] as? String == "allow" }
        #expect((armed?["reason"] as? String)?.contains("removing, renaming, linking, making or mounting on a hidden path itself is not watched: "
                                                        + "the seccomp filter that shows them to stepguard could not be installed: Device or resource busy") == true,
                "\(String(describing: armed))")
    }

    /// Listing the workspace and $HOME, reading ordinary files, looking at a store's name without
    /// opening it: nothing trips.
    @Test(arguments: [false, true])
    func aStepThatWorksInItsWorkspaceTripsNothing(asNobody: Bool) throws {
        defer { directory.remove() }
        let log = directory.path("audit-\(asNobody).jsonl")
        let step = "ls -la ~ ~/workspace >/dev/null; find ~/workspace -type f | xargs cat; cat ~/notes.txt; test -e ~/.aws && echo exists; "
            + "t=$(mktemp -d) && touch $t/a && mv $t/a $t/b && ln $t/b $t/c && rm $t/b $t/c && rmdir $t"
        guard let result = try run(["--policy", try policy("isolation: required\n"), "--audit-log", log, "--", "sh", "-c", step],
                                   asNobody: asNobody) else { return }
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "int main(void) { return 0; }\nordinary\nexists\n")
        let events = try tripwireEvents(log)
        #expect(events.count == 1)
        #expect(events.first?["decision"] as? String == "allow")
        #expect(events.first?["enforced"] as? Bool == true)
    }

    /// A hidden daemon socket (here a stand-in for the Docker socket, made by the test): connecting
    /// opens nothing, so no inotify event comes; the socket stepguard covers it with trips instead,
    /// and the step reaches nothing behind it. With tripwires off, the connection is only refused.
    @Test(arguments: [false, true])
    func connectingToAHiddenSocketKillsTheStep(asNobody: Bool) throws {
        defer { directory.remove() }
        let socketPath = directory.path("home/docker.sock")
        let daemon = try ProgramRun.start("/usr/bin/python3", ["-c", """
            import os, socket
            s = socket.socket(socket.AF_UNIX); s.bind("\(socketPath)"); os.chmod("\(socketPath)", 0o777); s.listen()
            while True:
                c, _ = s.accept(); c.sendall(b"daemon"); c.close()
            """])
        defer { daemon.send(SIGKILL); _ = try? daemon.wait(timeout: 5) }
        for _ in 0..<500 where !FileManager.default.fileExists(atPath: socketPath) { usleep(10_000) }
        let step = """
            import socket, time
            start = time.monotonic()
            try:
                s = socket.socket(socket.AF_UNIX); s.connect("\(socketPath)"); print("got", s.recv(10), flush=True)
            except OSError as error:
                print("refused", type(error).__name__, flush=True)
            while True:
                print(f"alive {time.monotonic() - start:.4f}", flush=True)
                time.sleep(0.005)
            """
        let log = directory.path("audit-socket-\(asNobody).jsonl")
        let hide = "isolation: required\nfilesystem: { hide: [\"\(socketPath)\"] }\n"
        guard let result = try run(["--policy", try policy(hide), "--audit-log", log, "--", "python3", "-c", step], asNobody: asNobody) else { return }
        #expect(result.status == 77, "\(result.stderr)")
        #expect(!result.stdout.contains("daemon"), "the daemon behind the hidden socket was not reached: \(result.stdout)")
        let alive = result.stdout.split(separator: "\n").compactMap { $0.hasPrefix("alive ") ? Double($0.dropFirst(6)) : nil }
        #expect((alive.last ?? 0) < 0.1, "the step lived \(alive.last ?? 0) s after the connect")
        let denied = try tripwireEvents(log).filter { $0["decision"] as? String == "deny" }
        #expect(denied.first?["operation"] as? String == "connect to", "\(denied)")
        #expect((denied.first?["process"] as? String)?.hasSuffix(" python3") == true, "the connecting process is named: \(denied)")
        #expect(denied.first?["path"] as? String == socketPath)
        #expect((denied.first?["processes"] as? String)?.contains("python3") == true, "\(denied)")
        #expect(result.stderr.contains("the step tried to connect to \(socketPath)"), "\(result.stderr)")
        // Control: tripwires off — the socket is covered all the same, the connection refused, nothing killed.
        let off = try #require(try run(["--policy", try policy(hide + "tripwires: off\n"), "--", "sh", "-c",
                                        "python3 -c 'import socket; s = socket.socket(socket.AF_UNIX); s.connect(\"\(socketPath)\")' 2>&1 | tail -1; echo finished"]))
        #expect(off.status == 0 && off.stdout.contains("ConnectionRefusedError") && off.stdout.hasSuffix("finished\n"), "\(off.stdout) \(off.stderr)")
    }

    @Test func onViolationFailLetsTheStepFinishAndExits77() throws {
        defer { directory.remove() }
        let result = try #require(try run(["--policy", try policy("isolation: required\non_violation: fail\n"), "--",
                                           "sh", "-c", "cat ~/.aws/credentials; echo finished"]))
        #expect(result.status == 77)
        #expect(result.stdout == "finished\n")
        #expect(result.stderr.contains("the step will fail (on_violation: fail)"))
    }

    @Test func auditModeRecordsTheTripAndStopsNothing() throws {
        defer { directory.remove() }
        let result = try #require(try run(["--policy", try policy("isolation: required\nmode: audit\n"), "--",
                                           "sh", "-c", "cat ~/.aws/credentials; sleep 0.3; echo finished"]))
        #expect(result.status == 0)
        #expect(result.stdout == "finished\n")
        #expect(result.stderr.contains("would block — tripwire: the step tried to open \(home)/.aws/credentials"), "\(result.stderr)")
    }

    @Test func tripwiresOffTripsNothing() throws {
        defer { directory.remove() }
        let result = try #require(try run(["--policy", try policy("isolation: required\ntripwires: off\n"), "--",
                                           "sh", "-c", "cat ~/.aws/credentials; ls -A ~/.aws; echo finished"]))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "finished\n", "no decoys either")
    }

    /// The step holds no descriptor of the watch, and cannot see the process that reads it.
    @Test func theWatchIsOutOfTheStepsReach() throws {
        defer { directory.remove() }
        let step = "ls -l /proc/[0-9]*/fd/ 2>/dev/null | grep -c inotify; ls /proc | grep -cE '^[0-9]+$'"
        let result = try #require(try run(["--policy", try policy("isolation: required\n"), "--", "sh", "-c", step]))
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.first == "0", "\(result.stdout)")
        #expect(Int(lines.last ?? "") ?? 99 <= 5, "only the step's own processes and stepguard's init: \(result.stdout)")
    }

    /// Without isolation the tripwires cannot be enforced: the verdict, the audit log and (in
    /// GitHub Actions) the summary say so, as they say the step is not isolated.
    @Test func withoutIsolationTheVerdictSaysTripwiresAreNotEnforced() throws {
        defer { directory.remove() }
        let log = directory.path("audit.jsonl")
        let summary = directory.path("summary.md")
        var environment = TestEnvironment.base
        environment["HOME"] = home
        environment["GITHUB_ACTIONS"] = "true"
        environment["GITHUB_STEP_SUMMARY"] = summary
        let result = try StepGuardBinary.run(["run", "--policy", try policy("isolation: off\n"), "--audit-log", log, "--",
                                              "sh", "-c", "cat ~/.aws/credentials >/dev/null; echo finished"], environment: environment)
        #expect(result.status == 0)
        #expect(try String(contentsOfFile: summary, encoding: .utf8).contains("| allow | tripwire | enforced=false | tripwires are not enforced"))
        #expect(result.stderr.contains("not isolated (isolation: off), tripwires not enforced"), "\(result.stderr)")
        let events = try tripwireEvents(log)
        #expect(events.count == 1)
        #expect(events.first?["enforced"] as? Bool == false)
        #expect((events.first?["reason"] as? String)?.hasPrefix("tripwires are not enforced: the step is not isolated") == true)
    }

    /// ... and the GitHub summary links to the remedy (issue #17).
    @Test func whenIsolationFallsBackTheVerdictSaysTripwiresAreNotEnforced() throws {
        defer { directory.remove() }
        let auto = try policy("isolation: auto\n")
        let summary = directory.path("summary.md")
        let script = "echo 0 > /proc/sys/user/max_user_namespaces && exec \"$0\" run --policy \"$1\" -- true"
        let result = try ProgramRun.start("/usr/bin/unshare", ["-U", "--map-current-user", "/bin/sh", "-c", script,
                                                               StepGuardBinary.path, auto],
                                          environment: TestEnvironment.with(["GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": summary])).wait()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("NOT isolated (isolation: auto fell back to proxy variables only), tripwires not enforced"),
                "\(result.stderr)")
        let written = try String(contentsOfFile: summary, encoding: .utf8)
        #expect(written.contains("**Not isolated**") && written.contains("](https://github.com/stepguard/stepguard#isolation)"), "\(written)")
    }

    /// An isolated step's summary carries no such warning.
    @Test func anIsolatedStepsSummaryHasNoFallbackWarning() throws {
        defer { directory.remove() }
        let summary = directory.path("summary.md")
        let result = try StepGuardBinary.run(["run", "--policy", try policy("isolation: required\n"), "--", "true"],
                                             environment: TestEnvironment.with(["GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": summary]))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!(try String(contentsOfFile: summary, encoding: .utf8)).contains("Not isolated"))
    }

    /// When the kernel refuses the watches (here: no inotify instance allowed in the user namespace
    /// stepguard runs in), the step still runs isolated with its stores hidden — tripwires never
    /// cost the isolation — and the verdict and the audit log say tripwires are not enforced.
    @Test func whenWatchesAreRefusedTheStepStaysIsolatedAndTheVerdictSaysSo() throws {
        defer { directory.remove() }
        let required = try policy("isolation: required\n")
        for file in [directory.path, required] { chmod(file, 0o755) }
        let log = directory.path("audit.jsonl")
        let script = "echo 0 > /proc/sys/user/max_inotify_instances && HOME=\"$3\" exec \"$0\" run --policy \"$1\" --audit-log \"$2\" -- sh -c 'cat ~/.aws/credentials; echo finished'"
        let result = try ProgramRun.start("/usr/bin/unshare", ["-U", "--map-current-user", "/bin/sh", "-c", script,
                                                               StepGuardBinary.path, required, log, home]).wait()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "finished\n", "hidden all the same: \(result.stdout)")
        #expect(result.stderr.contains("; isolated, tripwires not enforced (exit 0)"), "\(result.stderr)")
        let events = try tripwireEvents(log)
        #expect(events.first?["enforced"] as? Bool == false)
        #expect((events.first?["reason"] as? String)?.contains("max_user_watches or max_user_instances") == true, "\(events)")
    }
}
