import Foundation
import StepGuardServerTestSupport
import StepGuardTestSupport
import Testing

/// The plain-HTTP rule against a lenient front-end: python's http.server splits a request line on
/// any whitespace (tab, CR, VT, FF, 0x1C-0x1F, 0x85, 0xA0, leading ones too) and takes a control
/// character in the target. Such a first line was taken for bytes that are no HTTP and relayed
/// unchecked, so a request naming Vault reached the front-end through a tunnel (or a captured
/// connection) to the allowed host. And nginx, which routes a `Host` by its bytes (ASCII case and a
/// trailing dot aside): a name that is the tunnel's host only after stepguard's Unicode
/// normalisation went to nginx's default server. Through the built `stepguard run`; every address
/// is loopback.
@Suite(.serialized) struct LenientFrontEndTests {
    /// python's http.server answering every Host with `HOST PATH` and logging each Host to `log`.
    static func frontEnd(port: Int, log: String) -> String {
        let script = #"""
        import http.server, socketserver, sys
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def do_GET(self):
                with open(sys.argv[2], "a") as log:
                    log.write(f"{self.headers.get('Host')}\n")
                body = f"{self.headers.get('Host')} {self.path.split(chr(0))[0]}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def log_message(self, *arguments):
                pass
        class Server(http.server.HTTPServer):
            def server_bind(self):  # no reverse DNS
                socketserver.TCPServer.server_bind(self)
        Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
        """#
        return "python3 -c '\(script.replacingOccurrences(of: "'", with: "'\\''"))' \(port) \(log)"
    }

    /// The step's requests: a first line python reads and stepguard's strict parser does not, each
    /// naming Vault, in `connect` (a tunnel or a captured connection opened by python expression).
    static func lenientRequests(_ connect: String) -> String {
        #"""
        V = b"Host: vault.example.test:8200\r\n\r\n"
        for line in (b"\x0cGET /v1/secret/data/prod/db HTTP/1.1", b"GET\t/v1/secret/data/prod/db\tHTTP/1.1",
                     b"\xa0GET /v1/secret/data/prod/db HTTP/1.1", b"GET /v1/secret/data/prod/db HTTP/1.1\x0b",
                     b"GET /v1/secret/data/prod/db\x00 HTTP/1.1", b"\x1fGET\x85/v1/secret/data/prod/db HTTP/1.1"):
            run(\#(connect), line + b"\r\n" + V)
        run(\#(connect), upgrade("/d"), b"GET\t/v1/secret/data/prod/db HTTP/1.1\r\n" + V)
        """#
    }

    /// A proxy policy allowing web.example.test (the front-end on `port`), Vault placed elsewhere.
    static func proxyPolicy(port: Int) -> String {
        """
        version: 1
        on_violation: fail
        egress: { default: deny, allow: ["web.example.test"] }
        \(HostileServiceTests.vaultService)
        network:
          resolve: { "web.example.test:80": "127.0.0.1:\(port)", "vault.example.test:8200": "127.0.0.1:9" }
        """
    }

    /// Runs `step` (python after ``TunnelHostTests/client``) under `policy(port)` with the front-end
    /// on `port`; returns the run, the denials recorded and the Hosts that reached the front-end.
    static func run(capture: Bool, asNobody: Bool, policy: (Int) -> String, _ step: String) throws
        -> (result: ProgramResult, denials: [[String: Any]], hosts: [String]) {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        chmod(directory.path, 0o777)  // the audit log is written as nobody
        let (probe, port) = try LoopbackSocket.listen()
        close(probe)
        let hostsLog = directory.path("hosts.log")
        let server = try DetachedServer.start(frontEnd(port: port, log: hostsLog), log: directory.path("server.log"))
        defer { server.stop() }
        try CaptureClientTests().waitUntilListening(port: port)
        let file = try directory.write("policy.yaml", policy(port), mode: 0o644)
        let audit = directory.path("audit.jsonl")
        let script = TunnelHostTests.python(step)
        let command = capture ? CapturedPlainHTTPTests.step(script) : ["/bin/sh", "-c", script]
        let arguments = ["run", "--policy", file, "--audit-log", audit, "--"] + command
        let result = asNobody && getuid() == 0
            ? try StepGuardBinary.runAsNobody(arguments, environment: TestEnvironment.with(["HOME": directory.path]))
            : try StepGuardBinary.run(arguments)
        let hosts = ((try? String(contentsOfFile: hostsLog, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        return (result, TunnelHostTests.denials(try AuditLogFile.events(audit)), hosts)
    }

    /// Through a CONNECT tunnel to the allowed host (HTTP/1.1: the socket front; HTTP/1.0: the NIO
    /// front): every such first line is refused with a 403
    /// (after a served request whose upgrade was not granted: the connection is closed), and no
    /// request naming Vault reaches the front-end. As root and as nobody.
    @Test(arguments: [false, true]) func aRequestLineOnlyALenientFrontEndReadsIsDeniedInATunnel(asNobody: Bool) throws {
        let (result, denials, hosts) = try Self.run(capture: false, asNobody: asNobody, policy: Self.proxyPolicy, Self.lenientRequests(#"tunnel("web.example.test:80")"#) + "\n" + Self.lenientRequests(#"tunnel("web.example.test:80", "1.0")"#))
        let line = String(repeating: "403 deny\n", count: 6) + "200 web.example.test /d | closed\n"
        #expect(result.stdout == line + line, "\(result.stdout) \(result.stderr)")
        #expect(!hosts.contains { $0.contains("vault") }, "\(hosts)")
        #expect(hosts == ["web.example.test", "web.example.test"], "\(hosts)")
        #expect(denials.count == 14, "\(denials)")
        #expect(result.status == 77, "\(result.stderr)")
    }

    /// The same first lines on captured connections (no proxy variables): the opaque port (8000)
    /// and the pooled plain-HTTP port (80) refuse them too.
    @Test(arguments: [false, true]) func aRequestLineOnlyALenientFrontEndReadsIsDeniedWhenCaptured(asNobody: Bool) throws {
        let (result, _, hosts) = try Self.run(capture: true, asNobody: asNobody, policy: { port in
            CaptureTests.capturePolicy(allow: ["web.example.test"], resolve: [
                "web.example.test:80": port, "web.example.test:8000": port, "vault.example.test:8200": 9,
            ]) + "\n" + HostileServiceTests.vaultService
        }, Self.lenientRequests(#"direct("web.example.test", 8000)"#) + "\n" + Self.lenientRequests(#"direct("web.example.test", 80)"#))
        #expect(!hosts.contains { $0.contains("vault") }, "\(hosts)\n\(result.stdout) \(result.stderr)")
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.count == 14, "\(result.stdout) \(result.stderr)")
        #expect(lines.allSatisfy { $0 == "403 deny" || $0.hasSuffix("| closed") || $0.hasSuffix("| 403 deny") || $0 == "closed" }, "\(result.stdout)")
        #expect(result.status == 77, "\(result.stderr)")
    }

    /// nginx as the front-end, Vault its default server (tunnels on both fronts): a `Host` that is
    /// the tunnel's host only after stepguard's Unicode normalisation (IDNA's dots `。` `．` `｡`) is another name to nginx,
    /// which serves it from the default server. Such requests are refused; the host's own name, in
    /// any ASCII case, with a trailing dot or a port, is served by its virtual host.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/sbin/nginx"), "needs nginx"), arguments: [false, true])
    func aHostNamedOnlyAfterNormalisationDoesNotReachNginxsDefaultServer(asNobody: Bool) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        chmod(directory.path, 0o777)  // the audit log is written as nobody
        let (probe, port) = try LoopbackSocket.listen()
        close(probe)
        let configuration = try directory.write("nginx.conf", """
            daemon off;
            master_process off;
            error_log \(directory.path("error.log"));
            pid \(directory.path("nginx.pid"));
            events { worker_connections 64; }
            http {
              access_log off;
              client_body_temp_path \(directory.path("body"));
              proxy_temp_path \(directory.path("proxy"));
              fastcgi_temp_path \(directory.path("fastcgi"));
              uwsgi_temp_path \(directory.path("uwsgi"));
              scgi_temp_path \(directory.path("scgi"));
              server { listen 127.0.0.1:\(port) default_server; server_name vault.example.test; location / { return 200 "vault $host"; } }
              server { listen 127.0.0.1:\(port); server_name web.example.test; location / { return 200 "web $host"; } }
            }
            """)
        let nginx = try DetachedServer.start("/usr/sbin/nginx -c \(configuration) -p \(directory.path)", log: directory.path("nginx.log"))
        defer { nginx.stop() }
        try CaptureClientTests().waitUntilListening(port: port)
        let policy = try directory.write("policy.yaml", Self.proxyPolicy(port: port), mode: 0o644)
        let audit = directory.path("audit.jsonl")
        let script = TunnelHostTests.python(#"""
            run(tunnel("web.example.test:80"), get("/a"), get("/b", "WEB.Example.Test."), get("/c", "web.example.test:80"))
            for version in ("1.1", "1.0"):
                for host in ("web\u3002example\u3002test", "web\uff0eexample.test", "web.example\uff61test:80"):
                    run(tunnel("web.example.test:80", version), get("/v1/secret/data/prod/db", host))
            """#)
        let arguments = ["run", "--policy", policy, "--audit-log", audit, "--", "/bin/sh", "-c", script]
        let result = asNobody && getuid() == 0
            ? try StepGuardBinary.runAsNobody(arguments, environment: TestEnvironment.with(["HOME": directory.path]))
            : try StepGuardBinary.run(arguments)
        #expect(result.stdout == "200 web web.example.test | 200 web web.example.test | 200 web web.example.test\n" + String(repeating: "403 deny\n", count: 6),
                "\(result.stdout) \(result.stderr)")
        #expect(!result.stdout.contains("vault"))
        #expect(TunnelHostTests.denials(try AuditLogFile.events(audit)).count == 6)
        #expect(result.status == 77, "\(result.stderr)")
    }
}
