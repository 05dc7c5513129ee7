import Foundation
import StepGuardEgress
import StepGuardServerTestSupport
import StepGuardTestSupport
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A CONNECT tunnel reads from one side only while the other side can take the data: a client
/// that stops reading stops the upstream too, instead of growing the proxy's memory.
@Suite(.serialized) struct TunnelBackPressureTests {
    @Test func aSlowReaderDoesNotMakeTheProxyBufferTheStream() async throws {
        let total = 384 << 20
        let server = try StreamingServer(total: total)
        defer { server.stop() }
        let session = try await Egress.loopbackSession()
        defer { session.stop() }

        let fd = try TunnelClient.open(proxyPort: session.port, target: "127.0.0.1:\(server.port)")
        defer { close(fd) }
        // The client reads nothing for a while: the upstream can only fill the kernel's socket
        // buffers (tens of MiB at most here) and the proxy's one read per direction.
        try await Task.sleep(for: .seconds(2))
        let accepted = server.written.load(ordering: .relaxed)
        #expect(accepted < 128 << 20, "the proxy took \(accepted >> 20) MiB from the upstream while its client read nothing")
        // Then it reads: the whole stream arrives.
        var received = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            received += n
        }
        #expect(received == total)
    }
}

@Suite(.serialized) struct TunnelIdleTests {
    @Test func aTunnelIsClosedAfterItsIdleTimeoutButNotWhileDataFlows() async throws {
        let server = try LocalHTTPServer.start { _ in ServerResponse(status: 200, body: "ok") }
        defer { server.shutdown() }
        var limits = ProxyLimits()
        limits.tunnelIdleTimeout = .seconds(2)
        let session = try await Egress.loopbackSession(limits: limits)
        defer { session.stop() }
        let fd = try TunnelClient.open(proxyPort: session.port, target: "127.0.0.1:\(server.port)")
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        // A request every 300 ms for 3 s: longer than the timeout, never idle that long. (usleep, not
        // Task.sleep: other suites' blocking sockets can starve the cooperative pool for seconds.)
        for _ in 0..<10 {
            let request = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            _ = Array(request.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            let n = recv(fd, &buffer, buffer.count, 0)
            #expect(n > 0 && String(decoding: buffer[0..<max(n, 0)], as: UTF8.self).hasPrefix("HTTP/1.1 200"))
            usleep(300_000)
        }
        // Then nothing: the proxy closes the tunnel (recv sees the end) within the timeout plus a sweep.
        let started = Date()
        let n = recv(fd, &buffer, buffer.count, 0)
        #expect(n == 0)
        #expect(Date().timeIntervalSince(started) < 4)
        try await Task.sleep(for: .milliseconds(200))
        #expect(session.openConnections == 0)
    }
}

enum TunnelClient {
    /// Connects to the proxy, opens a tunnel to `target` and reads the proxy's answer head (nothing more).
    static func open(proxyPort: Int, target: String) throws -> Int32 {
        guard let fd = LoopbackSocket.connect(port: proxyPort, receiveTimeout: 20) else { throw POSIXError(.ECONNREFUSED) }
        let request = "CONNECT \(target) HTTP/1.1\r\nHost: \(target)\r\n\r\n"
        _ = Array(request.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var head: [UInt8] = []
        var byte: UInt8 = 0
        while !(head.count >= 4 && head.suffix(4) == [13, 10, 13, 10]) {
            guard recv(fd, &byte, 1, 0) == 1 else { close(fd); throw POSIXError(.ECONNRESET) }
            head.append(byte)
        }
        guard String(decoding: head, as: UTF8.self).hasPrefix("HTTP/1.1 200") else { close(fd); throw POSIXError(.EACCES) }
        return fd
    }
}

/// Accepts one connection and writes `total` bytes to it as fast as the peer takes them, then closes.
final class StreamingServer: Sendable {
    let port: Int
    let written = Atomic<Int>(0)
    private let listener: Int32

    init(total: Int) throws {
        let (listener, port) = try LoopbackSocket.listen(backlog: 4)
        (self.listener, self.port) = (listener, port)
        Thread.detachNewThread { [self] in
            let fd = accept(listener, nil, nil)
            guard fd >= 0 else { return }
            defer { close(fd) }
            let chunk = [UInt8](repeating: 0x61, count: 1 << 20)
            var left = total
            while left > 0 {
                let n = chunk.withUnsafeBytes { send(fd, $0.baseAddress, min(left, $0.count), Int32(MSG_NOSIGNAL)) }
                guard n > 0 else { return }
                left -= n
                written.add(n, ordering: .relaxed)
            }
        }
    }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }
}
