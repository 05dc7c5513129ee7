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

    @Test func stoppingTheStepLeavesNoDescendantBehind() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let ready = try ReadySignal(in: directory)
        let policy = try directory.write("policy.yaml", "version: 1\ngrace_period: 1s\n")
        let pids = directory.path("pids")
        // A grandchild in the step's group, one that left the group (setsid), and one that ignores SIGTERM.
        let script = """
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
        let descendants = try directory.read("pids").split(separator: "\n").compactMap { pid_t($0) }
        #expect(descendants.count == 3)
        for pid in descendants {
            #expect(processIsGone(pid), "descendant \(pid) survived")
        }
    }

    @Test func leftoversOfAFinishedStepAreReaped() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let pids = directory.path("pids")
        let result = try StepGuardBinary.run(["run", "--", "/bin/sh", "-c", "setsid sleep 300 & echo $! > \(pids); sleep 300 & echo $! >> \(pids); exit 0"])
        #expect(result.status == 0)
        let leftovers = try directory.read("pids").split(separator: "\n").compactMap { pid_t($0) }
        #expect(leftovers.count == 2)
        for pid in leftovers { #expect(processIsGone(pid)) }
    }
}
