import Dispatch
import StepGuardCore
import Synchronization

/// Work started on a thread of its own, whose result is waited for later: `run` starts a proxy
/// that intercepts services (and makes a CA) while it checks the step's environment.
///
/// `run` works on plain threads rather than in Swift concurrency: starting the concurrency runtime
/// (its worker and manager threads) and hopping between tasks cost every step about a millisecond
/// and five threads before it could start (issue #17's start-up). Tasks are used only when the
/// policy asks for an identity (``waitForTask(_:)``).
final class BackgroundWork<Value: Sendable>: Sendable {
    private let slot = ResultSlot<Value>()

    /// Starts `work` on a new thread named `name`.
    init(name: String, _ work: @escaping @Sendable () -> Value) {
        let thread = DetachedThread { [slot] in slot.fill(work()) }
        thread.name = name
        thread.start()
    }

    /// The result, once the work has finished.
    var value: Value { slot.value }
}

/// Runs `operation` as a task and waits for it on this thread. Call it only from a thread that is
/// not one of Swift concurrency's own (the main thread, a ``DetachedThread``): blocking one of
/// those while a task needs it can deadlock.
func waitForTask<T: Sendable>(_ operation: @escaping @Sendable () async -> T) -> T {
    let slot = ResultSlot<T>()
    Task { slot.fill(await operation()) }
    return slot.value
}

/// Runs blocking work (waiting for a process) on its own thread, off Swift's cooperative pool.
func runOnDedicatedThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = DetachedThread {
            continuation.resume(with: Result { try work() })
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
}

/// A value filled in once by one thread and waited for by others.
private final class ResultSlot<Value: Sendable>: Sendable {
    private let result = Mutex<Value?>(nil)
    private let filled = DispatchSemaphore(value: 0)

    func fill(_ value: Value) {
        result.withLock { $0 = value }
        filled.signal()
    }

    /// The value, once filled.
    var value: Value {
        filled.wait()
        filled.signal()  // whoever asks next does not wait
        return result.withLock { $0! }
    }
}
