import Synchronization

/// Something with threads of its own (an event-loop group, a thread pool) that starts when it is
/// first used, not when the proxy starts.
///
/// Most steps never need the proxy's NIO threads: the socket front serves plain requests and
/// tunnels on its own epoll threads, and a name mapped by `network.resolve` or an address needs
/// no lookup. Starting the event loops and the lookup pool for every run cost each step four
/// threads, their set-up and their shutdown (issue #17's start-up). Once ``shutDown()`` has run,
/// nothing starts again: a late first use gets nil and must fail closed.
final class StartedOnFirstUse<Resource: Sendable>: Sendable {
    private enum Phase {
        case idle
        case running(Resource)
        case shutDown(Resource?)
    }
    private let phase = Mutex<Phase>(.idle)
    private let start: @Sendable () -> Resource
    private let stop: @Sendable (Resource) -> Void

    /// `start` makes and starts the resource (called at most once, under a lock); `stop` shuts it down.
    init(start: @escaping @Sendable () -> Resource, stop: @escaping @Sendable (Resource) -> Void) {
        self.start = start
        self.stop = stop
    }

    /// The resource, started now if this is its first use; nil once shut down.
    func startIfNeeded() -> Resource? {
        phase.withLock { phase in
            switch phase {
            case .idle:
                let resource = start()
                phase = .running(resource)
                return resource
            case .running(let resource):
                return resource
            case .shutDown:
                return nil
            }
        }
    }

    /// The resource if it was ever started, also after shut-down (for work already under way on it).
    var started: Resource? {
        phase.withLock { phase in
            switch phase {
            case .idle: nil
            case .running(let resource): resource
            case .shutDown(let resource): resource
            }
        }
    }

    /// Shuts the resource down if it was started; from now on it never starts.
    func shutDown() {
        let running: Resource? = phase.withLock { phase in
            switch phase {
            case .idle:
                phase = .shutDown(nil)
                return nil
            case .running(let resource):
                phase = .shutDown(resource)
                return resource
            case .shutDown:
                return nil
            }
        }
        running.map(stop)
    }
}
