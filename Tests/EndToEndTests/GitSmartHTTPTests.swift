import Foundation
import StepGuardServerTestSupport
import StepGuardTestSupport
import Testing

/// `git ls-remote` inside a guarded step, through the proxy, against a local smart-HTTP server
/// (`git http-backend` behind a loopback HTTP or HTTPS server).
@Suite(.serialized) struct GitSmartHTTPTests {
    static func shell(_ script: String, in directory: String) throws {
        let result = try ProgramRun.start("/bin/sh", ["-c", script], environment: TestEnvironment.base, currentDirectory: directory).wait(timeout: 30)
        if result.status != 0 { throw TestSupportError.commandFailed(script, result) }
    }

    /// A smart-HTTP server: Python's http.server in front of `git http-backend` (CGI), on a loopback port;
    /// arguments: repositories root, port file, then optionally certificate and key files to serve HTTPS.
    static let server = #"""
    import http.server, os, subprocess, sys
    root = sys.argv[1]
    class Git(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def handle_git(self):
            path, _, query = self.path.partition("?")
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            env = {"PATH": "/usr/bin:/bin", "GIT_PROJECT_ROOT": root, "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": path,
                   "QUERY_STRING": query, "REQUEST_METHOD": self.command, "CONTENT_TYPE": self.headers.get("Content-Type") or "",
                   "CONTENT_LENGTH": str(len(body)), "GIT_PROTOCOL": self.headers.get("Git-Protocol") or "", "REMOTE_ADDR": "127.0.0.1"}
            out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
            head, _, payload = out.partition(b"\r\n\r\n") if b"\r\n\r\n" in out else out.partition(b"\n\n")
            status, headers = 200, []
            for line in head.decode().splitlines():
                name, _, value = line.partition(":")
                if name.lower() == "status": status = int(value.strip()[:3])
                elif name: headers.append((name, value.strip()))
            self.send_response(status)
            for name, value in headers: self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        do_GET = do_POST = handle_git
        def log_message(self, *args): sys.stderr.write("%s\n" % self.requestline)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Git)
    if len(sys.argv) > 4:
        import ssl
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[3], sys.argv[4])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    with open(sys.argv[2] + ".tmp", "w") as f: f.write(str(server.server_address[1]))
    os.rename(sys.argv[2] + ".tmp", sys.argv[2])
    server.serve_forever()
    """#

    /// A bare repository `repo.git` with one commit on `main`, served by ``server`` (HTTPS with
    /// `tls` = certificate and key files); returns the running server and its port.
    static func startServer(in directory: TemporaryDirectory, tls: (certificate: String, key: String)? = nil) throws -> (ProgramRun, String) {
        let root = directory.path("srv")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try shell("git init -q -b main work && git -C work -c user.name=t -c user.email=t@example.test commit -q --allow-empty -m init && git clone -q --bare work srv/repo.git", in: directory.path("."))
        let script = try directory.write("git-server.py", Self.server)
        let portFile = directory.path("port")
        let arguments = [script, root, portFile] + (tls.map { [$0.certificate, $0.key] } ?? [])
        let process = try ProgramRun.start("/usr/bin/env", ["python3"] + arguments, environment: TestEnvironment.base)
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: portFile) { Thread.sleep(forTimeInterval: 0.1) }
        do {
            return (process, try directory.read("port"))
        } catch {
            stop(process)
            throw TestSupportError.commandFailed("git-server.py", try process.wait(timeout: 10))
        }
    }

    /// Stops the server. SIGKILL: `ProgramRun` children inherit the signal mask of the Dispatch thread
    /// that spawns them, with SIGTERM blocked, so a SIGTERM would only make `wait` run into its timeout.
    static func stop(_ server: ProgramRun) {
        server.send(SIGKILL)
        _ = try? server.wait(timeout: 10)
    }

    /// Plain HTTP: allowed → refs listed; denied → 403 and exit 77.
    @Test func lsRemoteThroughTheProxyAllowedAndDenied() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (server, port) = try Self.startServer(in: directory)
        defer { Self.stop(server) }
        let url = "http://127.0.0.1:\(port)/repo.git"
        let allow = try directory.write("allow.yaml", "version: 1\negress:\n  default: deny\n  allow: [\"127.0.0.1:\(port)\"]\n")
        let allowed = try StepGuardBinary.run(["run", "--policy", allow, "--", "git", "ls-remote", url])
        #expect(allowed.status == 0, "\(allowed.stderr)")
        #expect(allowed.stdout.contains("\trefs/heads/main"))

        let deny = try directory.write("deny.yaml", "version: 1\non_violation: fail\negress:\n  default: allow\n  deny: [\"127.0.0.1:\(port)\"]\n")
        let denied = try StepGuardBinary.run(["run", "--policy", deny, "--", "git", "ls-remote", url])
        #expect(denied.status == 77)
        #expect(denied.stderr.contains("403"))
    }

    /// HTTPS through a plain CONNECT tunnel (not a catalog service): allowed → refs listed; denied → git fails, exit 77.
    @Test func lsRemoteOverHTTPSThroughTheTunnelAllowedAndDenied() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let ca = try TestCertificateAuthority(directory: directory, name: "git CA")
        let issued = try ca.authority.issueServerCertificate(for: "git.example.test")
        let pem = Data(try issued.certificateDER).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        let certificate = try directory.write("git.example.test.pem", "-----BEGIN CERTIFICATE-----\n\(pem)\n-----END CERTIFICATE-----\n")
        // The test server's own key (not stepguard's): python's ssl module loads it from a file.
        let key = try directory.write("git.example.test.key", issued.privateKeyPEM, mode: 0o600)
        let (server, port) = try Self.startServer(in: directory, tls: (certificate, key))
        defer { Self.stop(server) }
        let network = "network:\n  resolve: { \"git.example.test:443\": \"127.0.0.1:\(port)\" }\n"
        // The step's GIT_SSL_CAINFO is the per-run bundle (system CAs + stepguard's CA, for intercepted
        // services); git.example.test is only tunnelled, so git checks the server's own certificate,
        // issued by the test CA, which that bundle lacks: the step points git at the test CA instead.
        let script = "GIT_SSL_CAINFO=\(ca.certificateFile) git ls-remote https://git.example.test/repo.git"
        let allow = try directory.write("allow.yaml", "version: 1\negress:\n  default: deny\n  allow: [git.example.test]\n" + network)
        let allowed = try StepGuardBinary.run(["run", "--policy", allow, "--", "/bin/sh", "-c", script])
        #expect(allowed.status == 0, "\(allowed.stderr)")
        #expect(allowed.stdout.contains("\trefs/heads/main"))

        let deny = try directory.write("deny.yaml", "version: 1\non_violation: fail\negress:\n  default: allow\n  deny: [git.example.test]\n" + network)
        let denied = try StepGuardBinary.run(["run", "--policy", deny, "--", "/bin/sh", "-c", script])
        #expect(denied.status == 77)
        #expect(denied.stdout.isEmpty)
        #expect(denied.stderr.contains("403"), "\(denied.stderr)")
    }
}
