import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// The TLS context for forwarding intercepted requests to the real services (the system trust
/// store plus `network.upstream_ca`, full verification, HTTP/1.1).
///
/// Making it reads and parses the system's CA bundle, a few milliseconds that the step need not
/// wait for: it is made on the proxy's lookup threads while the step starts, and the first intercepted
/// connection waits for it if it is not ready yet. If it cannot be made, every upstream connection
/// fails with that reason (the request gets 502; nothing is forwarded).
final class UpstreamTLS: Sendable {
    private enum State {
        /// Being made; connections waiting for it, each on its own event loop.
        case making(waiting: [EventLoopPromise<NIOSSLContext>])
        case made(Result<NIOSSLContext, EgressError>)
    }
    private let state = Mutex<State>(.making(waiting: []))

    private let configuration: TLSConfiguration
    private let roots: String

    /// A context with `configuration`, made once ``startMaking(on:)`` is called; `trustedBy`
    /// names the roots for error messages.
    init(configuration: TLSConfiguration, trustedBy roots: String) {
        self.configuration = configuration
        self.roots = roots
    }

    /// Makes the context on `pool` (call once).
    func startMaking(on pool: NIOThreadPool) {
        pool.submit { [self] work in
            let result: Result<NIOSSLContext, EgressError>
            if case .cancelled = work {
                result = .failure(.upstreamCA(path: roots, reason: "the proxy stopped before its upstream TLS context was made"))
            } else {
                do { result = .success(try NIOSSLContext(configuration: configuration)) } catch {
                    result = .failure(.upstreamCA(path: roots, reason: "\(error)"))
                }
            }
            // Only connections that asked are told (on their own loops): nothing is scheduled on an
            // event loop that may have shut down with a session that ended before the context was made.
            let waiting = state.withLock { state in
                defer { state = .made(result) }
                if case .making(let waiting) = state { return waiting }
                return []
            }
            for promise in waiting { promise.completeWith(result.mapError { $0 as any Error }) }
        }
    }

    /// The context, on `eventLoop`: at once when it is made, else when it is.
    func context(on eventLoop: EventLoop) -> EventLoopFuture<NIOSSLContext> {
        state.withLock { state in
            switch state {
            case .made(let result):
                return eventLoop.makeCompletedFuture(result.mapError { $0 as any Error })
            case .making(var waiting):
                let promise = eventLoop.makePromise(of: NIOSSLContext.self)
                waiting.append(promise)
                state = .making(waiting: waiting)
                return promise.futureResult
            }
        }
    }
}
