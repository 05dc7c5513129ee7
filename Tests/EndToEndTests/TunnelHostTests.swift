import Foundation
import StepGuardServerTestSupport
import StepGuardTestSupport
import Testing

/// Issue #18 follow-up: plain HTTP must not reach a service uninspected through a tunnel or a
/// captured connection to an allowed host whose front-end also serves the service (a shared
/// address picks the virtual host by each request's `Host`). The front-end here is one loopback
/// HTTP server that answers every Host, as such a front-end would; Vault (`vault.example.test`,
/// intercepted) must never be named by a request that reaches it. Through the built
/// `stepguard run`, python's sockets in the step; every address is loopback.
@Suite(.serialized) struct TunnelHostTests {
    /// Python in the step: `tunnel(authority, version, along)` opens a CONNECT tunnel through the
    /// proxy (`along`: bytes sent with the CONNECT, in one write), `direct(host, port)` a connection
    /// that capture takes; `run(socket, *requests)` sends each request (None: nothing, a response
    /// is awaited) after the previous response and prints one line: each response as `STATUS BODY`
    /// (`STATUS deny` for stepguard's own), or `closed`, joined by ` | `.
    static let client = #"""
    import os, socket, http.client, urllib.parse
    def exchange(s, request):
        try:
            if request:
                s.sendall(request)
            response = http.client.HTTPResponse(s)
            response.begin()
            body = response.read().decode()
        except (http.client.HTTPException, OSError):
            return "closed"
        decision = response.getheader("X-StepGuard-Decision")
        return f"{response.status} {decision}" if decision else f"{response.status} {body}"
    def tunnel(authority, version="1.1", along=b""):
        proxy = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
        s = socket.create_connection((proxy.hostname, proxy.port), timeout=10)
        s.sendall(f"CONNECT {authority} HTTP/{version}\r\nHost: {authority}\r\n\r\n".encode() + along)
        answer = b""
        while not answer.endswith(b"\r\n\r\n"):
            answer += s.recv(1)
        assert answer.split(b" ")[1] == b"200", answer
        return s
    def direct(host, port):
        return socket.create_connection((host, port), timeout=10)
    def run(s, *requests):
        results = []
        for request in requests:
            results.append(exchange(s, request))
            if results[-1] == "closed" or results[-1].endswith(" deny"):
                break
        s.close()
        print(" | ".join(results), flush=True)
    def get(path, host="web.example.test"):
        return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    def post(path, host="web.example.test"):
        return f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\n\r\nhello".encode()
    def chunked(path, host="web.example.test"):
        return f"POST {path} HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n".encode()
    def upgrade(path, host="web.example.test"):
        return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n".encode()
    vault = "vault.example.test:8200"

    """#

    static func python(_ body: String) -> String { "python3 - <<'PY'\n\(client)\(body)\nPY\n" }

    /// The front-end: answers every request with `Host method uri body-length`.
    static func frontEnd() throws -> LocalHTTPServer {
        try LocalHTTPServer.start { request in
            ServerResponse(body: "\(request.header("Host") ?? "-") \(request.method) \(request.uri) \(request.body.count)")
        }
    }

    /// Requests that named Vault, by `Host` or by an absolute-form target, or named no host at all.
    static func reachingVault(_ server: LocalHTTPServer) -> [String] {
        server.requests.filter { ($0.header("Host") ?? "vault").contains("vault") || $0.uri.contains("vault") }.map(\.uri)
    }

    /// A proxy policy allowing web.example.test (the front-end) and the hosts of `more` (name: port
    /// on loopback, as `name:80`), Vault placed elsewhere.
    static func proxyPolicy(_ server: LocalHTTPServer, services: Bool = true, onViolation: String = "fail", more: [String: Int] = [:]) -> String {
        let allowed = (["web.example.test"] + more.keys.sorted()).map { "\"\($0)\"" }.joined(separator: ", ")
        let routes = more.sorted { $0.key < $1.key }.map { "\"\($0.key):80\": \"127.0.0.1:\($0.value)\", " }.joined()
        return """
        version: 1
        on_violation: \(onViolation)
        egress: { default: deny, allow: [\(allowed)] }
        \(services ? HostileServiceTests.vaultService : "")
        network:
          resolve: { \(routes)"web.example.test:80": "127.0.0.1:\(server.port)", "vault.example.test:8200": "127.0.0.1:9" }
        """
    }

    /// Runs the python `body` (after ``client``) in a step under the policy `policy` makes for a
    /// fresh front-end (`capture`: without proxy variables; `asNobody`: stepguard and the step run
    /// as `nobody` when the tests run as root); the front-end is shut down after.
    static func run(_ policy: (LocalHTTPServer) -> String, capture: Bool = false, asNobody: Bool = false, _ body: String) throws
        -> (result: ProgramResult, events: [[String: Any]], server: LocalHTTPServer) {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let server = try frontEnd()
        defer { server.shutdown() }
        let file = try directory.write("policy.yaml", policy(server), mode: 0o644)
        let audit = directory.path("audit.jsonl")
        let script = python(body)
        let step = capture ? CapturedPlainHTTPTests.step(script) : ["/bin/sh", "-c", script]
        let arguments = ["run", "--policy", file, "--audit-log", audit, "--"] + step
        let result: ProgramResult
        if asNobody, getuid() == 0 {
            chmod(directory.path, 0o777)  // the audit log is written as nobody
            result = try StepGuardBinary.runAsNobody(arguments, environment: TestEnvironment.with(["HOME": directory.path]))
        } else {
            result = try StepGuardBinary.run(arguments)
        }
        return (result, try AuditLogFile.events(audit), server)
    }

    static func denials(_ events: [[String: Any]]) -> [[String: Any]] {
        events.filter { $0["rule"] as? String == "built-in: Host must equal the tunnel's host" && $0["decision"] as? String == "deny" }
    }

    /// The first request in a tunnel to the front-end names Vault (Host with port, case and trailing
    /// dot; an absolute-form target; HTTP/1.0 without Host; sent in one write with the CONNECT): a
    /// 403, nothing reaches the front-end. `CONNECT … HTTP/1.0` is served by the NIO front,
    /// `HTTP/1.1` by the socket front (the NIO front's HTTP decoder drops bytes that come in one
    /// write with a CONNECT, so that case is the socket front's only).
    @Test(arguments: [false, true]) func aFirstRequestNamingAServiceThroughATunnelIsDenied(asNobody: Bool) throws {
        let (result, events, server) = try Self.run({ Self.proxyPolicy($0) }, asNobody: asNobody, """
        for version in ("1.1", "1.0"):
            run(tunnel("web.example.test:80", version), get("/v1/secret/data/prod/db", vault))
            run(tunnel("web.example.test:80", version), get("/v1/secret/data/prod/db", "VAULT.Example.Test."))
            run(tunnel("web.example.test:80", version), get("http://vault.example.test:8200/v1/secret/data/prod/db"))
            run(tunnel("web.example.test:80", version), b"GET /v1/secret/data/prod/db HTTP/1.0\\r\\n\\r\\n")
        run(tunnel("web.example.test:80", "1.1", get("/v1/secret/data/prod/db", vault)), None)
        """)
        #expect(result.stdout == String(repeating: "403 deny\n", count: 9), "\(result.stdout) \(result.stderr)")
        #expect(server.requests.isEmpty, "\(server.requests.map(\.uri))")
        #expect(result.status == 77, "\(result.stderr)")
        let denials = Self.denials(events)
        #expect(denials.count == 9, "\(events)")
        #expect(denials.filter { $0["service"] as? String == "hashicorp-vault" && $0["type"] as? String == "service" }.count == 7, "\(denials)")
        #expect(denials.allSatisfy { $0["host"] as? String == "web.example.test" }, "\(denials)")
    }

    /// A first request to the front-end's own host is served; a later one on the same connection
    /// naming Vault — right after it, after a Content-Length body, after a chunked one, after an
    /// `Upgrade` the server did not grant — closes the connection, and never reaches the front-end.
    /// Both fronts.
    @Test func aLaterRequestNamingAServiceAfterAServedOneIsDenied() throws {
        let (result, events, server) = try Self.run({ Self.proxyPolicy($0) }, """
        for version in ("1.1", "1.0"):
            run(tunnel("web.example.test:80", version), get("/a"), get("/v1/secret/data/prod/db", vault))
            run(tunnel("web.example.test:80", version), post("/b"), get("/v1/secret/data/prod/db", vault))
            run(tunnel("web.example.test:80", version), chunked("/c"), get("http://vault.example.test:8200/v1/secret/data/prod/db"))
            run(tunnel("web.example.test:80", version), upgrade("/d"), get("/v1/secret/data/prod/db", vault))
        """)
        let served = "200 web.example.test GET /a 0 | closed\n200 web.example.test POST /b 5 | closed\n200 web.example.test POST /c 5 | closed\n"
            + "200 web.example.test GET /d 0 | closed\n"
        #expect(result.stdout == served + served, "\(result.stdout) \(result.stderr)")
        #expect(Self.reachingVault(server).isEmpty, "\(server.requests.map(\.uri))")
        #expect(server.requests.map(\.uri) == ["/a", "/b", "/c", "/d", "/a", "/b", "/c", "/d"])
        #expect(result.status == 77, "\(result.stderr)")
        #expect(Self.denials(events).count == 8, "\(events)")
    }

    /// `on_violation: kill`: a later request naming Vault stops the step at once.
    @Test func aDeniedLaterRequestKillsTheStep() throws {
        let started = Date()
        let (result, _, server) = try Self.run({ Self.proxyPolicy($0, onViolation: "kill") }, """
        run(tunnel("web.example.test:80"), get("/a"), get("/v1/secret/data/prod/db", vault))
        import time
        time.sleep(30)
        print("never")
        """)
        #expect(result.status == 77, "\(result.stderr)")
        #expect(Date().timeIntervalSince(started) < 20)
        #expect(!result.stdout.contains("never"))
        #expect(Self.reachingVault(server).isEmpty)
    }

    /// Plain HTTP to the allowed host keeps working through a tunnel: several keep-alive requests
    /// with bodies, origin- and absolute-form, on both fronts.
    @Test func keepAliveRequestsWithBodiesToTheTunnelsHostPass() throws {
        let (result, events, server) = try Self.run({ Self.proxyPolicy($0) }, """
        for version in ("1.1", "1.0"):
            run(tunnel("web.example.test:80", version), get("/1"), post("/2"), chunked("/3"), get("http://web.example.test/4"), get("/5", "web.example.test:80"))
        """)
        let line = "200 web.example.test GET /1 0 | 200 web.example.test POST /2 5 | 200 web.example.test POST /3 5 | 200 web.example.test GET http://web.example.test/4 0 | 200 web.example.test:80 GET /5 0\n"
        #expect(result.stdout == line + line, "\(result.stdout) \(result.stderr)")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(Self.denials(events).isEmpty)
        #expect(server.acceptedConnections == 2, "one upstream connection per tunnel")
    }

    /// A WebSocket-like server on loopback: answers each connection's request head with `101`,
    /// then echoes every read with `echo:` until the client closes.
    final class UpgradeServer: Sendable {
        let fd: Int32
        let port: Int

        init() throws {
            (fd, port) = try LoopbackSocket.listen()
            let thread = Thread { [fd] in
                while true {
                    let client = accept(fd, nil, nil)
                    if client < 0 { return }
                    var head: [UInt8] = []
                    var byte: UInt8 = 0
                    while !head.ends(with: Array("\r\n\r\n".utf8)), read(client, &byte, 1) == 1 { head.append(byte) }
                    let switching = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                    _ = write(client, switching, switching.utf8.count)
                    var buffer = [UInt8](repeating: 0, count: 4096)
                    while case let count = read(client, &buffer, buffer.count), count > 0 {
                        let reply = Array("echo:".utf8) + buffer[0..<count]
                        _ = write(client, reply, reply.count)
                    }
                    close(client)
                }
            }
            thread.start()
        }

        func stop() { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
    }

    /// After an upgrade the server granted (`101`), the client's frames (no request line) are
    /// relayed as they come, on both fronts.
    @Test func framesAfterAGrantedUpgradeAreRelayed() throws {
        let upgrades = try UpgradeServer()
        defer { upgrades.stop() }
        let (result, events, _) = try Self.run({ Self.proxyPolicy($0, more: ["ws.example.test": upgrades.port]) }, #"""
        for version in ("1.1", "1.0"):
            s = tunnel("ws.example.test:80", version)
            s.sendall(upgrade("/ws", "ws.example.test"))
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                head += s.recv(1)
            s.sendall(b"\x81\x05hello")
            print(head.split(b"\r\n")[0].decode(), s.recv(100) == b"echo:\x81\x05hello", flush=True)
            s.close()
        """#)
        #expect(result.stdout == "HTTP/1.1 101 Switching Protocols True\n" + "HTTP/1.1 101 Switching Protocols True\n", "\(result.stdout) \(result.stderr)")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(Self.denials(events).isEmpty)
    }

    /// `mode: audit`: every request naming Vault is recorded, none is blocked, and the requests
    /// after it are still followed and decided (both fronts).
    @Test func auditModeRecordsEveryDeniedRequestAndBlocksNone() throws {
        let (result, events, server) = try Self.run({ "mode: audit\n" + Self.proxyPolicy($0) }, """
        for version in ("1.1", "1.0"):
            run(tunnel("web.example.test:80", version), get("/a"), post("/b", vault), get("/c"), chunked("/d", "other.example.test"), get("/e"))
        """)
        let line = "200 web.example.test GET /a 0 | 200 vault.example.test:8200 POST /b 5 | 200 web.example.test GET /c 0"
            + " | 200 other.example.test POST /d 5 | 200 web.example.test GET /e 0\n"
        #expect(result.stdout == line + line, "\(result.stdout) \(result.stderr)")
        #expect(result.status == 0, "\(result.stderr)")
        let denials = Self.denials(events)
        #expect(denials.compactMap { $0["request_host"] as? String } == Array(repeating: ["vault.example.test", "other.example.test"], count: 2).flatMap { $0 },
                "\(denials)")
        #expect(server.requests.count == 10)
    }

    /// Without `services:` nothing is intercepted and requests in a tunnel are not followed: a
    /// Host naming another site reaches the front-end as before (the fast path is unchanged).
    @Test func withoutServicesRequestsInATunnelAreNotChecked() throws {
        let (result, _, _) = try Self.run({ Self.proxyPolicy($0, services: false) }, """
        run(tunnel("web.example.test:80"), get("/a"), get("/b", vault))
        """)
        #expect(result.stdout == "200 web.example.test GET /a 0 | 200 vault.example.test:8200 GET /b 0\n", "\(result.stdout) \(result.stderr)")
        #expect(result.status == 0, "\(result.stderr)")
    }

    /// Captured connections (no proxy variables, isolation required): the pooled plain-HTTP path of
    /// port 80 checks every request's Host; what it relays as a tunnel (a body, an absolute-form
    /// target, also after requests it served) and an opaque port (8000) follow every request.
    /// Requests to the allowed host pass.
    @Test(arguments: [false, true]) func capturedConnectionsCheckEveryRequestsHost(asNobody: Bool) throws {
        let policy = { (server: LocalHTTPServer) in
            CaptureTests.capturePolicy(allow: ["web.example.test"], resolve: [
                "web.example.test:80": server.port, "web.example.test:8000": server.port, "vault.example.test:8200": 9,
            ]) + "\n" + HostileServiceTests.vaultService
        }
        let (result, events, server) = try Self.run(policy, capture: true, asNobody: asNobody, """
        web = "web.example.test"
        run(direct(web, 80), get("/p1"), get("/p2"))
        run(direct(web, 80), get("/v1/secret/data/prod/db", vault))
        run(direct(web, 80), get("/p3"), get("/v1/secret/data/prod/db", vault))
        run(direct(web, 80), post("/p4"), get("/v1/secret/data/prod/db", vault))
        run(direct(web, 80), get("http://vault.example.test:8200/v1/secret/data/prod/db"))
        run(direct(web, 80), get("/p5"), get("http://vault.example.test:8200/v1/secret/data/prod/db"))
        run(direct(web, 8000), get("/o1"), chunked("/o2"), get("/v1/secret/data/prod/db", vault))
        run(direct(web, 8000), get("/v1/secret/data/prod/db", "Vault.Example.Test"))
        run(direct(web, 8000), get("/o3"), post("/o4"), chunked("/o5"), get("/o6"))
        """)
        #expect(result.stdout == """
            200 web.example.test GET /p1 0 | 200 web.example.test GET /p2 0
            403 deny
            200 web.example.test GET /p3 0 | 403 deny
            200 web.example.test POST /p4 5 | closed
            403 deny
            200 web.example.test GET /p5 0 | 403 deny
            200 web.example.test GET /o1 0 | 200 web.example.test POST /o2 5 | closed
            403 deny
            200 web.example.test GET /o3 0 | 200 web.example.test POST /o4 5 | 200 web.example.test POST /o5 5 | 200 web.example.test GET /o6 0

            """, "\(result.stdout) \(result.stderr)")
        #expect(Self.reachingVault(server).isEmpty, "\(server.requests.map(\.uri))")
        #expect(result.status == 77, "\(result.stderr)")
        let denials = Self.denials(events)
        #expect(denials.count == 7, "\(denials)")
        #expect(denials.allSatisfy { $0["service"] as? String == "hashicorp-vault" }, "\(denials)")
    }
}
