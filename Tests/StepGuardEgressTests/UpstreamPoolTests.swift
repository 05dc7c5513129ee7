import Foundation
import StepGuardAudit
import StepGuardEgress
import StepGuardPolicy
import StepGuardServerTestSupport
import StepGuardTestSupport
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Plain `http://` forwarding reuses idle keep-alive upstream connections across client connections,
/// but only for the same decided host, port and checked address, and never hands a request to an
/// upstream it was not decided for.
@Suite(.serialized) struct UpstreamPoolTests {
    static func get(_ session: EgressSession, _ url: String, host: String) -> String {
        Egress.raw(port: session.port, "GET \(url) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n")
    }

    @Test func idleUpstreamConnectionsAreReusedOnlyForTheSameHostPortAndAddress() async throws {
        let a = try LocalHTTPServer.start { request in
            request.uri == "/close" ? ServerResponse(status: 200, headers: [("Connection", "close")], body: "bye")
                                    : ServerResponse(status: 200, body: "a \(request.uri) host=\(request.header("host") ?? "-")")
        }
        defer { a.shutdown() }
        let b = try LocalHTTPServer.start { _ in ServerResponse(status: 200, body: "b") }
        defer { b.shutdown() }
        // Three names for the same address and port; only two are allowed.
        let policy = try Egress.policy("""
        version: 1
        on_violation: fail
        egress: { default: deny, allow: [a.test, b.test, "127.0.0.1:\(b.port)"] }
        network: { resolve: { "a.test:80": "127.0.0.1:\(a.port)", "b.test:80": "127.0.0.1:\(a.port)", "c.test:80": "127.0.0.1:\(a.port)" } }
        """)
        let session = try await Egress.session(policy, trail: try Egress.trail())
        defer { session.stop() }

        // Ten client connections, one request each: served over at most one upstream connection per event loop.
        for index in 0..<10 {
            let response = Self.get(session, "http://a.test/\(index)", host: "a.test")
            #expect(response.hasPrefix("HTTP/1.1 200") && response.contains("a /\(index) host=a.test"), "\(response)")
        }
        let forA = Set(a.requests.filter { $0.header("host") == "a.test" }.map(\.connection))
        #expect(forA.count <= session.threads, "\(forA.count) upstream connections for 10 requests over \(session.threads) loops")

        // Another host on the same address and port gets its own connections.
        for index in 0..<4 {
            #expect(Self.get(session, "http://b.test/\(index)", host: "b.test").hasPrefix("HTTP/1.1 200"))
        }
        let forB = Set(a.requests.filter { $0.header("host") == "b.test" }.map(\.connection))
        #expect(!forB.isEmpty && forB.isDisjoint(with: forA), "b.test reused a.test's connections: \(forB) vs \(forA)")

        // Another port is another upstream.
        let before = a.acceptedConnections
        #expect(Self.get(session, "http://127.0.0.1:\(b.port)/", host: "127.0.0.1:\(b.port)").hasPrefix("HTTP/1.1 200"))
        #expect(b.acceptedConnections == 1 && a.acceptedConnections == before)

        // A denied host is answered by the proxy: nothing reaches the upstream, though idle
        // connections to that very address and port are pooled.
        let requestsBefore = a.requests.count
        let denied = Self.get(session, "http://c.test/secret", host: "c.test")
        #expect(Egress.statusCode(denied) == 403 && denied.lowercased().contains("x-stepguard-decision: deny"), "\(denied)")
        #expect(a.requests.count == requestsBefore)

        // An upstream that answered `Connection: close` is not reused.
        #expect(Self.get(session, "http://a.test/close", host: "a.test").hasPrefix("HTTP/1.1 200"))
        let closed = try #require(a.requests.last?.connection)
        for index in 0..<4 {
            #expect(Self.get(session, "http://a.test/after\(index)", host: "a.test").hasPrefix("HTTP/1.1 200"))
        }
        #expect(!a.requests.suffix(4).contains { $0.connection == closed })
        try await Task.sleep(for: .milliseconds(200))
        #expect(session.openConnections == 0)
    }

    @Test func aPooledConnectionClosedByTheUpstreamIsRetriedOnlyForSafeRequests() async throws {
        let server = try OneRequestPerConnectionServer()
        defer { server.stop() }
        let session = try await Egress.loopbackSession()
        defer { session.stop() }
        let url = "http://127.0.0.1:\(server.port)/"
        // Every loop's pool ends up holding a connection the server will drop on its next request;
        // each GET that gets one is sent again on a fresh connection.
        let count = 2 * session.threads + 2
        for _ in 0..<count {
            let response = Self.get(session, url, host: "127.0.0.1")
            #expect(response.hasPrefix("HTTP/1.1 200") && response.hasSuffix("ok"), "\(response)")
        }
        #expect(server.answered.load(ordering: .relaxed) == count)
        #expect(server.dropped.load(ordering: .relaxed) >= 1, "no pooled connection was reused")

        // A POST is not sent twice: the client gets a 502 with the reason. Bodiless requests are
        // served by the socket front, requests with a body by the NIO pipeline; each keeps its own
        // pool, so POSTs are sent until one meets a pooled connection the server drops.
        for body in ["", "abc"] {
            var rejected = false
            for _ in 0..<(2 * session.threads + 2) where !rejected {
                let (answered, dropped) = (server.answered.load(ordering: .relaxed), server.dropped.load(ordering: .relaxed))
                let post = Egress.raw(port: session.port, "POST \(url) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)")
                if Egress.statusCode(post) == 502 {
                    rejected = true
                    #expect(post.contains("the upstream http://127.0.0.1:\(server.port)"), "\(post)")
                    #expect(server.dropped.load(ordering: .relaxed) == dropped + 1)
                    #expect(server.answered.load(ordering: .relaxed) == answered, "the POST was sent again")
                } else {
                    #expect(Egress.statusCode(post) == 200, "\(post)")
                }
            }
            #expect(rejected, "no POST \(body.isEmpty ? "without" : "with") a body met a dropped pooled connection")
        }
    }

    @Test func hopByHopHeadersAreNotForwardedEitherWay() async throws {
        let server = try LocalHTTPServer.start { request in
            let names = request.headers.map { $0.name.lowercased() }.sorted().joined(separator: ",")
            return ServerResponse(status: 200, headers: [("Content-Type", "text/plain"), ("Keep-Alive", "timeout=5"), ("Connection", "X-Upstream-Hop"),
                                                         ("X-Upstream-Hop", "1"), ("X-Kept", "yes"), ("Trailer", "X-T")], body: names)
        }
        defer { server.shutdown() }
        let session = try await Egress.loopbackSession()
        defer { session.stop() }
        let response = Egress.raw(port: session.port, """
        GET http://127.0.0.1:\(server.port)/ HTTP/1.1\r
        Host: 127.0.0.1:\(server.port)\r
        Connection: close, X-Client-Hop\r
        X-Client-Hop: secret\r
        Keep-Alive: timeout=5\r
        Proxy-Authorization: Basic dXNlcjpwYXNz\r
        Proxy-Connection: keep-alive\r
        TE: trailers\r
        X-Plain: 1\r
        \r

        """)
        let parts = response.components(separatedBy: "\r\n\r\n")
        let head = parts[0].lowercased()
        #expect(parts.last == "host,x-plain", "the upstream saw: \(parts.last ?? "")")
        #expect(head.contains("x-kept: yes") && head.contains("connection: close"), "\(head)")
        #expect(!head.contains("keep-alive:") && !head.contains("x-upstream-hop") && !head.contains("trailer:"), "\(head)")
    }

    @Test func idlePooledConnectionsAreClosed() async throws {
        let server = try LocalHTTPServer.start { _ in ServerResponse(status: 200, body: "ok") }
        defer { server.shutdown() }
        let session = try await Egress.loopbackSession()
        defer { session.stop() }
        let result = try Egress.curl(session, ["--parallel", "--parallel-max", "40", "-H", "Connection: close"]
                                     + (0..<200).map { "http://127.0.0.1:\(server.port)/\($0)" })
        #expect(result.stdout.components(separatedBy: "ok").count == 201)
        #expect(server.requests.count == 200)
        // Fewer upstream connections than requests: they were reused from the pools…
        #expect(server.acceptedConnections < 200, "nothing was pooled")
        // …and every idle one is closed within a few seconds, as is every client connection (polled:
        // the proxy sees the client's close a moment after curl has its response, and a loaded
        // machine stretches the sweep).
        let deadline = ContinuousClock.now + .seconds(15)
        while server.openConnections > 0 || session.openConnections > 0, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(session.openConnections == 0)
        #expect(server.openConnections == 0)
    }
}

/// A raw HTTP server that answers the first request on each connection (keep-alive) and closes the
/// connection without answering when a second request arrives on it — what a server whose
/// keep-alive timeout races a new request does.
final class OneRequestPerConnectionServer: Sendable {
    let port: Int
    private let listener: Int32
    let answered = Atomic<Int>(0)
    let dropped = Atomic<Int>(0)

    init() throws {
        let (listener, port) = try LoopbackSocket.listen(backlog: 64)
        (self.listener, self.port) = (listener, port)
        Thread.detachNewThread { [self] in
            while true {
                let fd = accept(listener, nil, nil)
                guard fd >= 0 else { return }
                Thread.detachNewThread { self.serve(fd) }
            }
        }
    }

    private func serve(_ fd: Int32) {
        defer { close(fd) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !received.containsHeadEnd {
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n > 0 else { return }
            received += buffer[0..<n]
        }
        // Counted before the answer is sent: counted after, a test could read the count between the
        // client getting this answer and the increment.
        answered.add(1, ordering: .relaxed)
        let response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
        _ = Array(response.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if recv(fd, &buffer, buffer.count, 0) > 0 { dropped.add(1, ordering: .relaxed) }
    }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }
}

private extension Array where Element == UInt8 {
    var containsHeadEnd: Bool {
        guard count >= 4 else { return false }
        for index in 0...(count - 4) where self[index] == 13 && self[index + 1] == 10 && self[index + 2] == 13 && self[index + 3] == 10 {
            return true
        }
        return false
    }
}
