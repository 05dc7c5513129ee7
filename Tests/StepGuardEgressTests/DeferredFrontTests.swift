import Foundation
@testable import StepGuardEgress
import StepGuardAudit
import StepGuardTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `run` starts the proxy's front threads only once the step has started (589d5e6:
/// `EgressSession.start(deferThreads:)`, `startServing()`). A connection made before then waits in
/// the listener's backlog and is decided like any other once the threads run; a front thread that
/// fails after a deferred start still stops the step; a session stopped before it served never
/// starts serving.
@Suite struct DeferredFrontTests {
    static let denyAll = "version: 1\negress: { default: deny }\n"
    static let request = "CONNECT blocked.example:443 HTTP/1.1\r\nHost: blocked.example:443\r\n\r\n"

    static func session(stopStep: @escaping @Sendable () -> Void = {}) throws -> (EgressSession, AuditTrail) {
        let trail = try Egress.trail()
        let session = try EgressSession.start(policy: try Egress.policy(denyAll), identity: nil, trail: trail, verifier: nil, detector: nil,
                                              limits: ProxyLimits(), deferThreads: true, stopStep: stopStep)
        return (session, trail)
    }

    /// What `fd` answers within its receive timeout (empty: nothing).
    static func answer(_ fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = read(fd, &buffer, buffer.count)
        return count > 0 ? String(decoding: buffer.prefix(count), as: UTF8.self) : ""
    }

    @Test func aConnectionMadeBeforeTheFrontServesWaitsAndIsThenDecided() throws {
        let (session, trail) = try Self.session()
        defer { session.stop() }
        let fd = try #require(LoopbackSocket.connect(port: session.port, receiveTimeout: 1))
        defer { close(fd) }
        #expect(write(fd, Self.request, Self.request.utf8.count) == Self.request.utf8.count)
        #expect(Self.answer(fd).isEmpty, "answered before the front threads started")
        #expect(trail.recorded.isEmpty)
        session.startServing()
        session.startServing()  // the second time does nothing
        #expect(Self.answer(fd).hasPrefix("HTTP/1.1 403"))
        #expect(trail.recorded.contains { $0.decision == .deny && $0.subject["host"] == .string("blocked.example") }, "\(trail.recorded)")
    }

    @Test func aFrontThreadThatFailsAfterADeferredStartStopsTheStep() async throws {
        let (stopCalls, stopStep) = AsyncStream.makeStream(of: Void.self)
        let (session, trail) = try Self.session { stopStep.yield() }
        defer { session.stop() }
        let loop = try #require(session.front.loops.first)
        let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        try #require(devNull >= 0)
        defer { close(devNull) }
        #expect(dup2(devNull, loop.epoll.epoll) == loop.epoll.epoll)  // its first epoll_wait fails
        session.startServing()
        let deadline = Task { try await Task.sleep(for: .seconds(10)); stopStep.finish() }
        defer { deadline.cancel() }
        var calls = stopCalls.makeAsyncIterator()
        #expect(await calls.next() != nil, "stopStep was not called within 10 s")
        #expect(trail.recorded.contains { $0.rule == "built-in: fail closed" })
    }

    @Test func aSessionStoppedBeforeItServedNeverServes() throws {
        let (session, _) = try Self.session()
        let fd = try #require(LoopbackSocket.connect(port: session.port, receiveTimeout: 1))
        defer { close(fd) }
        #expect(write(fd, Self.request, Self.request.utf8.count) == Self.request.utf8.count)
        session.stop()
        session.startServing()
        #expect(!Self.answer(fd).hasPrefix("HTTP/"), "served after stop()")
    }
}
