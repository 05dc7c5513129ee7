import Foundation
import StepGuardAudit
import StepGuardEgress
import StepGuardPolicy
import StepGuardServerTestSupport
import StepGuardTestSupport
import Testing

/// TLS interception of catalog services, with local HTTPS servers standing in for Fulcio and Vault
/// (certificates from a CA the test makes, reached through `network.resolve`).
@Suite(.serialized) struct InterceptionTests {
    static let job = "repo:acme/app:ref:refs/tags/v1.0.0"

    final class Stand {
        let directory: TemporaryDirectory
        let ca: TestCertificateAuthority
        let server: LocalHTTPServer
        let issuer = TestOIDCIssuer()
        let log: String

        /// A server at `host` (loopback) with a certificate for `names`, `localhost`, `127.0.0.1` and `::1`;
        /// by default it answers every request with its method and path as JSON.
        init(names: [String], host: String = "127.0.0.1",
             handler: @escaping LocalHTTPServer.Handler = { .json(#"{"ok":true,"method":"\#($0.method)","path":"\#($0.uri)"}"#) }) throws {
            directory = try TemporaryDirectory()
            ca = try TestCertificateAuthority(directory: directory, name: "upstream CA")
            server = try LocalHTTPServer.start(host: host, tls: ca, tlsNames: names, handler: handler)
            log = directory.path("audit.jsonl")
        }

        /// A session with `services`, the `resolve` names pointing at the server; `mode: audit` records
        /// every line as not enforced, and `upstreamCA` replaces the server's CA in `network.upstream_ca`.
        func session(_ services: String, resolve: [String], mode: String = "enforce", onViolation: String = "fail", started: Date = Date(),
                     egress: String = "{ default: deny }", upstreamCA: String? = nil,
                     stop: Egress.StopCounter = Egress.StopCounter()) async throws -> EgressSession {
            let resolveYAML = resolve.map { "\"\($0)\": \"\(server.host):\(server.port)\"" }.joined(separator: ", ")
            let policy = try Egress.policy("""
            version: 1
            mode: \(mode)
            on_violation: \(onViolation)
            egress: \(egress)
            services:
            \(services)
            network:
              resolve: { \(resolveYAML) }
              upstream_ca: \(upstreamCA ?? ca.certificateFile)
            """)
            let identity = issuer.identity(subject: InterceptionTests.job, claims: ["repository": .string("acme/app"), "ref": .string("refs/tags/v1.0.0")])
            return try EgressSession.start(policy: policy, identity: identity, trail: try Egress.trail(log: log, auditOnly: mode == "audit"),
                                                 verifier: issuer.verifier(for: identity, pinned: ["repository"]), detector: Egress.detector,
                                                 stepStarted: started, stopStep: stop.closure)
        }

        /// The audit log's `service` events so far.
        func serviceEvents() throws -> [[String: Any]] { try AuditLogFile.events(log).filter { $0["type"] as? String == "service" } }

        deinit {
            server.shutdown()
            directory.remove()
        }
    }

    static let fulcio = """
      - service: sigstore-fulcio
        allow: { methods: [POST], paths: ["/api/v2/signingCert"], claims: { repository: acme/app }, credential: workload, window: 5m }
    """

    /// POSTs `{}` with `authorization` through the session's proxy (curl -i).
    static func post(_ session: EgressSession, _ authorization: String?, url: String = "https://fulcio.sigstore.dev/api/v2/signingCert", extra: [String] = []) throws -> ProgramResult {
        var arguments = ["-i", "-X", "POST", "-H", "Content-Type: application/json", "--data", "{}"] + extra
        if let authorization { arguments += ["-H", "Authorization: \(authorization)"] }
        return try Egress.curl(session, arguments + [url])
    }

    @Test func workloadTokenIsAcceptedAndOthersAreDenied() async throws {
        let stand = try Stand(names: ["fulcio.sigstore.dev"])
        let session = try await stand.session(Self.fulcio, resolve: ["fulcio.sigstore.dev:443"])
        defer { session.stop() }

        let workload = try Self.post(session, "Bearer \(stand.issuer.token(subject: Self.job, claims: ["repository": "acme/app"]))")
        #expect(workload.stdout.hasPrefix("HTTP/1.1 200"), "\(workload.stdout) \(workload.stderr)")
        #expect(workload.stdout.contains(#""path":"/api/v2/signingCert""#))
        #expect(stand.server.requests.first?.header("authorization")?.hasPrefix("Bearer ") == true)

        let otherSub = try Self.post(session, "Bearer \(stand.issuer.token(subject: "repo:evil/fork:ref:refs/heads/main", claims: ["repository": "acme/app"]))")
        #expect(otherSub.stdout.hasPrefix("HTTP/1.1 403"))
        #expect(otherSub.stdout.contains("another identity"))

        let pat = try Self.post(session, "Bearer ghp_0123456789abcdefghijklmnopqrstuvwxyzAB")
        #expect(pat.stdout.hasPrefix("HTTP/1.1 403"))
        #expect(!pat.stdout.contains("ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"))
        let akia = try Self.post(session, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=0")
        #expect(akia.stdout.hasPrefix("HTTP/1.1 403"))
        #expect(akia.stdout.contains("AKIA"))
        let none = try Self.post(session, nil)
        #expect(none.stdout.hasPrefix("HTTP/1.1 403"))
        #expect(stand.server.requests.count == 1)

        let log = try String(contentsOfFile: stand.log, encoding: .utf8)
        #expect(!log.contains("ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"))
        #expect(!log.contains("AKIAIOSFODNN7EXAMPLE"))
        let events = try stand.serviceEvents()
        #expect(events.map { $0["credential"] as? String } == ["workload", "short-lived", "long-lived", "long-lived", "none"])
        #expect(events.allSatisfy { $0["host"] as? String == "fulcio.sigstore.dev" && $0["path"] as? String == "/api/v2/signingCert" && $0["method"] as? String == "POST" })
        #expect(events[0]["rule"] as? String == "services.sigstore-fulcio.allow[0]")
    }

    @Test func interceptedRequestsReuseTheVerifiedUpstreamConnectionAndAreEachDecided() async throws {
        let stand = try Stand(names: ["fulcio.sigstore.dev"])
        let session = try await stand.session(Self.fulcio, resolve: ["fulcio.sigstore.dev:443"])
        defer { session.stop() }
        let token = stand.issuer.token(subject: Self.job, claims: ["repository": "acme/app"])

        // Six client connections (six curl runs): their requests share at most one upstream TLS
        // connection per event loop, and each one is decided on its own credential.
        for index in 0..<6 {
            let response = try Self.post(session, index == 3 ? "Bearer ghp_0123456789abcdefghijklmnopqrstuvwxyzAB" : "Bearer \(token)")
            #expect(response.stdout.hasPrefix(index == 3 ? "HTTP/1.1 403" : "HTTP/1.1 200"), "\(index): \(response.stdout) \(response.stderr)")
        }
        #expect(stand.server.requests.count == 5)
        #expect(stand.server.acceptedConnections <= session.threads, "\(stand.server.acceptedConnections) upstream connections over \(session.threads) loops")
        let events = try stand.serviceEvents()
        #expect(events.map { $0["decision"] as? String } == ["allow", "allow", "allow", "deny", "allow", "allow"])
    }

    @Test func afterTheWindowTheServiceIsDenied() async throws {
        let stand = try Stand(names: ["fulcio.sigstore.dev"])
        let session = try await stand.session(Self.fulcio, resolve: ["fulcio.sigstore.dev:443"], started: Date().addingTimeInterval(-301))
        defer { session.stop() }
        let late = try Self.post(session, "Bearer \(stand.issuer.token(subject: Self.job, claims: ["repository": "acme/app"]))")
        #expect(late.stdout.hasPrefix("HTTP/1.1 403"))
        #expect(late.stdout.contains("window"))
        #expect(stand.server.requests.isEmpty)
    }

    @Test func hostHeaderAndSNIMustEqualTheConnectTarget() async throws {
        let stand = try Stand(names: ["fulcio.sigstore.dev"])
        let session = try await stand.session(Self.fulcio, resolve: ["fulcio.sigstore.dev:443"])
        defer { session.stop() }
        let token = stand.issuer.token(subject: Self.job, claims: ["repository": "acme/app"])
        let mismatch = try Self.post(session, "Bearer \(token)", extra: ["-H", "Host: rekor.sigstore.dev"])
        #expect(mismatch.stdout.hasPrefix("HTTP/1.1 403"), "\(mismatch.stdout)")
        #expect(mismatch.stdout.contains("differs from the CONNECT target"))

        let script = """
        import socket, ssl, sys
        s = socket.create_connection(("127.0.0.1", \(session.port)))
        s.sendall(b"CONNECT fulcio.sigstore.dev:443 HTTP/1.1\\r\\nHost: fulcio.sigstore.dev:443\\r\\n\\r\\n")
        print(s.recv(4096).split(b"\\r\\n")[0].decode())
        ctx = ssl.create_default_context(cafile="\(session.serviceTrustBundle)")
        ctx.check_hostname = False
        try:
            ctx.wrap_socket(s, server_hostname="evil.example")
            print("handshake ok")
        except Exception as e:
            print("handshake failed")
        """
        let result = try ProgramRun.start("/usr/bin/env", ["python3", "-c", script], environment: TestEnvironment.base).wait(timeout: 20)
        #expect(result.stdout == "HTTP/1.1 200 Connection Established\nhandshake failed\n", "\(result.stderr)")
        #expect(stand.server.requests.isEmpty)
        let events = try AuditLogFile.events(stand.log).filter { $0["sni"] != nil }
        #expect(events.count == 1)
        #expect(events.first?["type"] as? String == "service")
        #expect(events.first?["decision"] as? String == "deny")
        #expect(events.first?["rule"] as? String == "built-in: SNI must equal the CONNECT host")
        #expect(events.first?["host"] as? String == "fulcio.sigstore.dev")
        #expect(events.first?["sni"] as? String == "evil.example")
    }

    /// A client's ClientHello sent in records of `fragment` bytes (or as it comes), with `sni`; prints
    /// the CONNECT answer, then whether the handshake completed and a request got a response.
    static func fragmentedHandshakeScript(port: Int, bundle: String, sni: String, fragment: Int?, connect: String = "fulcio.sigstore.dev:443") -> String {
        """
        import socket, ssl
        s = socket.create_connection(("127.0.0.1", \(port)))
        s.sendall(b"CONNECT \(connect) HTTP/1.1\\r\\nHost: \(connect)\\r\\n\\r\\n")
        head = b""
        while not head.endswith(b"\\r\\n\\r\\n"):
            head += s.recv(1)
        print(head.split(b"\\r\\n")[0].decode())
        \(PythonTLS.clientHello(serverName: sni, context: "ssl.create_default_context(cafile=\"\(bundle)\")"))
        fragment = \(fragment.map(String.init) ?? "None")
        if fragment is None:
            s.sendall(hello)
        else:
            message = hello[5:]
            for start in range(0, len(message), fragment):
                piece = message[start:start + fragment]
                s.sendall(bytes([0x16, 3, 1]) + len(piece).to_bytes(2, "big") + piece)
        def pump():
            data = outgoing.read()
            if data:
                s.sendall(data)
            received = s.recv(65536)
            if not received:
                raise EOFError()
            incoming.write(received)
        try:
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    pump()
            tls.write(b"GET /ping HTTP/1.1\\r\\nHost: fulcio.sigstore.dev\\r\\nConnection: close\\r\\n\\r\\n")
            response = b""
            while b"\\r\\n" not in response:
                try:
                    response += tls.read(4096)
                except ssl.SSLWantReadError:
                    pump()
            print("handshake ok", response.split(b"\\r\\n")[0].decode())
        except Exception as e:
            print("handshake failed")
        """
    }

    @Test func theSNIIsCheckedWhateverTheRecordFraming() async throws {
        let stand = try Stand(names: ["fulcio.sigstore.dev"])
        let session = try await stand.session(Self.fulcio, resolve: ["fulcio.sigstore.dev:443"])
        defer { session.stop() }
        // (SNI, fragment size, the handshake completes): the same name in another case or with a
        // trailing dot is the same host; a different one is denied in one record or in many.
        let cases: [(String, Int?, Bool)] = [
            ("fulcio.sigstore.dev", nil, true), ("fulcio.sigstore.dev", 7, true), ("FULCIO.Sigstore.dev", 100, true),
            ("evil.example", 7, false), ("evil.example", 100, false), ("fulcio.sigstore.dev.evil.example", nil, false),
        ]
        for (sni, fragment, allowed) in cases {
            let script = Self.fragmentedHandshakeScript(port: session.port, bundle: session.serviceTrustBundle, sni: sni, fragment: fragment)
            let result = try ProgramRun.start("/usr/bin/env", ["python3", "-c", script], environment: TestEnvironment.base).wait(timeout: 20)
            // The request is answered by the proxy: 403, as it carries no workload token.
            let expected = allowed ? "handshake ok HTTP/1.1 403 Forbidden" : "handshake failed"
            #expect(result.stdout == "HTTP/1.1 200 Connection Established\n\(expected)\n", "\(sni) in records of \(fragment ?? 0): \(result.stderr)")
        }
        let denied = try AuditLogFile.events(stand.log).filter { $0["rule"] as? String == "built-in: SNI must equal the CONNECT host" }
        #expect(denied.map { $0["sni"] as? String } == ["evil.example", "evil.example", "fulcio.sigstore.dev.evil.example"])
        #expect(stand.server.requests.isEmpty)
    }

    @Test func aTunnelByAddressWithTheServiceSNIIsDenied() async throws {
        let stand = try Stand(names: ["fulcio.sigstore.dev"])
        let plain = try LocalHTTPServer.start { _ in ServerResponse(status: 200, body: "plain through tunnel") }
        defer { plain.shutdown() }
        // A server with the service's certificate at an address the policy does not know as the service's.
        let mirror = try LocalHTTPServer.start(tls: stand.ca, tlsNames: ["fulcio.sigstore.dev"]) { _ in .json(#"{"ok":true}"#) }
        defer { mirror.shutdown() }
        let session = try await stand.session(Self.fulcio, resolve: ["fulcio.sigstore.dev:443"],
                                              egress: "{ default: deny, allow: [\"127.0.0.1:\(stand.server.port)\", \"127.0.0.1:\(plain.port)\", \"127.0.0.1:\(mirror.port)\"] }")
        defer { session.stop() }
        // Tunnels that carry no ClientHello pass untouched; the service's own address is refused
        // although an egress rule allows it (see HostileServiceTests).
        let tunnelled = try Egress.curl(session, ["-p", "http://127.0.0.1:\(plain.port)/"])
        #expect(tunnelled.stdout == "plain through tunnel", "\(tunnelled.stderr)")
        let byAddress = try Egress.curl(session, ["-p", "--cacert", stand.ca.certificateFile, "https://127.0.0.1:\(stand.server.port)/"])
        #expect(!byAddress.stdout.contains("\"ok\":true"), "\(byAddress.stdout)")
        let script = """
        import socket, ssl
        s = socket.create_connection(("127.0.0.1", \(session.port)))
        s.sendall(b"CONNECT 127.0.0.1:\(mirror.port) HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n")
        print(s.recv(4096).split(b"\\r\\n")[0].decode())
        ctx = ssl.create_default_context(cafile="\(stand.ca.certificateFile)")
        try:
            t = ctx.wrap_socket(s, server_hostname="fulcio.sigstore.dev")
            t.sendall(b"GET / HTTP/1.1\\r\\nHost: fulcio.sigstore.dev\\r\\n\\r\\n")
            print("reached", t.recv(100)[:12])
        except Exception as e:
            print("handshake failed")
        """
        let result = try ProgramRun.start("/usr/bin/env", ["python3", "-c", script], environment: TestEnvironment.base).wait(timeout: 20)
        #expect(result.stdout == "HTTP/1.1 200 Connection Established\nhandshake failed\n", "\(result.stderr)")
        #expect(stand.server.requests.isEmpty && mirror.requests.isEmpty)
        let events = try AuditLogFile.events(stand.log)
        #expect(events.contains { $0["decision"] as? String == "deny" && $0["sni"] as? String == "fulcio.sigstore.dev" })
    }

    @Test func aTunnelByAddressCannotHideTheServiceSNIInSmallRecords() async throws {
        let stand = try Stand(names: ["fulcio.sigstore.dev"])
        // A server with the service's certificate at an address the policy does not know as the service's.
        let mirror = try LocalHTTPServer.start(tls: stand.ca, tlsNames: ["fulcio.sigstore.dev"]) { _ in .json(#"{"ok":true}"#) }
        defer { mirror.shutdown() }
        let session = try await stand.session(Self.fulcio, resolve: ["fulcio.sigstore.dev:443"],
                                              egress: "{ default: deny, allow: [\"127.0.0.1:\(mirror.port)\"] }")
        defer { session.stop() }
        // The upstream's own certificate (for the service name) would satisfy the client: only the
        // SNI check stands between it and an uninspected connection to the service.
        for fragment in [nil, 40, 200] as [Int?] {
            let script = Self.fragmentedHandshakeScript(port: session.port, bundle: stand.ca.certificateFile, sni: "fulcio.sigstore.dev",
                                                        fragment: fragment, connect: "127.0.0.1:\(mirror.port)")
            let result = try ProgramRun.start("/usr/bin/env", ["python3", "-c", script], environment: TestEnvironment.base).wait(timeout: 20)
            #expect(result.stdout == "HTTP/1.1 200 Connection Established\nhandshake failed\n", "records of \(fragment ?? 0): \(result.stderr)")
        }
        #expect(stand.server.requests.isEmpty && mirror.requests.isEmpty)
        let denied = try AuditLogFile.events(stand.log).filter { $0["sni"] as? String == "fulcio.sigstore.dev" && $0["decision"] as? String == "deny" }
        #expect(denied.count == 3)
    }

    @Test func killStopsTheStepOnAServiceViolation() async throws {
        let stand = try Stand(names: ["fulcio.sigstore.dev"])
        let stop = Egress.StopCounter()
        let session = try await stand.session(Self.fulcio, resolve: ["fulcio.sigstore.dev:443"], onViolation: "kill", stop: stop)
        defer { session.stop() }
        _ = try Self.post(session, "Bearer ghp_0123456789abcdefghijklmnopqrstuvwxyzAB")
        #expect(stop.value == 1)
    }

    @Test func vaultLoginWithTheJobTokenThenReadOnlyAllowedPaths() async throws {
        let stand = try Stand(names: ["vault.example.test"])
        let session = try await stand.session("""
          - service: hashicorp-vault
            hosts: [vault.example.test]
            allow:
              - { methods: [POST], paths: ["/v1/auth/jwt/login"], credential: workload }
              - { methods: [GET], paths: ["/v1/secret/data/ci/*"], credential: any }
        """, resolve: ["vault.example.test:8200"])
        defer { session.stop() }
        let base = "https://vault.example.test:8200"
        let token = stand.issuer.token(subject: Self.job, claims: ["repository": "acme/app"])
        let login = try Egress.curl(session, ["-i", "--data", #"{"role":"ci","jwt":"\#(token)"}"#, "\(base)/v1/auth/jwt/login"])
        #expect(login.stdout.hasPrefix("HTTP/1.1 200"), "\(login.stdout)\(login.stderr)")
        #expect(stand.server.requests.first?.body.count ?? 0 > 100, "the body is forwarded after inspection")
        let badLogin = try Egress.curl(session, ["-i", "--data", #"{"role":"ci","jwt":"ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"}"#, "\(base)/v1/auth/jwt/login"])
        #expect(badLogin.stdout.hasPrefix("HTTP/1.1 403"))
        let read = try Egress.curl(session, ["-i", "-H", "X-Vault-Token: hvs.CAESIJustATestToken", "\(base)/v1/secret/data/ci/app"])
        #expect(read.stdout.hasPrefix("HTTP/1.1 200"))
        let other = try Egress.curl(session, ["-i", "-H", "X-Vault-Token: hvs.CAESIJustATestToken", "\(base)/v1/secret/data/prod/db"])
        #expect(other.stdout.hasPrefix("HTTP/1.1 403"))
        #expect(stand.server.requests.map(\.uri) == ["/v1/auth/jwt/login", "/v1/secret/data/ci/app"])
    }

    @Test func pythonURLLibThroughTheProxy() async throws {
        let stand = try Stand(names: ["fulcio.sigstore.dev"])
        let session = try await stand.session(Self.fulcio, resolve: ["fulcio.sigstore.dev:443"])
        defer { session.stop() }
        let script = """
        import os, sys, urllib.request, urllib.error
        def call(auth):
            request = urllib.request.Request("https://fulcio.sigstore.dev/api/v2/signingCert", data=b"{}", method="POST",
                                             headers={"Authorization": auth, "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status
            except urllib.error.HTTPError as error:
                return "%d %s" % (error.code, error.headers.get("X-StepGuard-Decision"))
        print(call("Bearer " + sys.argv[1]))
        print(call("Bearer ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"))
        """
        let environment = TestEnvironment.with(session.environment)
        let token = stand.issuer.token(subject: Self.job, claims: ["repository": "acme/app"])
        let result = try ProgramRun.start("/usr/bin/env", ["python3", "-c", script, token], environment: environment).wait(timeout: 30)
        #expect(result.stdout == "200\n403 deny\n", "\(result.stderr)")
    }

    @Test func sigV4RequestsToSTS() async throws {
        let stand = try Stand(names: ["sts.us-east-1.amazonaws.com"])
        let session = try await stand.session("""
          - service: aws-sts
            allow: { credential: short-lived }
        """, resolve: ["sts.us-east-1.amazonaws.com:443"])
        defer { session.stop() }
        let url = "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15"
        let longLived = try Egress.curl(session, ["-i", "--aws-sigv4", "aws:amz:us-east-1:sts", "--user", "AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY", url])
        #expect(longLived.stdout.hasPrefix("HTTP/1.1 403"), "\(longLived.stdout)\(longLived.stderr)")
        let temporary = try Egress.curl(session, ["-i", "--aws-sigv4", "aws:amz:us-east-1:sts", "--user", "ASIAIOSFODNN7EXAMPLE:wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY",
                                                 "-H", "X-Amz-Security-Token: FwoGZXIvYXdzEJr//////////wEaDExample", url])
        #expect(temporary.stdout.hasPrefix("HTTP/1.1 200"), "\(temporary.stdout)\(temporary.stderr)")
        #expect(stand.server.requests.count == 1)
    }
}
