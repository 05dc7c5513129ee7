import Foundation
@testable import StepGuardEgress
import StepGuardPolicy
import StepGuardTestSupport
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The socket front relays responses by their own framing (RFC 9112 §6.3), byte for byte, and
/// reuses an upstream connection only after a response whose end it saw.
@Suite(.serialized) struct SocketFrontTests {
    /// Responses by request path; each request head gets the bytes for its path (and, with
    /// `close`, the connection closed after them).
    static let script: [String: (bytes: String, close: Bool)] = [
        "/chunked": ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Up: 1\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n", false),
        "/length": ("HTTP/1.1 200 OK\r\nContent-Length: 4\r\nKeep-Alive: timeout=5\r\n\r\nfour", false),
        "/until-close": ("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it", true),
        "/head": ("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", false),
        "/no-content": ("HTTP/1.1 204 No Content\r\n\r\n", false),
        "/hints": ("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false),
        "/bad-chunk": ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnope\r\n", false),
        "/connection-listed": ("HTTP/1.1 200 OK\r\nConnection: X-Private\r\nX-Private: secret\r\nContent-Length: 2\r\n\r\nok", false),
        "/never": ("", false),
        "/extra": ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged", false),
        "/stall": ("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", false),
        "/big": ("HTTP/1.1 200 OK\r\nContent-Length: 8388608\r\n\r\n" + String(repeating: "x", count: 8 << 20), false),
        "/big-numbered": ("HTTP/1.1 200 OK\r\nContent-Length: 488890\r\n\r\n" + (0..<100_000).map(String.init).joined(), false),
        "/big-until-close": ("HTTP/1.1 200 OK\r\n\r\n" + String(repeating: "y", count: 300_000) + "end", true),
    ]

    /// An upstream answering by ``script`` and a proxy session with `policy`.
    static func stand(_ policy: String = Egress.loopbackPolicy, limits: ProxyLimits = ProxyLimits(),
                      stop: Egress.StopCounter = Egress.StopCounter()) async throws -> (ScriptedUpstream, EgressSession) {
        let upstream = try ScriptedUpstream(script)
        do {
            return (upstream, try await Egress.session(try Egress.policy(policy), trail: try Egress.trail(), limits: limits, stop: stop))
        } catch {
            upstream.stop()
            throw error
        }
    }

    /// The session's open connections once they reach 0, or after 5 s (the proxy closes them on
    /// its own threads; the session reports no event for it).
    static func openConnectionsAfterSettling(_ session: EgressSession) async throws -> Int {
        var open = session.openConnections
        for _ in 0..<50 where open > 0 {
            try await Task.sleep(for: .milliseconds(100))
            open = session.openConnections
        }
        return open
    }

    @Test func aClientThatGivesUpOnASilentUpstreamIsNotKeptOpen() async throws {
        let (upstream, session) = try await Self.stand()
        defer { session.stop(); upstream.stop() }
        // The upstream never answers; the client stops waiting after a second.
        let response = Egress.raw(port: session.port, "GET http://127.0.0.1:\(upstream.port)/never HTTP/1.1\r\nHost: x\r\n\r\n", timeout: 1)
        #expect(response.isEmpty)
        #expect(try await Self.openConnectionsAfterSettling(session) == 0, "the proxy still holds the abandoned request")
    }

    /// Bodiless requests (socket front) and requests with a body (NIO pipeline) alike.
    @Test func anUpstreamThatStopsAnsweringIsGivenUpOn() async throws {
        var limits = ProxyLimits()
        limits.responseIdleTimeout = .milliseconds(500)
        let (upstream, session) = try await Self.stand(limits: limits)
        defer { session.stop(); upstream.stop() }
        for (method, body) in [("GET", ""), ("POST", "Content-Length: 2\r\n\r\nhi")] {
            func request(_ path: String) -> (response: String, seconds: Double) {
                let started = Date()
                let head = "\(method) http://127.0.0.1:\(upstream.port)\(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                let response = Egress.raw(port: session.port, head + (body.isEmpty ? "\r\n" : body), timeout: 10)
                return (response, Date().timeIntervalSince(started))
            }
            // No answer at all: 504 naming the upstream and the limit.
            let silent = request("/never")
            #expect(Egress.statusCode(silent.response) == 504, "\(method): \(silent.response)")
            #expect(silent.response.contains("sent no response for 0.5 s"), "\(method): \(silent.response)")
            #expect(silent.seconds < 5, "\(method): took \(silent.seconds) s")
            // A response that stops midway: what came is relayed, then the connection closes.
            let stalled = request("/stall")
            #expect(stalled.response.hasPrefix("HTTP/1.1 200"), "\(method): \(stalled.response)")
            #expect(stalled.response.hasSuffix("partial"), "\(method): \(stalled.response)")
            #expect(stalled.seconds < 5, "\(method): took \(stalled.seconds) s")
        }
        #expect(try await Self.openConnectionsAfterSettling(session) == 0, "the proxy still holds stalled exchanges")
    }

    @Test func clientsThatGoAwayMidResponseDoNotHurtTheProxy() async throws {
        let stop = Egress.StopCounter()
        let (upstream, session) = try await Self.stand(stop: stop)
        defer { session.stop(); upstream.stop() }
        for request in ["GET http://127.0.0.1:\(upstream.port)/big HTTP/1.1\r\nHost: x\r\n\r\n",
                        "CONNECT 127.0.0.1:\(upstream.port) HTTP/1.1\r\nHost: x\r\n\r\nGET /big HTTP/1.1\r\nHost: x\r\n\r\n"] {
            for _ in 0..<3 {
                // Read a little, then close with unread data (a reset): the proxy's next writes fail with EPIPE.
                let fd = try #require(LoopbackSocket.connect(port: session.port, receiveTimeout: 5))
                _ = Array(request.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                var buffer = [UInt8](repeating: 0, count: 1024)
                #expect(recv(fd, &buffer, buffer.count, 0) > 0)
                close(fd)
            }
        }
        let after = Egress.raw(port: session.port, "GET http://127.0.0.1:\(upstream.port)/length HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(after.hasSuffix("four"), "\(after)")
        #expect(stop.value == 0, "the proxy stopped the step")
    }

    @Test func responsesAreRelayedByTheirFramingAndTheUpstreamReusedOnlyAfterACompleteOne() async throws {
        let (upstream, session) = try await Self.stand()
        defer { session.stop(); upstream.stop() }
        let base = "http://127.0.0.1:\(upstream.port)"
        func exchange(_ requests: String) -> String {
            let started = Date()
            defer { #expect(Date().timeIntervalSince(started) < 4, "no answer to \(requests)") }
            return Egress.raw(port: session.port, requests)
        }

        // Chunked, with an extension and a trailer: passed on unchanged; then the same upstream
        // connection serves the next request (one keep-alive client connection, two requests).
        let two = exchange("GET \(base)/chunked HTTP/1.1\r\nHost: x\r\n\r\nGET \(base)/length HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(two.contains("X-Up: 1\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\nHTTP/1.1 200 OK\r\n"), "\(two)")
        #expect(two.hasSuffix("\r\n\r\nfour") && !two.contains("Keep-Alive:") && two.contains("Connection: close"), "\(two)")
        #expect(upstream.accepted == 1, "\(upstream.accepted) upstream connections for two pipelined requests")

        // No Content-Length and no chunking: the body ends when the upstream closes, and so does the client's connection.
        let untilClose = exchange("GET \(base)/until-close HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(untilClose.hasSuffix("\r\n\r\nall of it") && untilClose.contains("Connection: close"), "\(untilClose)")

        // HEAD and 204 have no body whatever their headers say; 1xx heads are passed on before the final one.
        let noBodies = exchange("HEAD \(base)/head HTTP/1.1\r\nHost: x\r\n\r\nGET \(base)/no-content HTTP/1.1\r\nHost: x\r\n\r\nGET \(base)/hints HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(noBodies.components(separatedBy: "HTTP/1.1 ").count == 5, "\(noBodies)")
        #expect(noBodies.contains("204 No Content") && noBodies.contains("103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK"), "\(noBodies)")
        #expect(noBodies.hasSuffix("\r\n\r\nok"))

        // Fields the upstream's Connection header names are not passed on.
        let listed = exchange("GET \(base)/connection-listed HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(listed.hasSuffix("ok") && !listed.contains("X-Private") && !listed.contains("secret"), "\(listed)")

        // Bytes an upstream sends after its response are never taken for the next response on the
        // client's connection, which may come from another upstream connection.
        let afterExtra = exchange("GET \(base)/extra HTTP/1.1\r\nHost: x\r\n\r\nGET \(base)/length HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(afterExtra.contains("\r\n\r\nokHTTP/1.1 200 OK\r\n") && afterExtra.hasSuffix("\r\n\r\nfour") && !afterExtra.contains("forged"), "\(afterExtra)")

        // A malformed chunk: what was relayed stays, the client's connection is closed, and that
        // upstream connection is not reused.
        let bad = exchange("GET \(base)/bad-chunk HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(bad.hasPrefix("HTTP/1.1 200 OK") && !bad.contains("nope"), "\(bad)")
        for _ in 0..<4 { _ = exchange("GET \(base)/length HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") }
        let served = upstream.served
        let badConnection = try #require(served.last { $0.path == "/bad-chunk" }?.connection)
        #expect(served.filter { $0.connection == badConnection }.last?.path == "/bad-chunk", "\(served)")
    }

    /// A body long enough to be spliced (upstream → pipe → client) arrives whole and in order; the
    /// upstream connection serves the next request after it; one that ends with the close is
    /// relayed to its last byte.
    @Test func longBodiesAreSplicedWholeAndTheUpstreamIsReusedAfterThem() async throws {
        let (upstream, session) = try await Self.stand()
        defer { session.stop(); upstream.stop() }
        let base = "http://127.0.0.1:\(upstream.port)"
        let numbered = (0..<100_000).map(String.init).joined()
        let two = Egress.raw(port: session.port, "GET \(base)/big-numbered HTTP/1.1\r\nHost: x\r\n\r\nGET \(base)/length HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let parts = two.components(separatedBy: "\r\n\r\n")
        #expect(parts.count == 3 && parts[1].hasPrefix(numbered) && parts[1].dropFirst(numbered.count).hasPrefix("HTTP/1.1 200 OK"), "\(two.prefix(200))…\(two.suffix(200))")
        #expect(two.hasSuffix("\r\n\r\nfour"), "\(two.suffix(200))")
        #expect(upstream.served.suffix(2).map(\.connection).allSatisfy { $0 == upstream.served.last?.connection }, "the upstream connection was not reused after the spliced body")
        let untilClose = Egress.raw(port: session.port, "GET \(base)/big-until-close HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(untilClose.hasSuffix(String(repeating: "y", count: 1000) + "end") && untilClose.utf8.count > 300_000, "\(untilClose.suffix(100))")
        #expect(try await Self.openConnectionsAfterSettling(session) == 0)
    }

    @Test func aDeniedRequestKeepsTheClientConnectionAndATunnelIsHalfClosedBothWays() async throws {
        let (upstream, session) = try await Self.stand("version: 1\non_violation: fail\negress: { default: allow, allow: [127.0.0.0/8], deny: [127.0.0.3] }\n")
        defer { session.stop(); upstream.stop() }
        let twice = Egress.raw(port: session.port, "GET http://127.0.0.3:\(upstream.port)/length HTTP/1.1\r\nHost: x\r\n\r\n"
                                   + "GET http://127.0.0.1:\(upstream.port)/length HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(twice.hasPrefix("HTTP/1.1 403 Forbidden") && twice.contains("X-StepGuard-Decision: deny") && twice.hasSuffix("four"), "\(twice)")

        // The client ends its side first: the upstream sees the end of the request stream and still answers.
        let fd = try #require(LoopbackSocket.connect(port: session.port, receiveTimeout: 5))
        defer { close(fd) }
        let request = "CONNECT 127.0.0.1:\(upstream.port) HTTP/1.1\r\nHost: x\r\n\r\nGET /length HTTP/1.1\r\nHost: x\r\n\r\n"
        _ = Array(request.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        shutdown(fd, Int32(SHUT_WR))
        let text = Egress.receiveAll(fd)
        #expect(text.hasPrefix("HTTP/1.1 200 Connection Established\r\n\r\nHTTP/1.1 200 OK") && text.hasSuffix("four"), "\(text)")
    }

    @Test func tunnelsRelayEveryByteInOrderAndNeverMixStreams() async throws {
        let echo = try EchoServer()
        defer { echo.stop() }
        let session = try await Egress.loopbackSession()
        defer { session.stop() }
        // Four tunnels at once, each with its own 8 MiB stream: splice pipes are shared between
        // tunnels of a loop once empty, so a byte in the wrong stream or order would show here.
        let results = try await withThrowingTaskGroup(of: Bool.self) { group in
            for tunnel in 0..<4 {
                group.addTask {
                    // Every 8 bytes name their tunnel and their position: any byte out of place differs.
                    let data = [UInt8](unsafeUninitializedCapacity: 8 << 20) { bytes, count in
                        let words = UnsafeMutableRawBufferPointer(bytes).bindMemory(to: UInt64.self)
                        for index in words.indices { words[index] = UInt64(tunnel) << 56 | UInt64(index) }
                        count = 8 << 20
                    }
                    let fd = try TunnelClient.open(proxyPort: session.port, target: "127.0.0.1:\(echo.port)")
                    defer { close(fd) }
                    let sender = Thread {
                        data.withUnsafeBytes { bytes in
                            var offset = 0
                            while offset < bytes.count {
                                let sent = send(fd, bytes.baseAddress! + offset, min(65536, bytes.count - offset), Int32(MSG_NOSIGNAL))
                                guard sent > 0 else { return }
                                offset += sent
                            }
                        }
                        shutdown(fd, Int32(SHUT_WR))
                    }
                    sender.start()
                    var received: [UInt8] = []
                    received.reserveCapacity(data.count)
                    var buffer = [UInt8](repeating: 0, count: 1 << 16)
                    while true {
                        let count = recv(fd, &buffer, buffer.count, 0)
                        if count <= 0 { break }
                        received += buffer[0..<count]
                    }
                    return received == data
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results == [true, true, true, true])
    }

    @Test func headParserIsStrict() {
        func parse(_ text: String) -> String {
            Array(text.utf8).withUnsafeBytes { bytes in
                switch RawHead.parse(bytes, maxFields: 4) {
                case .incomplete: "incomplete"
                case .invalid: "invalid"
                case .complete(let head): "\(bytes.string(head.start.0)) \(bytes.string(head.start.1)) \(head.fields.map { "\(bytes.string($0.name))=\(bytes.string($0.value))" }) \(head.length)"
                }
            }
        }
        #expect(parse("GET http://a/ HTTP/1.1\r\nHost:  a \r\nX: \r\n\r\nrest") == "GET http://a/ [\"Host=a\", \"X=\"] 42")
        #expect(parse("GET / HTTP/1.1\r\nHost: a\r\n") == "incomplete")
        #expect(parse("GET / HTTP/1.1\nHost: a\r\n\r\n") == "invalid")           // bare LF
        #expect(parse("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n") == "invalid")  // obs-fold
        #expect(parse("GET / HTTP/1.1\r\nHo st: a\r\n\r\n") == "invalid")          // space in a name
        #expect(parse("GET / HTTP/1.1\r\nHost : a\r\n\r\n") == "invalid")          // space before the colon
        #expect(parse("GET / HTTP/1.1\r\nX: a\u{1}b\r\n\r\n") == "invalid")        // control character
        #expect(parse("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n") == "invalid")  // too many fields
        #expect(parse("GET  / HTTP/1.1\r\n\r\n") == "invalid")
    }

    @Test func chunkedFramingFindsTheEndOfTheMessage() {
        func consumed(_ text: String, in pieces: Int = 1) -> (Int?, Bool) {
            var framing = BodyFraming(.chunked)
            let bytes = Array(text.utf8)
            var total = 0
            let size = max(1, bytes.count / pieces)
            var offset = 0
            while offset < bytes.count, !framing.finished {
                let end = min(bytes.count, offset + size)
                guard let taken = bytes[offset..<end].withUnsafeBytes({ framing.consume($0) }) else { return (nil, false) }
                total += taken
                offset = end
            }
            return (total, framing.finished)
        }
        let message = "4\r\nabcd\r\nA;x=y\r\n0123456789\r\n0\r\nT: v\r\n\r\n"
        for pieces in [1, 3, message.utf8.count] {
            let (taken, finished) = consumed(message + "GET / HTTP/1.1", in: pieces)
            #expect(finished && taken == message.utf8.count, "\(pieces) pieces: \(String(describing: taken))")
        }
        #expect(consumed("g\r\n").0 == nil)
        #expect(consumed("4\r\nabcdX\r\n").0 == nil)
        #expect(consumed("fffffffffffffffff\r\n").0 == nil)
        #expect(!consumed("4\r\nab").1)
    }
}

/// An upstream answering each request head with the bytes `script` holds for its path.
final class ScriptedUpstream: Sendable {
    let port: Int
    private let listener: Int32
    private let acceptedCount = Atomic<Int>(0)
    private let log = Mutex<[(path: String, connection: Int)]>([])
    private let script: [String: (bytes: String, close: Bool)]
    var accepted: Int { acceptedCount.load(ordering: .relaxed) }
    /// Every request served: its path and which connection carried it (1, 2, … in accept order).
    var served: [(path: String, connection: Int)] { log.withLock { $0 } }

    init(_ script: [String: (bytes: String, close: Bool)]) throws {
        self.script = script
        (listener, port) = try LoopbackSocket.listen(backlog: 64)
        Thread.detachNewThread { [self] in
            while true {
                let fd = accept(listener, nil, nil)
                guard fd >= 0 else { return }
                let connection = acceptedCount.add(1, ordering: .relaxed).newValue
                Thread.detachNewThread { self.serve(fd, connection: connection) }
            }
        }
    }

    private func serve(_ fd: Int32, connection: Int) {
        defer { close(fd) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            guard let end = received.firstRange(of: [13, 10, 13, 10]) else {
                let count = recv(fd, &buffer, buffer.count, 0)
                guard count > 0 else { return }
                received += buffer[0..<count]
                continue
            }
            let head = String(decoding: received[..<end.lowerBound], as: UTF8.self)
            received.removeSubrange(..<end.upperBound)
            let path = head.split(separator: " ").dropFirst().first.map(String.init) ?? ""
            let reply = script[path] ?? ("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", false)
            log.withLock { $0.append((path, connection)) }
            _ = Array(reply.bytes.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if reply.close { return }
        }
    }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }
}

/// Sends back every byte it receives on each connection, then closes after the client's end of stream.
final class EchoServer: Sendable {
    let port: Int
    private let listener: Int32

    init() throws {
        (listener, port) = try LoopbackSocket.listen(backlog: 16)
        Thread.detachNewThread { [listener] in
            while true {
                let fd = accept(listener, nil, nil)
                guard fd >= 0 else { return }
                Thread.detachNewThread {
                    defer { close(fd) }
                    var buffer = [UInt8](repeating: 0, count: 1 << 16)
                    while true {
                        let count = recv(fd, &buffer, buffer.count, 0)
                        guard count > 0 else { return }
                        var offset = 0
                        while offset < count {
                            let sent = buffer.withUnsafeBytes { send(fd, $0.baseAddress! + offset, count - offset, Int32(MSG_NOSIGNAL)) }
                            guard sent > 0 else { return }
                            offset += sent
                        }
                    }
                }
            }
        }
    }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }
}
