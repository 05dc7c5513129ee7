import Foundation
import StepGuardServerTestSupport
import StepGuardTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Clients that go away in the middle of a response body the socket front splices (upstream →
/// pipe → client) leave nothing behind in the proxy: the body's pipe, still holding bytes, is
/// closed, and so is the upstream connection. Counted, as in ``ConnectionLeakTests``, in a
/// `stepguard run` process of its own.
@Suite(.serialized) struct SplicedBodyLeakTests {
    /// `count` clients: each asks for the 4 MiB body, reads a little of it, and closes with the
    /// rest unread (a reset: the proxy's next splice to it fails).
    static func abandon(_ count: Int, proxyPort: Int, upstreamPort: Int) -> Int {
        var started = 0
        let request = Array("GET http://127.0.0.1:\(upstreamPort)/big HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        var buffer = [UInt8](repeating: 0, count: 65536)
        for _ in 0..<count {
            guard let fd = LoopbackSocket.connect(port: proxyPort, receiveTimeout: 5) else { continue }
            _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            var received = 0
            while received < 200_000 {
                let got = recv(fd, &buffer, buffer.count, 0)
                if got <= 0 { break }
                received += got
            }
            if received >= 200_000 { started += 1 }
            close(fd)
        }
        return started
    }

    @Test func clientsThatGoAwayMidSplicedBodyLeaveNoDescriptorBehind() async throws {
        let body = String(repeating: "x", count: 4 << 20)  // far more than the pipe and socket buffers hold
        let upstream = try LocalHTTPServer.start { _ in ServerResponse(body: body) }
        defer { upstream.shutdown() }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let policy = try directory.write("policy.yaml", "version: 1\non_violation: fail\nisolation: off\negress:\n  default: allow\n  allow: [127.0.0.0/8]\n")
        let (step, proxy) = try await ConnectionLeakTests.startIdleStep(policy: policy, in: directory)
        defer {
            step.send(SIGTERM)
            _ = try? step.wait(timeout: 30)
        }
        let proxyPort = try #require(Int(proxy.split(separator: ":").last ?? ""), "the step did not report the proxy: \(proxy)")

        // Warm up (threads, the loops' pipe pools), then take the baseline.
        #expect(Self.abandon(20, proxyPort: proxyPort, upstreamPort: upstream.port) == 20)
        _ = try await ConnectionLeakTests.settle(step.pid, fds: 0)
        let before = Self.descriptors(step.pid)
        #expect(Self.abandon(60, proxyPort: proxyPort, upstreamPort: upstream.port) == 60)
        _ = try await ConnectionLeakTests.settle(step.pid, fds: before.pipes + before.others)
        let after = Self.descriptors(step.pid)
        #expect(after.others <= before.others, "descriptors other than pipes grew from \(before.others) to \(after.others) across 60 abandoned spliced bodies")
        // A body's pipe goes back to its loop's pool when a splice had emptied it as the client went
        // (kept for the next body), so a loop may hold one pipe more than at the baseline: at most
        // two descriptors for each of the front's (at most four) loops. A pipe left behind by each
        // abandoned body would add 120.
        #expect(after.pipes <= before.pipes + 8, "pipe descriptors grew from \(before.pipes) to \(after.pipes) across 60 abandoned spliced bodies")
    }

    /// The open descriptors of `pid`: pipes, and everything else.
    static func descriptors(_ pid: pid_t) -> (pipes: Int, others: Int) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        let pipes = names.filter { ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)")) ?? "").hasPrefix("pipe:") }
        return (pipes.count, names.count - pipes.count)
    }
}
