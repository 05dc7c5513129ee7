import Foundation
import NIOCore
import StepGuardAudit
import StepGuardEgress
import StepGuardPolicy
import StepGuardServerTestSupport
import StepGuardTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A request whose body arrives too late after its head gets `408` and its connection closed, so a
/// stalled or trickling client cannot hold a connection and an upstream forever. Raw sockets on loopback.
@Suite(.serialized) struct RequestBodyTimeoutTests {
    static let echo: LocalHTTPServer.Handler = { request in
        ServerResponse(status: 200, body: "received=\(request.body.count)")
    }

    static func limits(timeout: TimeAmount = .seconds(1), minRate: Int = 1024) -> ProxyLimits {
        var limits = ProxyLimits()
        limits.requestBodyTimeout = timeout
        limits.requestBodyMinRate = minRate
        return limits
    }

    static func head(_ target: String, length: Int, keepAlive: Bool = false) -> String {
        "POST \(target) HTTP/1.1\r\nHost: x\r\nContent-Length: \(length)\r\n\(keepAlive ? "" : "Connection: close\r\n")\r\n"
    }

    @Test func aStalledBodyGets408AndTheConnectionCloses() async throws {
        let server = try LocalHTTPServer.start(handler: Self.echo)
        defer { server.shutdown() }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let log = directory.path("audit.jsonl")
        let trail = try Egress.trail(log: log)
        let stop = Egress.StopCounter()
        let session = try await Egress.loopbackSession(trail: trail, limits: Self.limits(), stop: stop)
        defer { session.stop() }

        let started = Date()
        // 10 of 100 announced bytes, then nothing: the raw client waits for the proxy to answer and close.
        let response = Egress.raw(port: session.port, Self.head("http://127.0.0.1:\(server.port)/upload?sig=s3cr3t", length: 100) + "0123456789",
                                  timeout: 10)
        let elapsed = Date().timeIntervalSince(started)
        #expect(Egress.statusCode(response) == 408, "\(response)")
        #expect(elapsed >= 0.9 && elapsed < 8, "answered after \(elapsed) s")
        #expect(response.lowercased().contains("x-stepguard-decision: error"), "a timeout is not a policy decision")
        #expect(response.lowercased().contains("connection: close"))
        let json = try Egress.jsonBody(response)
        #expect(json["rule"] as? String == "built-in: request body timeout")
        #expect((json["reason"] as? String)?.contains("10 of 100 bytes") == true)
        #expect(server.requests.isEmpty, "the upstream never got a complete request")

        // Recorded and printed as an error — not a denial: the step's exit code stays its own, nothing is stopped.
        let events = try AuditLogFile.events(log).filter { $0["rule"] as? String == "built-in: request body timeout" }
        #expect(events.count == 1)
        #expect(events.first?["decision"] as? String == "error" && events.first?["type"] as? String == "egress")
        #expect(events.first?["host"] as? String == "127.0.0.1" && events.first?["path"] as? String == "/upload")
        #expect(events.first?["received_bytes"] as? Int == 10 && events.first?["content_length"] as? Int == 100)
        #expect(!(try directory.read("audit.jsonl")).contains("s3cr3t"), "queries are never recorded")
        #expect(trail.textLine(AuditEvent(type: .egress, decision: .error, reason: "r")).contains("ERROR egress"))
        #expect(!Verdict(stepExitCode: 0, outcome: "exited", events: trail.recorded, auditOnly: false, exitCode: { _ in 0 }).blocked)
        #expect(stop.value == 0)
        try await Task.sleep(for: .milliseconds(200))
        #expect(session.openConnections == 0)
    }

    @Test func aChunkedBodyThatNeverEndsGets408() async throws {
        let server = try LocalHTTPServer.start(handler: Self.echo)
        defer { server.shutdown() }
        let session = try await Egress.loopbackSession(limits: Self.limits())
        defer { session.stop() }
        let request = "POST http://127.0.0.1:\(server.port)/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        let response = Egress.raw(port: session.port, request, timeout: 10)
        #expect(Egress.statusCode(response) == 408, "\(response)")
        #expect(server.requests.isEmpty)
    }

    @Test func aBodyThatArrivesInTimeIsUnaffectedAndKeepAliveSurvivesTheTimer() async throws {
        let server = try LocalHTTPServer.start(handler: Self.echo)
        defer { server.shutdown() }
        let trail = try Egress.trail()
        // A generous timeout: the test must not depend on how busy the machine is.
        let session = try await Egress.loopbackSession(trail: trail, limits: Self.limits(timeout: .seconds(3)))
        defer { session.stop() }
        let connection = try #require(RawConnection(port: session.port))
        let target = "http://127.0.0.1:\(server.port)/in-time"
        #expect(connection.send(Self.head(target, length: 100, keepAlive: true) + String(repeating: "a", count: 10)))
        usleep(300_000)  // blocking: a busy cooperative pool must not stretch this pause past the timeout
        #expect(connection.send(String(repeating: "b", count: 90)))
        let first = connection.readResponse()
        #expect(Egress.statusCode(first) == 200, "\(first)")
        #expect(first.hasSuffix("received=100"))
        // Well past the timeout: the finished request's timer must not cut the idle keep-alive connection.
        try await Task.sleep(for: .milliseconds(3500))
        #expect(connection.send("GET http://127.0.0.1:\(server.port)/again HTTP/1.1\r\nHost: x\r\n\r\n"))
        let second = connection.readResponse()
        #expect(Egress.statusCode(second) == 200, "\(second)")
        #expect(server.requests.count == 2)
        #expect(!trail.recorded.contains { $0.decision == .error })
    }

    @Test func aLongUploadAtAReasonablePaceFinishesAndATrickleDoesNot() async throws {
        let server = try LocalHTTPServer.start(handler: Self.echo)
        defer { server.shutdown() }
        // 1 s, plus 1 s per 100 bytes received.
        let session = try await Egress.loopbackSession(limits: Self.limits(timeout: .seconds(1), minRate: 100))
        defer { session.stop() }
        let target = "http://127.0.0.1:\(server.port)/"

        // 10,000 bytes over ~2.5 s (4,000 bytes/s): longer than the timeout, but at a good pace.
        let steady = try #require(RawConnection(port: session.port))
        #expect(steady.send(Self.head(target + "steady", length: 10_000)))
        for _ in 0..<10 {
            #expect(steady.send(String(repeating: "s", count: 1000)))
            usleep(250_000)
        }
        let finished = steady.readResponse()
        #expect(Egress.statusCode(finished) == 200, "\(finished)")
        #expect(finished.hasSuffix("received=10000"))

        // One byte every 200 ms (5 bytes/s, 0.01 s more each) never earns enough time.
        let trickle = try #require(RawConnection(port: session.port))
        let started = Date()
        #expect(trickle.send(Self.head(target + "trickle", length: 100)))
        var answered = ""
        for _ in 0..<40 {
            if let early = trickle.readAvailable(), !early.isEmpty { answered = early; break }
            guard trickle.send("t") else { answered = trickle.readResponse(); break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(Egress.statusCode(answered) == 408, "\(answered)")
        #expect(Date().timeIntervalSince(started) < 8)
        #expect(server.requests.count == 1)
    }

    @Test func aStalledBodyToAnInterceptedServiceGets408() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let fulcio = try ServiceStandIn.start("fulcio.sigstore.dev", directory: directory) { _ in .json(#"{"signed":true}"#) }
        defer { fulcio.shutdown() }
        let log = directory.path("audit.jsonl")
        let policy = try Egress.policy("""
        version: 1
        egress: { default: deny }
        services:
          - service: sigstore-fulcio
            allow: { credential: any }
        \(fulcio.network)
        """)
        let session = try await Egress.session(policy, trail: try Egress.trail(log: log), limits: Self.limits())
        defer { session.stop() }
        // Fulcio takes the credential in the JSON body, so the proxy waits for the body before deciding.
        let script = """
        import socket, ssl, sys, time
        s = socket.create_connection(("127.0.0.1", \(session.port)))
        s.sendall(b"CONNECT fulcio.sigstore.dev:443 HTTP/1.1\\r\\nHost: fulcio.sigstore.dev:443\\r\\n\\r\\n")
        reply = b""
        while b"\\r\\n\\r\\n" not in reply:
            byte = s.recv(1)
            if not byte: sys.exit("the proxy closed the CONNECT")
            reply += byte
        t = ssl.create_default_context(cafile="\(session.serviceTrustBundle)").wrap_socket(s, server_hostname="fulcio.sigstore.dev")
        t.sendall(b"POST /api/v2/signingCert HTTP/1.1\\r\\nHost: fulcio.sigstore.dev\\r\\nContent-Type: application/json\\r\\nContent-Length: 100\\r\\n\\r\\n{\\"credentials\\"")
        started = time.time()
        t.settimeout(10)
        answer = b""
        while True:
            chunk = t.recv(65536)
            if not chunk: break
            answer += chunk
        print(answer.split(b"\\r\\n")[0].decode(), round(time.time() - started, 1))
        """
        let result = try ProgramRun.start("/usr/bin/python3", ["-c", script]).wait(timeout: 30)
        #expect(result.stdout.hasPrefix("HTTP/1.1 408"), "\(result.stdout) \(result.stderr)")
        #expect(fulcio.requests.isEmpty)
        let events = try AuditLogFile.events(log).filter { $0["rule"] as? String == "built-in: request body timeout" }
        #expect(events.count == 1)
        #expect(events.first?["type"] as? String == "service" && events.first?["service"] as? String == "sigstore-fulcio")
        #expect(events.first?["decision"] as? String == "error" && events.first?["path"] as? String == "/api/v2/signingCert")
    }
}

/// A plain loopback TCP client whose sends and reads the test controls one by one.
final class RawConnection {
    let fd: Int32
    private var buffered: [UInt8] = []

    init?(port: Int, receiveTimeout: Int = 10) {
        guard let fd = LoopbackSocket.connect(port: port, receiveTimeout: receiveTimeout) else { return nil }
        self.fd = fd
    }

    deinit { close(fd) }

    func send(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
    }

    /// What has arrived so far without waiting (nil when the peer closed and nothing is left).
    func readAvailable() -> String? {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        if count > 0 { return String(decoding: buffer[0..<count], as: UTF8.self) }
        return count == 0 ? nil : ""
    }

    /// Reads one response whose body has a Content-Length (or ends with the connection).
    func readResponse() -> String {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let text = String(decoding: buffered, as: UTF8.self)
            if let split = text.range(of: "\r\n\r\n") {
                let head = text[..<split.lowerBound].lowercased()
                if let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
                   let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) {
                    let headBytes = text[..<split.upperBound].utf8.count
                    if buffered.count >= headBytes + length {
                        let response = String(decoding: buffered[0..<(headBytes + length)], as: UTF8.self)
                        buffered.removeFirst(headBytes + length)
                        return response
                    }
                }
            }
            let count = recv(fd, &chunk, chunk.count, 0)
            if count <= 0 {
                defer { buffered = [] }
                return String(decoding: buffered, as: UTF8.self)
            }
            buffered += chunk[0..<count]
        }
    }
}
