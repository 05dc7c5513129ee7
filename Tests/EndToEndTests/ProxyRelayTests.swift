import Foundation
import StepGuardTestSupport
import Testing

/// Responses relayed by the proxy arrive whole, also from a server that closes the connection
/// right after the response (Python's HTTP/1.0 `http.server`) while the client reads slowly.
@Suite struct ProxyRelayTests {
    @Test func largeResponseFromAClosingServerArrivesWhole() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var generator = SystemRandomNumberGenerator()
        let payload = Data((0..<3_000_000).map { _ in UInt8.random(in: 0...255, using: &generator) })
        try payload.write(to: directory.url.appendingPathComponent("payload.bin"))
        let ready = try ReadySignal(in: directory)
        let serverScript = """
        import functools, http.server, sys
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
        server = http.server.HTTPServer(("127.0.0.1", 0), handler)
        open(sys.argv[2], "w").write(str(server.server_address[1]))
        server.serve_forever()
        """
        let server = try ProgramRun.start("/usr/bin/env", ["python3", "-c", serverScript, directory.path, ready.path])
        defer { server.send(SIGKILL); _ = try? server.wait() }
        let port = try ready.wait()
        let policy = try directory.write("policy.yaml", "version: 1\negress: { default: deny, allow: [\"127.0.0.1:\(port)\"] }\n")
        // `sleep` in the pipe makes the client slower than the server: the proxy must buffer and flush.
        let result = try StepGuardBinary.run(["run", "--policy", policy, "--", "/bin/sh", "-c",
                                              "curl -sS http://127.0.0.1:\(port)/payload.bin | (sleep 0.2; sha256sum)"])
        #expect(result.status == 0, "\(result.stderr)")
        let expected = try ProgramRun.start("/usr/bin/sha256sum", [directory.path("payload.bin")]).wait().stdout.prefix(64)
        #expect(result.stdout.prefix(64) == expected)
    }
}
