import Foundation
import StepGuardEgress
import StepGuardServerTestSupport
import StepGuardTestSupport
import Testing

/// Edge cases of TLS interception: upstream certificate checks, `mode: audit`, the leaf certificates
/// and ALPN the proxy presents, catalog hosts left out of `services:`, and malformed requests inside
/// an intercepted connection. Same local stand as ``InterceptionTests``.
@Suite(.serialized) struct InterceptionEdgeTests {
    typealias Stand = InterceptionTests.Stand
    static let pat = "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"

    // MARK: Upstream certificate verification

    /// An upstream whose certificate comes from a CA missing from `network.upstream_ca` gets no request; the client gets 502.
    @Test func anUpstreamCertifiedByAnotherCAIsRefused() async throws {
        let stand = try Stand(names: ["fulcio.sigstore.dev"])
        let otherCA = try TestCertificateAuthority(directory: stand.directory, name: "other CA")
        let session = try await stand.session(InterceptionTests.fulcio, resolve: ["fulcio.sigstore.dev:443"], upstreamCA: otherCA.certificateFile)
        defer { session.stop() }
        try expectRefusedUpstream(stand, session, failure: "CERTIFICATE_VERIFY_FAILED")
    }

    /// An upstream whose certificate names another host gets no request; the client gets 502.
    @Test func anUpstreamCertifiedForAnotherNameIsRefused() async throws {
        // At 127.0.0.2, none of the certificate's names (signing.example.test, localhost, 127.0.0.1, ::1) fits.
        let stand = try Stand(names: ["signing.example.test"], host: "127.0.0.2")
        let session = try await stand.session(InterceptionTests.fulcio, resolve: ["fulcio.sigstore.dev:443"])
        defer { session.stop() }
        try expectRefusedUpstream(stand, session, failure: "Couldn't find fulcio.sigstore.dev in certificate from peer")
    }

    /// An upstream certificate for another name is refused even when it also names the address the proxy connects to.
    @Test func anUpstreamCertifiedForAnotherNameAndItsAddressIsRefused() async throws {
        // The certificate names signing.example.test, localhost, 127.0.0.1 and ::1; the proxy connects to 127.0.0.1.
        let stand = try Stand(names: ["signing.example.test"])
        let session = try await stand.session(InterceptionTests.fulcio, resolve: ["fulcio.sigstore.dev:443"])
        defer { session.stop() }
        try expectRefusedUpstream(stand, session, failure: "the certificate from peer does not name fulcio.sigstore.dev (it names only localhost, signing.example.test; an IP address entry does not certify a name)")
    }

    /// An allowed request (workload token) to an upstream that fails verification with `failure`:
    /// 502 from the proxy naming the upstream, after a TCP connection but before any request reached it.
    func expectRefusedUpstream(_ stand: Stand, _ session: EgressSession, failure: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let response = try InterceptionTests.post(session, "Bearer \(stand.workloadToken)")
        #expect(response.stdout.hasPrefix("HTTP/1.1 502"), "\(response.stdout) \(response.stderr)", sourceLocation: sourceLocation)
        #expect(response.stdout.contains("X-StepGuard-Decision: error"), sourceLocation: sourceLocation)
        #expect(response.stdout.contains("the upstream https://fulcio.sigstore.dev:443@"), sourceLocation: sourceLocation)
        #expect(response.stdout.contains("\(stand.server.host):\(stand.server.port) failed: "), sourceLocation: sourceLocation)
        #expect(response.stdout.contains(failure), sourceLocation: sourceLocation)
        #expect(stand.server.acceptedConnections >= 1, "the proxy reached the upstream", sourceLocation: sourceLocation)
        #expect(stand.server.requests.isEmpty, sourceLocation: sourceLocation)
    }

    // MARK: mode: audit

    /// In `mode: audit` a request the service rule denies is forwarded, and logged as a would-be deny without the token.
    @Test func auditModeForwardsADeniedServiceRequestAndLogsIt() async throws {
        let stand = try Stand(names: ["fulcio.sigstore.dev"])
        let stop = Egress.StopCounter()
        let session = try await stand.session(InterceptionTests.fulcio, resolve: ["fulcio.sigstore.dev:443"], mode: "audit", onViolation: "kill", stop: stop)
        defer { session.stop() }

        let response = try InterceptionTests.post(session, "Bearer \(Self.pat)")
        #expect(response.stdout.hasPrefix("HTTP/1.1 200"), "\(response.stdout) \(response.stderr)")
        #expect(!response.stdout.contains("X-StepGuard-Decision"))
        #expect(stand.server.requests.map(\.uri) == ["/api/v2/signingCert"])
        #expect(stand.server.requests.first?.header("authorization") == "Bearer \(Self.pat)", "forwarded unchanged")
        #expect(stop.value == 0, "on_violation: kill does not apply in audit mode")

        #expect(try !String(contentsOfFile: stand.log, encoding: .utf8).contains(Self.pat))
        let events = try AuditLogFile.events(stand.log)
        #expect(events.allSatisfy { $0["mode"] as? String == "audit" && $0["enforced"] as? Bool == false })
        let service = events.filter { $0["type"] as? String == "service" }
        #expect(service.count == 1)
        let event = try #require(service.first)
        #expect(event["decision"] as? String == "deny")
        #expect(event["rule"] as? String == "services.sigstore-fulcio.allow[0]")
        #expect((event["reason"] as? String)?.hasPrefix("POST /api/v2/signingCert to sigstore-fulcio is denied") == true, "\(event)")
        #expect(event["service"] as? String == "sigstore-fulcio")
        #expect(event["host"] as? String == "fulcio.sigstore.dev")
        #expect(event["method"] as? String == "POST")
        #expect(event["path"] as? String == "/api/v2/signingCert")
        #expect(event["sensitive"] as? Bool == true)
        #expect(event["credential"] as? String == "long-lived")
        let redacted = try #require(event["credential_id"] as? String)
        #expect(redacted.hasPrefix("ghp_") && redacted != Self.pat, "\(redacted)")
    }

    // MARK: Leaf certificates and ALPN

    /// Separate connections to an intercepted host get the same cached leaf from the per-run CA, and ALPN http/1.1 even when h2 is offered first.
    @Test func theLeafIsCachedPerHostAndALPNIsHTTP11Only() async throws {
        let stand = try Stand(names: ["fulcio.sigstore.dev"])
        let session = try await stand.session(InterceptionTests.fulcio, resolve: ["fulcio.sigstore.dev:443"])
        defer { session.stop() }

        func handshake() throws -> String {
            let arguments = ["s_client", "-proxy", "127.0.0.1:\(session.port)", "-connect", "fulcio.sigstore.dev:443", "-servername", "fulcio.sigstore.dev",
                             "-alpn", "h2,http/1.1", "-CAfile", session.serviceTrustBundle, "-verify_hostname", "fulcio.sigstore.dev", "-verify_return_error"]
            let result = try ProgramRun.start("/usr/bin/openssl", arguments, environment: TestEnvironment.base).wait(timeout: 20)
            return result.stdout
        }
        func leaf(_ output: String) -> Substring? {
            guard let start = output.range(of: "-----BEGIN CERTIFICATE-----"), let end = output.range(of: "-----END CERTIFICATE-----") else { return nil }
            return output[start.lowerBound..<end.upperBound]
        }
        let first = try handshake()
        let second = try handshake()
        for output in [first, second] {
            #expect(output.contains("ALPN protocol: http/1.1"), "\(output)")
            #expect(output.contains("Verify return code: 0 (ok)"))
            #expect(output.contains("CN = stepguard per-run CA"), "issued by the per-run CA")
        }
        let firstLeaf = try #require(leaf(first))
        #expect(leaf(second) == firstLeaf, "the same leaf on both connections")

        // curl asking for HTTP/2 still talks HTTP/1.1 to the service.
        let http2 = try Egress.curl(session, ["--http2", "-o", "/dev/null", "-w", "%{http_version} %{response_code}", "-X", "POST",
                                              "-H", "Authorization: Bearer \(stand.workloadToken)", "https://fulcio.sigstore.dev/api/v2/signingCert"])
        #expect(http2.stdout == "1.1 200", "\(http2.stderr)")
        #expect(stand.server.requests.count == 1)
    }

    // MARK: Catalog hosts left out of services:

    /// A catalog host not named in `services:` is an uninspected tunnel: the client sees the upstream's own certificate, requests are not decided.
    @Test func aCatalogHostNotInServicesIsAPlainTunnel() async throws {
        let stand = try Stand(names: ["fulcio.sigstore.dev", "rekor.sigstore.dev"])
        // Fulcio (the service) is elsewhere: a name leading to a service's address is refused (HostileServiceTests).
        let policy = try Egress.policy("""
        version: 1
        on_violation: fail
        egress: { default: deny, allow: [rekor.sigstore.dev] }
        services:
        \(InterceptionTests.fulcio)
        network:
          resolve: { "rekor.sigstore.dev:443": "\(stand.server.host):\(stand.server.port)", "fulcio.sigstore.dev:443": "127.0.0.1:9" }
          upstream_ca: \(stand.ca.certificateFile)
        """)
        let session = try await Egress.session(policy, trail: try Egress.trail(log: stand.log))
        defer { session.stop() }

        // Trusting only the upstream's CA works; a method, Host and long-lived token a service rule
        // would deny reach the upstream unchanged.
        let direct = try Egress.curl(session, ["-i", "--cacert", stand.ca.certificateFile, "-X", "DELETE", "-H", "Authorization: Bearer \(Self.pat)",
                                               "-H", "Host: fulcio.sigstore.dev", "https://rekor.sigstore.dev/api/v1/log/entries"])
        #expect(direct.stdout.hasPrefix("HTTP/1.1 200"), "\(direct.stdout) \(direct.stderr)")
        #expect(direct.stdout.contains(#""method":"DELETE""#))
        let received = try #require(stand.server.requests.first)
        #expect(received.header("authorization") == "Bearer \(Self.pat)")
        #expect(received.header("host") == "fulcio.sigstore.dev")
        // Trusting only the run's bundle (the per-run CA) fails: no leaf of the proxy is presented.
        let bundleOnly = try Egress.curl(session, ["--cacert", session.serviceTrustBundle, "https://rekor.sigstore.dev/"])
        #expect(bundleOnly.status == 60, "curl: SSL certificate problem: \(bundleOnly.stderr)")
        #expect(stand.server.requests.count == 1)

        let events = try AuditLogFile.events(stand.log)
        #expect(!events.contains { $0["type"] as? String == "service" })
        #expect(events.count == 2)
        #expect(events.allSatisfy {
            $0["type"] as? String == "egress" && $0["decision"] as? String == "allow" && $0["method"] as? String == "CONNECT"
                && $0["host"] as? String == "rekor.sigstore.dev" && $0["rule"] as? String == "egress.allow: rekor.sigstore.dev"
        }, "\(events)")
    }

    // MARK: Malformed requests inside intercepted TLS

    /// Sends each raw request in its own intercepted TLS connection to fulcio.sigstore.dev; returns
    /// everything each connection answered before it closed.
    static func rawIntercepted(_ session: EgressSession, _ requests: [String]) throws -> [String] {
        let script = """
        import json, socket, ssl, sys
        answers = []
        for raw in json.loads(sys.argv[1]):
            s = socket.create_connection(("127.0.0.1", \(session.port)), timeout=10)
            s.sendall(b"CONNECT fulcio.sigstore.dev:443 HTTP/1.1\\r\\nHost: fulcio.sigstore.dev:443\\r\\n\\r\\n")
            head = b""
            while not head.endswith(b"\\r\\n\\r\\n"):
                head += s.recv(1)
            tls = ssl.create_default_context(cafile="\(session.serviceTrustBundle)").wrap_socket(s, server_hostname="fulcio.sigstore.dev")
            tls.sendall(raw.encode())
            answer = b""
            try:
                while True:
                    chunk = tls.recv(65536)
                    if not chunk:
                        break
                    answer += chunk
            except (ssl.SSLError, OSError):
                pass
            answers.append(answer.decode("latin-1"))
        print(json.dumps(answers))
        """
        let argument = String(decoding: try JSONSerialization.data(withJSONObject: requests), as: UTF8.self)
        let result = try ProgramRun.start("/usr/bin/env", ["python3", "-c", script, argument], environment: TestEnvironment.base).wait(timeout: 60)
        return try JSONDecoder().decode([String].self, from: Data(result.stdout.utf8))
    }

    /// Conflicting framing and oversized header sections inside an intercepted connection are answered 4xx and never forwarded.
    @Test func malformedInterceptedRequestsAreRejectedBeforeTheUpstream() async throws {
        let stand = try Stand(names: ["fulcio.sigstore.dev"])
        let session = try await stand.session(InterceptionTests.fulcio, resolve: ["fulcio.sigstore.dev:443"])
        defer { session.stop() }
        let limits = ProxyLimits()
        let start = "POST /api/v2/signingCert HTTP/1.1\r\nHost: fulcio.sigstore.dev\r\nConnection: close\r\n"
        let signed = start + "Authorization: Bearer \(stand.workloadToken)\r\n"
        // Without a credential: what passes the limits is decided, denied (403), not forwarded.
        let bare = start + "Content-Length: 0\r\n"
        let bareFields = 3, bareBytes = "Host".count + "fulcio.sigstore.dev".count + "Connection".count + "close".count + "Content-Length".count + "0".count
        /// `count` more fields of `bytes` name and value bytes in all.
        func padding(_ count: Int, bytes: Int) -> String {
            (0..<count).map { index in
                let valueBytes = bytes / count + (index == 0 ? bytes % count : 0) - "X-Field-1000".count
                return "X-Field-\(1000 + index): \(String(repeating: "v", count: valueBytes))\r\n"
            }.joined()
        }
        let cases: [(name: String, request: String, status: Int, reason: String?)] = [
            ("well-formed", signed + "Content-Length: 2\r\n\r\n{}", 200, nil),
            // Conflicting framing: NIO's HTTP decoder (llhttp) refuses it before stepguard's own framing
            // check would; ProtocolErrorAnswer answers for the proxy and closes.
            ("Content-Length and Transfer-Encoding", signed + "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 400,
             "the request is malformed"),
            ("conflicting Content-Length", signed + "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400, "the request is malformed"),
            ("as many fields as allowed", bare + padding(limits.maxHeaderCount - bareFields, bytes: 13 * (limits.maxHeaderCount - bareFields)) + "\r\n",
             403, "credential"),
            ("one field too many", bare + padding(limits.maxHeaderCount - bareFields + 1, bytes: 13 * (limits.maxHeaderCount - bareFields + 1)) + "\r\n",
             431, "has \(limits.maxHeaderCount + 1) header fields; at most \(limits.maxHeaderCount) are accepted"),
            ("as many header bytes as allowed", bare + padding(40, bytes: limits.maxHeaderBytes - bareBytes) + "\r\n", 403, "credential"),
            ("one header byte too many", bare + padding(40, bytes: limits.maxHeaderBytes - bareBytes + 1) + "\r\n",
             431, "are \(limits.maxHeaderBytes + 1) bytes; at most \(limits.maxHeaderBytes) are accepted"),
            // Past the HTTP decoder's own limit: refused by the decoder, answered by ProtocolErrorAnswer.
            ("far too many fields", bare + padding(limits.maxHeaderCount * 3, bytes: 13 * limits.maxHeaderCount * 3) + "\r\n", 431,
             "the request's header block is past the proxy's limits"),
        ]
        let answers = try Self.rawIntercepted(session, cases.map(\.request))
        try #require(answers.count == cases.count)
        for (answer, expected) in zip(answers, cases) {
            #expect(Egress.statusCode(answer) == expected.status, "\(expected.name): \(answer.prefix(300))")
            if let reason = expected.reason {
                #expect(answer.contains(reason), "\(expected.name): \(answer)")
                #expect(answer.contains("X-StepGuard-Decision: \(expected.status == 403 ? "deny" : "error")"), "\(expected.name)")
            }
        }
        #expect(stand.server.requests.count == 1, "only the well-formed request reached the upstream")
    }
}

extension InterceptionTests.Stand {
    /// A short-lived token of the job's own identity (satisfies `credential: workload`).
    var workloadToken: String { issuer.token(subject: InterceptionTests.job, claims: ["repository": "acme/app"]) }
}
