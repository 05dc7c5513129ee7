import Foundation
@testable import StepGuardEgress
import StepGuardAudit
import StepGuardTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The proxy failing while the step runs stops the step (fail closed), and the audit trail says why.
@Suite struct ProxyFailureTests {
    /// A front thread whose epoll set breaks (here: its descriptor replaced by /dev/null, so
    /// `epoll_wait` fails with EINVAL) ends with an error; the session then calls `stopStep` once
    /// and records a denial under "built-in: fail closed".
    @Test func aFrontThreadThatFailsStopsTheStep() async throws {
        let trail = try Egress.trail()
        let (stopCalls, stopStep) = AsyncStream.makeStream(of: Void.self)
        let session = try EgressSession.start(policy: try Egress.policy("version: 1\negress: { default: deny }\n"), identity: nil,
                                                    trail: trail, verifier: nil, detector: nil, limits: ProxyLimits(), stopStep: { stopStep.yield() })
        defer { session.stop() }
        let loop = try #require(session.front.loops.first)
        let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        try #require(devNull >= 0)
        defer { close(devNull) }
        #expect(dup2(devNull, loop.epoll.epoll) == loop.epoll.epoll)
        loop.epoll.execute {}  // wakes the thread out of its current wait; its next epoll_wait fails

        let deadline = Task { try await Task.sleep(for: .seconds(10)); stopStep.finish() }
        defer { deadline.cancel() }
        var calls = stopCalls.makeAsyncIterator()
        #expect(await calls.next() != nil, "stopStep was not called within 10 s")
        let failure = try #require(trail.recorded.first { $0.rule == "built-in: fail closed" })
        #expect(failure.type == .egress && failure.decision == .deny)
        #expect(failure.reason.contains("epoll_wait") && failure.reason.contains("the step is stopped (fail closed)"), "\(failure.reason)")
    }
}
