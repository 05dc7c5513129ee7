import Foundation
import StepGuardTestSupport
import Testing

/// A named pipe the step writes to when it is ready: the test blocks on it instead of sleeping.
struct ReadySignal {
    let path: String

    init(in directory: TemporaryDirectory) throws {
        path = directory.path("ready.fifo")
        guard mkfifo(path, 0o600) == 0 else { throw TestSupportError.timedOut("mkfifo", 0) }
    }

    /// Blocks until a writer opens, writes and closes the pipe; returns what it wrote.
    func wait() throws -> String {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        return String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
    }
}

func processIsGone(_ pid: pid_t) -> Bool {
    kill(pid, 0) != 0 && errno == ESRCH
}

@Suite struct SignalTests {
    @Test(arguments: [SIGTERM, SIGINT, SIGHUP, SIGQUIT])
    func signalsAreForwardedToTheStep(signal: Int32) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let ready = try ReadySignal(in: directory)
        let name = ["\(SIGTERM)": "TERM", "\(SIGINT)": "INT", "\(SIGHUP)": "HUP", "\(SIGQUIT)": "QUIT"]["\(signal)"]!
        let script = "trap 'echo got-\(name); exit 42' \(name); echo ready > \(ready.path); while :; do sleep 1 & wait $!; done"
        let run = try ProgramRun.start(StepGuardBinary.path, ["run", "--", "/bin/sh", "-c", script])
        _ = try ready.wait()
        run.send(signal)
        let result = try run.wait(timeout: 30)
        #expect(result.stdout.contains("got-\(name)"))
        #expect(result.status == 42)
    }

    /// The step's descendants hold `alive.fifo` open for writing (fd 9): once every one of them is
    /// gone, the test reads end-of-file. Without isolation their host pids are checked too (an
    /// isolated step's pids are those of its own PID namespace).
    struct Descendants {
        let directory: TemporaryDirectory
        let alive: String
        let pids: String
        let reader: Int32

        init(in directory: TemporaryDirectory) throws {
            self.directory = directory
            alive = directory.path("alive.fifo")
            pids = directory.path("pids")
            try #require(mkfifo(alive, 0o600) == 0)
            reader = open(alive, O_RDONLY | O_NONBLOCK)
            try #require(reader >= 0)
        }

        /// Expects `count` descendants to have been recorded and every one of them to be gone.
        func expectAllGone(count: Int, isolation: String) throws {
            defer { close(reader) }
            let recorded = try directory.read("pids").split(separator: "\n").compactMap { pid_t($0) }
            #expect(recorded.count == count)
            #expect((try? FailClosedTests.read(openFIFO: reader, path: alive, timeout: 10)) != nil,
                    "a descendant still holds alive.fifo 10 s after stepguard exited")
            guard isolation == "off" else { return }
            for pid in recorded { #expect(processIsGone(pid), "descendant \(pid) survived") }
        }
    }

    @Test(arguments: ["off", "required"])
    func stoppingTheStepLeavesNoDescendantBehind(isolation: String) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let ready = try ReadySignal(in: directory)
        let descendants = try Descendants(in: directory)
        let policy = try directory.write("policy.yaml", "version: 1\ngrace_period: 1s\nisolation: \(isolation)\n")
        let pids = descendants.pids
        // A grandchild in the step's group, one that left the group (setsid), and one that ignores SIGTERM.
        let script = """
        exec 9> \(descendants.alive)
        sleep 300 & echo $! >> \(pids)
        setsid sleep 300 & echo $! >> \(pids)
        sh -c 'trap "" TERM; echo $$ >> \(pids); while :; do sleep 1; done' &
        while [ $(wc -l < \(pids)) -lt 3 ]; do :; done
        echo ready > \(ready.path)
        wait
        """
        let run = try ProgramRun.start(StepGuardBinary.path, ["run", "--policy", policy, "--", "/bin/sh", "-c", script])
        _ = try ready.wait()
        run.send(SIGTERM)
        let result = try run.wait(timeout: 30)
        #expect(result.status == 143)
        try descendants.expectAllGone(count: 3, isolation: isolation)
    }

    @Test(arguments: ["off", "required"])
    func leftoversOfAFinishedStepAreReaped(isolation: String) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let descendants = try Descendants(in: directory)
        let policy = try directory.write("policy.yaml", "version: 1\nisolation: \(isolation)\n")
        let pids = descendants.pids
        let script = "exec 9> \(descendants.alive); setsid sleep 300 & echo $! > \(pids); sleep 300 & echo $! >> \(pids); exit 0"
        let result = try StepGuardBinary.run(["run", "--policy", policy, "--", "/bin/sh", "-c", script])
        #expect(result.status == 0)
        try descendants.expectAllGone(count: 2, isolation: isolation)
    }
}
