import Foundation
import StepGuardServerTestSupport
import StepGuardTestSupport
import Testing

/// Captured connections on plain-HTTP ports (80, 8080): stepguard reads them request by request
/// and sends each over pooled upstream connections to the destination the connection was allowed
/// to, instead of opening an upstream connection per captured one. Whatever it does not serve that
/// way (a body, a protocol other than HTTP, a server that speaks first) is relayed as a tunnel to
/// the same destination. Servers run on the host's loopback, reached through `network.resolve`.
@Suite struct CapturedPlainHTTPTests {
    let directory: TemporaryDirectory

    init() throws { directory = try TemporaryDirectory() }

    /// A python3 step that connects to `host:port` (no proxy), sends `request` (a Python bytes
    /// expression), with `halfClose` ends its side, reads until the server closes, and prints
    /// `report`, a Python expression over the response as `text`.
    static func exchange(_ host: String, _ port: Int, send request: String, halfClose: Bool = false, timeout: Int = 5,
                         report: String) -> [String] {
        let script = """
            import socket
            s = socket.create_connection(("\(host)", \(port)), timeout=\(timeout))
            s.sendall(\(request))
            if \(halfClose ? "True" : "False"):
                s.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            text = data.decode()
            print(\(report), flush=True)
            """
        return ["python3", "-c", script]
    }

    /// A step that knows nothing of the proxy: `sh -c SCRIPT` with every proxy variable removed.
    static func step(_ script: String) -> [String] {
        CaptureClientTests.withoutProxyVariables.split(separator: " ").map(String.init) + ["sh", "-c", script]
    }

    /// Six client connections (one with two requests) to an allowed name: every request reaches
    /// the server unchanged, with the `Host` the client sent, over far fewer upstream connections.
    @Test func requestsOfCapturedConnectionsShareUpstreamConnections() throws {
        let server = try LocalHTTPServer.start { request in ServerResponse(body: "served \(request.uri)") }
        defer { server.shutdown() }
        let policy = try directory.write("policy.yaml", CaptureTests.capturePolicy(
            allow: ["web.capture.example:80"], resolve: ["web.capture.example:80": server.port]))
        let audit = directory.path("audit.jsonl")
        let script = """
            for n in 1 2 3 4 5; do curl -sS http://web.capture.example/n$n; echo; done
            curl -sS http://web.capture.example/a -w "\\n" http://web.capture.example/b
            """
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--audit-log", audit, "--"] + Self.step(script))
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout == (1...5).map { "served /n\($0)\n" }.joined() + "served /a\nserved /b\n", "\(run.stdout) \(run.stderr)")
        #expect(server.requests.map(\.uri) == ["/n1", "/n2", "/n3", "/n4", "/n5", "/a", "/b"])
        #expect(server.requests.allSatisfy { $0.header("Host") == "web.capture.example" }, "the client's Host reaches the server")
        #expect(server.acceptedConnections <= 2, "\(server.acceptedConnections) upstream connections for 6 captured ones")
        let allowed = try AuditLogFile.events(audit).filter { $0["type"] as? String == "egress" && $0["decision"] as? String == "allow" }
        #expect(allowed.contains { $0["host"] as? String == "web.capture.example" && $0["port"] as? Int == 80 }, "\(allowed)")
    }

    /// The destination is where the captured connection was going, decided when it was captured:
    /// a `Host` naming another allowed site does not move the request there, each name keeps its
    /// own pooled connections, and a denied name is reset before any byte reaches a server.
    @Test func eachRequestGoesWhereItsConnectionWasAllowedToGo() throws {
        let first = try LocalHTTPServer.start { request in ServerResponse(body: "first \(request.uri)") }
        defer { first.shutdown() }
        let second = try LocalHTTPServer.start { request in ServerResponse(body: "second \(request.uri)") }
        defer { second.shutdown() }
        let policy = try directory.write("policy.yaml", CaptureTests.capturePolicy(
            allow: ["one.capture.example:80", "two.capture.example:8080"],
            resolve: ["one.capture.example:80": first.port, "two.capture.example:8080": second.port,
                      "three.capture.example:80": second.port]))
        let script = """
            curl -sS http://one.capture.example/a; echo
            curl -sS http://two.capture.example:8080/b; echo
            curl -sS -H "Host: two.capture.example:8080" http://one.capture.example/c; echo
            curl -sS http://three.capture.example/d; echo " exit $?"
            curl -sS http://two.capture.example:8080/e; echo
            """
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--"] + Self.step(script))
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 5 && lines[0] == "first /a" && lines[1] == "second /b" && lines[2] == "first /c", "\(run.stdout) \(run.stderr)")
        #expect(lines.count == 5 && lines[3].hasSuffix(" exit 6") && lines[4] == "second /e", "a denied name does not resolve: \(run.stdout)")
        #expect(first.requests.map(\.uri) == ["/a", "/c"] && second.requests.map(\.uri) == ["/b", "/e"])
        #expect(first.requests.last?.header("Host") == "two.capture.example:8080")
        #expect(run.status == 77, "the denied name is a violation: \(run.stderr)")
    }

    /// What the front does not serve itself is relayed whole to the same destination: a request
    /// with a body, an HTTP/1.0 request, and bytes that are not HTTP (then a half-close).
    @Test func whatIsNotAPlainRequestIsRelayedAsItCame() throws {
        let server = try LocalHTTPServer.start { request in
            ServerResponse(body: "\(request.method) \(request.uri) \(String(decoding: request.body, as: UTF8.self))")
        }
        defer { server.shutdown() }
        let echo = try CaptureTests.echoServer()
        defer { echo.stop() }
        let policy = try directory.write("policy.yaml", CaptureTests.capturePolicy(
            allow: ["web.capture.example:80", "192.0.2.10:80"], resolve: ["web.capture.example:80": server.port, "192.0.2.10:80": echo.port]))
        let script = """
            curl -sS -d payload=1 http://web.capture.example/upload; echo
            curl -sS -0 http://web.capture.example/old; echo
            python3 -c "
            import socket
            s = socket.create_connection((\\"192.0.2.10\\", 80), timeout=5)
            s.sendall(b\\"ping\\")
            s.shutdown(socket.SHUT_WR)
            print(s.recv(100).decode())
            "
            """
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--"] + Self.step(script))
        #expect(run.stdout == "POST /upload payload=1\nGET /old \necho:ping\n", "\(run.stdout) \(run.stderr)")
        #expect(run.status == 0, "\(run.stderr)")
    }

    /// A server that speaks first on an HTTP port (its client waits for the greeting): the
    /// connection is relayed once no request has come for a moment, and the client hears it.
    @Test func aServerThatSpeaksFirstOnAnHTTPPortIsHeard() throws {
        let server = try CaptureTests.greetingServer()
        defer { server.stop() }
        let policy = try directory.write("policy.yaml", CaptureTests.capturePolicy(allow: ["192.0.2.10:8080"], resolve: ["192.0.2.10:8080": server.port]))
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--"] + CaptureTests.greetingClient("192.0.2.10", 8080))
        #expect(run.stdout == "220 greeting from the server True\ngot:HELO builder\n", "\(run.stdout) \(run.stderr)")
        #expect(run.status == 0, "\(run.stderr)")
    }

    /// A client that ends its side after its request (`shutdown(SHUT_WR)`, `nc -N`), as it may on
    /// a direct connection, still gets the whole response of a server that takes longer than the
    /// front's one-second look at a waiting client (a half-close is not the client going away).
    @Test func aClientThatHalfClosesAfterItsRequestGetsTheSlowResponse() throws {
        let server = try LocalHTTPServer.start { request in
            Thread.sleep(forTimeInterval: 3)  // the slow server under test: past the front's checks of the client
            return ServerResponse(body: "late \(request.uri)")
        }
        defer { server.shutdown() }
        let policy = try directory.write("policy.yaml", CaptureTests.capturePolicy(allow: ["192.0.2.10:80"], resolve: ["192.0.2.10:80": server.port]))
        let client = Self.exchange("192.0.2.10", 80, send: #"b"GET /slow HTTP/1.1\r\nHost: 192.0.2.10\r\n\r\n""#, halfClose: true, timeout: 10,
                                   report: #"text.split("\r\n")[0] or "nothing", text.endswith("late /slow")"#)
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--"] + client)
        #expect(run.stdout == "HTTP/1.1 200 OK True\n", "\(run.stdout) \(run.stderr)")
        #expect(server.requests.map(\.uri) == ["/slow"])
        #expect(run.status == 0, "\(run.stderr)")
    }

    /// Bytes that cannot begin a request line (a TLS ClientHello on 8080) are relayed at once, not
    /// after the wait for a first request: a TLS client on an HTTP port pays no extra round of waiting.
    @Test func bytesThatCannotStartARequestAreRelayedWithoutWaiting() throws {
        let echo = try CaptureTests.echoServer()  // one connection at a time: the step's are sequential
        defer { echo.stop() }
        let policy = try directory.write("policy.yaml", CaptureTests.capturePolicy(allow: ["192.0.2.10:8080"], resolve: ["192.0.2.10:8080": echo.port]))
        let script = """
            import socket, ssl, time
            \(PythonTLS.clientHello(serverName: "web.capture.example"))
            waits = []
            for _ in range(3):
                s = socket.create_connection(("192.0.2.10", 8080), timeout=5)
                start = time.monotonic()
                s.sendall(hello)
                answer = s.recv(5)
                waits.append(time.monotonic() - start)
                s.close()
            print(answer.decode(errors="replace"), min(waits) < 0.15, [round(w, 3) for w in waits], flush=True)
            """
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--", "python3", "-c", script])
        #expect(run.stdout.hasPrefix("echo: True "), "waited for a request head first: \(run.stdout) \(run.stderr)")
        #expect(echo.connections == 3)
        #expect(run.status == 0, "\(run.stderr)")
    }

    /// Each silent connection is relayed after its own wait (``CapturedName/firstRequestWait``),
    /// also when several overlap on one front thread: a sweep run for the first must not push the
    /// others back to the next regular sweep a second later. Six connections 20 ms apart, each to
    /// a server that speaks first (the front has at most four threads: some share one).
    @Test func overlappingSilentConnectionsAreEachRelayedAfterTheirOwnWait() throws {
        let servers = try (0..<6).map { _ in try CaptureTests.greetingServer() }
        defer { servers.forEach { $0.stop() } }
        var resolve: [String: Int] = [:]
        for (index, server) in servers.enumerated() { resolve["192.0.2.\(11 + index):8080"] = server.port }
        let policy = try directory.write("policy.yaml", CaptureTests.capturePolicy(allow: resolve.keys.sorted(), resolve: resolve))
        let script = """
            import socket, threading, time
            waits = [9.0] * 6
            def talk(index):
                start = time.monotonic()
                s = socket.create_connection((f"192.0.2.{11 + index}", 8080), timeout=5)
                if s.makefile("rb").readline().startswith(b"220 "):
                    waits[index] = time.monotonic() - start
                s.close()
            threads = []
            for index in range(6):
                threads.append(threading.Thread(target=talk, args=(index,)))
                threads[-1].start()
                time.sleep(0.02)  # arrivals spread over 100 ms, all within the first one's wait
            for thread in threads:
                thread.join()
            print(max(waits) < 0.7, [round(wait, 2) for wait in waits], flush=True)
            """
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--", "python3", "-c", script])
        #expect(run.stdout.hasPrefix("True "), "a connection waited for a later sweep: \(run.stdout) \(run.stderr)")
        #expect(run.status == 0, "\(run.stderr)")
    }

    /// Hostile: a denied bare address on port 80 whose first request names an allowed host goes to
    /// where that name resolves; requests after it on the same connection, pipelined, naming
    /// another host, and one the front does not serve (a body: relayed) all go there too — none
    /// reaches the address the client chose (a server of its own here, through `network.resolve`).
    @Test func aDeniedAddressNamedByItsFirstRequestSendsEveryLaterOneToThatName() throws {
        let named = try LocalHTTPServer.start { request in ServerResponse(body: "named \(request.uri)") }
        defer { named.shutdown() }
        let trap = try LocalHTTPServer.start { request in ServerResponse(body: "trap \(request.uri)") }
        defer { trap.shutdown() }
        let policy = try directory.write("policy.yaml", CaptureTests.capturePolicy(
            allow: ["builds.capture.example:80"], resolve: ["builds.capture.example:80": named.port, "192.0.2.99:80": trap.port]))
        let requests = #"b"GET /first HTTP/1.1\r\nHost: builds.capture.example\r\n\r\n""#
            + #" b"GET /second HTTP/1.1\r\nHost: trap.capture.example\r\n\r\n""#
            + #" b"POST /third HTTP/1.1\r\nHost: 192.0.2.99\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc""#
        let client = Self.exchange("192.0.2.99", 80, send: requests,
                                   report: #"text.count("HTTP/1.1 200"), text.count("named /"), text.count("trap")"#)
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--"] + client)
        #expect(run.stdout == "3 3 0\n", "\(run.stdout) \(run.stderr)")
        #expect(named.requests.map(\.uri) == ["/first", "/second", "/third"])
        #expect(named.requests.map { $0.header("Host") ?? "" } == ["builds.capture.example", "trap.capture.example", "192.0.2.99"])
        #expect(trap.requests.isEmpty && trap.acceptedConnections == 0, "the address the client chose was reached")
        #expect(run.status == 0, "\(run.stderr)")
    }

    /// IPv6: a captured plain-HTTP connection to an allowed v6 address is served over the pool
    /// like a v4 one; another v6 address is reset.
    @Test func anIPv6DestinationIsServedOverPooledConnectionsToo() throws {
        let server = try LocalHTTPServer.start { request in ServerResponse(body: "v6 \(request.uri)") }
        defer { server.shutdown() }
        let policy = try directory.write("policy.yaml", CaptureTests.capturePolicy(allow: ["[2001:db8::10]:80"], resolve: ["[2001:db8::10]:80": server.port]))
        let script = """
            for n in 1 2 3; do curl -sS -g http://[2001:db8::10]/n$n; echo; done
            curl -sS -g http://[2001:db8::11]/x 2>/dev/null; echo "exit $?"
            """
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--"] + Self.step(script))
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(Array(lines.prefix(3)) == ["v6 /n1", "v6 /n2", "v6 /n3"], "\(run.stdout) \(run.stderr)")
        #expect(lines.count == 4 && lines[3] != "exit 0", "\(run.stdout)")
        #expect(server.requests.map { $0.header("Host") ?? "" } == Array(repeating: "[2001:db8::10]", count: 3))
        #expect(server.acceptedConnections <= 2, "\(server.acceptedConnections) upstream connections for 3 captured ones")
        #expect(run.status == 77, "the other address is a violation: \(run.stderr)")
    }
}
