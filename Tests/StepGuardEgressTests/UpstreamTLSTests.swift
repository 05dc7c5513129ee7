import NIOCore
import NIOPosix
import NIOSSL
@testable import StepGuardEgress
import Testing

/// The upstream TLS context is made on the thread pool while the step starts; connections that
/// need it earlier wait for it, and a context that cannot be made fails them with the reason.
@Suite struct UpstreamTLSTests {
    @Test func theContextIsMadeOnThePoolAndSharedByEveryConnection() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        defer { try? pool.syncShutdownGracefully(); try? group.syncShutdownGracefully() }
        let upstream = UpstreamTLS(configuration: .makeClientConfiguration(), trustedBy: "system trust store")
        upstream.startMaking(on: pool)
        let first = try upstream.context(on: group.next()).wait()
        let second = try upstream.context(on: group.next()).wait()
        #expect(first === second)
    }

    @Test func aContextThatCannotBeMadeFailsConnectionsWithTheReason() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        defer { try? pool.syncShutdownGracefully(); try? group.syncShutdownGracefully() }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .file("/nonexistent/ca.pem")
        let upstream = UpstreamTLS(configuration: configuration, trustedBy: "system trust store + ca.pem")
        upstream.startMaking(on: pool)
        #expect(throws: EgressError.self) { try upstream.context(on: group.next()).wait() }
        do { _ = try upstream.context(on: group.next()).wait() } catch {
            #expect("\(error)".contains("system trust store + ca.pem"), "\(error)")
        }
    }

    @Test func aPoolThatStoppedFailsTheContextInsteadOfLeavingItPending() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let pool = NIOThreadPool(numberOfThreads: 1)  // never started: work is cancelled
        let upstream = UpstreamTLS(configuration: .makeClientConfiguration(), trustedBy: "system trust store")
        upstream.startMaking(on: pool)
        do {
            _ = try upstream.context(on: group.next()).wait()
            Issue.record("a context was made on a pool that is not running")
        } catch {
            #expect("\(error)".contains("stopped before its upstream TLS context was made"), "\(error)")
        }
    }
}
