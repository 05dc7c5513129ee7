import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// The TLS context for forwarding intercepted requests to the real services (the system trust
/// store plus `network.upstream_ca`, full verification, HTTP/1.1).
///
/// Making it reads and parses the system's CA bundle, a few milliseconds that the step need not
/// wait for: it is made on the proxy's thread pool while the step starts, and the first intercepted
/// connection waits for it if it is not ready yet. If it cannot be made, every upstream connection
/// fails with that reason (the request gets 502; nothing is forwarded).
final class UpstreamTLS: Sendable {
    private let made: Mutex<Result<NIOSSLContext, EgressError>?>
    private let ready: EventLoopFuture<NIOSSLContext>

    /// Starts making the context on `pool`; `trustedBy` names the roots for error messages.
    init(configuration: TLSConfiguration, trustedBy roots: String, pool: NIOThreadPool, loop: EventLoop) {
        made = Mutex(nil)
        let promise = loop.makePromise(of: NIOSSLContext.self)
        ready = promise.futureResult
        pool.submit { [self] state in
            let result: Result<NIOSSLContext, EgressError>
            if case .cancelled = state {
                result = .failure(.upstreamCA(path: roots, reason: "the proxy stopped before its upstream TLS context was made"))
            } else {
                do { result = .success(try NIOSSLContext(configuration: configuration)) } catch {
                    result = .failure(.upstreamCA(path: roots, reason: "\(error)"))
                }
            }
            made.withLock { $0 = result }
            promise.completeWith(result.mapError { $0 as any Error })
        }
    }

    /// The context, on `eventLoop`: at once when it is made, else when it is.
    func context(on eventLoop: EventLoop) -> EventLoopFuture<NIOSSLContext> {
        if let result = made.withLock({ $0 }) { return eventLoop.makeCompletedFuture(result.mapError { $0 as any Error }) }
        return ready.hop(to: eventLoop)
    }
}
