import Foundation
import StepGuardServerTestSupport
import StepGuardTestSupport
import Testing

/// The proxy failing stops the step. When stepguard itself dies (SIGKILL here, as a crash would),
/// the step dies with it. A job the step left running reaches nothing: the proxy is gone, and the
/// isolated step has no route around it. The server is on the host's loopback, so nothing leaves the
/// machine even if this breaks.
@Suite struct FailClosedTests {
    /// Reads a FIFO until its writer closes it, polling for events. Throws after `timeout`, because a
    /// writer that died before opening the FIFO never closes it.
    static func read(fifo path: String, timeout: TimeInterval) throws -> String {
        let fd = open(path, O_RDONLY | O_NONBLOCK)
        guard fd >= 0 else { throw TestSupportError.timedOut("open \(path)", 0) }
        defer { close(fd) }
        return try read(openFIFO: fd, path: path, timeout: timeout)
    }

    static func read(openFIFO fd: Int32, path: String, timeout: TimeInterval) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        var (received, buffer) = ([UInt8](), [UInt8](repeating: 0, count: 4096))
        var sawData = false
        while Date() < deadline {
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&descriptor, 1, 200)
            let count = Glibc.read(fd, &buffer, buffer.count)
            if count > 0 { received += buffer[0..<count]; sawData = true; continue }
            // POLLHUP: a writer came and went. Before any writer, read() returns 0 without it.
            if count == 0, sawData || descriptor.revents & Int16(POLLHUP) != 0 { return String(decoding: received, as: UTF8.self) }
        }
        throw TestSupportError.timedOut("reading \(path)", timeout)
    }

    @Test func whenStepguardDiesEverythingTheStepStartedDies() throws {
        let stage = try TestStage(handler: { request in ServerResponse(body: "reached \(request.uri)") })
        let policy = try stage.directory.write("policy.yaml", """
        version: 1
        isolation: required
        egress: { default: deny, allow: ["127.0.0.1:\(stage.server.port)"] }
        """)
        let (ready, go, alive) = (stage.directory.path("ready.fifo"), stage.directory.path("go.fifo"), stage.directory.path("alive.fifo"))
        for fifo in [ready, go, alive] { try #require(mkfifo(fifo, 0o600) == 0) }
        // The step and the job it detaches hold alive.fifo open for writing until they die: their end
        // is an event the test waits for.
        let aliveReader = open(alive, O_RDONLY | O_NONBLOCK)
        try #require(aliveReader >= 0)
        defer { close(aliveReader) }
        let url = "http://127.0.0.1:\(stage.server.port)"
        // The step reaches the server through the proxy and leaves a job in a session of its own
        // (setsid: out of the step's process group) waiting for "go", which would then try again
        // through the proxy and around it.
        let script = """
        exec 9> \(alive)
        curl -s -o /dev/null -w 'before:%{http_code}' \(url)/before > \(stage.directory.path("before"))
        setsid sh -c 'exec </dev/null >/dev/null 2>&1; read _ < \(go); curl -s -m 5 \(url)/after-proxy; curl -s -m 5 --noproxy "*" \(url)/after-direct' &
        echo $$ > \(ready)
        wait
        """
        let run = try ProgramRun.start(StepGuardBinary.path, ["run", "--policy", policy, "--", "/bin/sh", "-c", script])
        let reported: String
        do { reported = try Self.read(fifo: ready, timeout: 30) } catch {
            run.send(SIGKILL)
            let output = try run.wait(timeout: 10)
            Issue.record("the step never reported: \(error); stepguard exited \(output.status): \(output.stderr)")
            return
        }
        #expect(pid_t(reported.trimmingCharacters(in: .whitespacesAndNewlines)) != nil, "\(reported)")
        #expect(try stage.directory.read("before") == "before:200")

        run.send(SIGKILL)
        let killed = try run.wait(timeout: 10)
        #expect(killed.status == 128 + SIGKILL)
        // The step's PID namespace ends when stepguard dies (its init leaves when stepguard's end of
        // a pipe closes): the step and the detached job close alive.fifo as they die.
        #expect((try? Self.read(openFIFO: aliveReader, path: alive, timeout: 10)) != nil,
                "the step or the job it detached outlived stepguard by 10 s")

        // O_RDWR never blocks on a FIFO (Linux): if the job were alive it would go now.
        let release = open(go, O_RDWR)
        try #require(release >= 0)
        defer { close(release) }
        #expect(write(release, "go\n", 3) == 3)
        #expect(stage.server.requests.map(\.uri) == ["/before"])
    }
}
