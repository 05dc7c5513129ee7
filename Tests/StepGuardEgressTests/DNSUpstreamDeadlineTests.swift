import Foundation
import StepGuardPolicy
import StepGuardTestSupport
import Synchronization
import Testing
@testable import StepGuardEgress
#if canImport(Glibc)
import Glibc
#endif

/// The upstream exchange of the step's resolver keeps its deadline (`Limits.upstreamTimeout`)
/// whatever the upstream does: a lookup thread is never held longer.
@Suite struct DNSUpstreamDeadlineTests {
    /// Every timeout the exchange can compute is one the kernel takes. Before, 1.9999995 s became
    /// `tv_usec` 1,000,000, which setsockopt refuses (EDOM): that socket then had no timeout at all.
    @Test(arguments: [UInt64(1_999_999_500), 999_999_999, 1, 2_000_000_000, 0])
    func everySocketTimeoutIsOneTheKernelTakes(nanoseconds: UInt64) throws {
        var time = DNSUpstream.socketTimeout(nanoseconds: nanoseconds)
        #expect(time.tv_usec >= 0 && time.tv_usec < 1_000_000, "\(time)")
        #expect(UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_usec) * 1000 >= nanoseconds, "rounded up")
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        #expect(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size)) == 0, "errno \(errno)")
    }

    /// An upstream that truncates over UDP and then sends its TCP answer a byte at a time, each
    /// byte well within the socket timeout: before, every byte restarted the timeout and the
    /// lookup took as long as the upstream liked (here about 5 s for a 1 s timeout); now SERVFAIL
    /// once the deadline has passed.
    @Test func anUpstreamTricklingItsTCPAnswerIsCutOffAtTheDeadline() throws {
        let upstream = try TricklingUpstream(gap: 100_000)
        defer { upstream.stop() }
        var limits = StepResolver.Limits()
        limits.upstreamTimeout = 1
        let session = try DNSResolverTests.Session("egress: { default: deny, allow: [allowed.example] }\nnetwork: { dns: '127.0.0.1:\(upstream.port)' }\n",
                                                  limits: limits)
        defer { session.stop() }
        let start = Date()
        let (response, _) = try session.ask("allowed.example")
        let elapsed = Date().timeIntervalSince(start)
        #expect(upstream.tcpConnections >= 1, "the truncated answer was asked again over TCP")
        #expect(response.code == DNSRCode.serverFailure.rawValue, "\(response.code)")
        #expect(elapsed < 2.5, "answered \(elapsed) s after the query, with a 1 s upstream timeout")
    }
}

/// A DNS server on 127.0.0.1 whose UDP answers are truncated (TC, no records) and whose TCP answer
/// (one A record) comes a byte every `gap` microseconds. Written without the codec under test.
final class TricklingUpstream: Sendable {
    let port: UInt16
    private let udp: Int32
    private let tcp: Int32
    private let connections = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)

    var tcpConnections: Int { connections.load(ordering: .relaxed) }

    init(gap: UInt32) throws {
        var bound: (Int32, Int32, UInt16)?
        for _ in 0..<50 where bound == nil {
            let listener = try LoopbackSocket.listen(backlog: 4)
            let udp = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            if DNSEndpoint(address: .v4(0x7F00_0001), port: UInt16(listener.port)).withSocketAddress({ bind(udp, $0, $1) }) == 0 {
                bound = (udp, listener.fd, UInt16(listener.port))
            } else {
                close(udp)
                close(listener.fd)
            }
        }
        guard let bound else { throw POSIXError(.EADDRINUSE) }
        (udp, tcp, port) = bound
        Thread { [self] in serveUDP() }.start()
        Thread { [self] in serveTCP(gap: gap) }.start()
    }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        shutdown(tcp, Int32(SHUT_RDWR))
        shutdown(udp, Int32(SHUT_RDWR))
        close(tcp)
        close(udp)
    }

    /// The query's header and question as a response (QR, RA), with `answers` records after it.
    private static func response(to query: [UInt8], truncated: Bool, answers: [UInt8]) -> [UInt8]? {
        guard query.count > 12 else { return nil }
        var end = 12
        while end < query.count, query[end] != 0 { end += 1 + Int(query[end]) }
        guard end + 5 <= query.count else { return nil }
        var message = Array(query[0..<end + 5])
        message[2] = 0x81 | (truncated ? 0x02 : 0)
        message[3] = 0x80
        message[6] = 0
        message[7] = answers.isEmpty ? 0 : 1
        message[10] = 0
        message[11] = 0
        return message + answers
    }

    private func serveUDP() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !stopping.load(ordering: .relaxed) {
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let count = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(udp, &buffer, buffer.count, 0, $0, &length) } }
            guard count > 0 else { return }
            if let answer = Self.response(to: Array(buffer[0..<count]), truncated: true, answers: []) {
                _ = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(udp, answer, answer.count, 0, $0, length) } }
            }
        }
    }

    private func serveTCP(gap: UInt32) {
        while !stopping.load(ordering: .relaxed) {
            let connection = accept(tcp, nil, nil)
            guard connection >= 0 else { return }
            connections.add(1, ordering: .relaxed)
            let record: [UInt8] = [0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 80]
            if let query = DNSStream.readMessage(connection), let answer = Self.response(to: query, truncated: false, answers: record) {
                for byte in [UInt8(answer.count >> 8), UInt8(answer.count & 0xFF)] + answer where !stopping.load(ordering: .relaxed) {
                    guard send(connection, [byte], 1, Int32(MSG_NOSIGNAL)) == 1 else { break }
                    usleep(gap)
                }
            }
            close(connection)
        }
    }
}
