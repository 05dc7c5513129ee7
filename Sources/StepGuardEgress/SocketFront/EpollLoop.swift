import FoundationEssentials
import Synchronization

import CLinuxIO
#if canImport(Glibc)
import Glibc
#endif

/// Something that owns file descriptors registered with an ``EpollLoop``.
protocol EpollHandler: AnyObject {
    /// `fd` is ready for `events` (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, EPOLLRDHUP bits).
    func ready(fd: Int32, events: UInt32)
}

/// One thread waiting on one epoll set: the socket front's event loop.
///
/// Handlers, registrations and ``now`` are only touched on the loop's thread; ``execute(_:)`` and
/// ``stop()`` may be called from anywhere.
final class EpollLoop: @unchecked Sendable {  // mutable state is confined to the loop's thread (see above)
    /// The epoll descriptor (internal for the fail-closed test, which replaces it to make `run` fail).
    let epoll: Int32
    private let wake: Int32
    /// By descriptor: its handler, and a registration number that tells a stale event (for a
    /// descriptor closed and reused within one batch of events) from a current one.
    private var handlers: [(handler: EpollHandler?, registration: UInt32)] = []
    private var registrations: UInt32 = 0
    private let tasks = Mutex<[@Sendable () -> Void]>([])
    private let stopping = Atomic<Bool>(false)
    private let sweepInterval: UInt64
    private var nextSweep: UInt64 = 0
    /// Runs on the loop's thread every sweep interval.
    var onSweep: ((UInt64) -> Void)?
    /// Monotonic nanoseconds, read once per loop iteration.
    private(set) var now: UInt64 = EpollLoop.monotonicNow()

    /// - Parameter sweepInterval: how often ``onSweep`` runs, in nanoseconds.
    init(sweepInterval: UInt64) throws(EgressError) {
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        wake = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        guard epoll >= 0, wake >= 0 else {
            throw .cannotListen("epoll/eventfd: \(String(cString: strerror(errno)))")
        }
        self.sweepInterval = sweepInterval
        var event = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(u64: UInt64(UInt32(wake))))
        epoll_ctl(epoll, EPOLL_CTL_ADD, wake, &event)
    }

    static func monotonicNow() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }

    /// Watches `fd` for `events` on behalf of `handler` (level-triggered unless `events` holds EPOLLET).
    func register(_ fd: Int32, _ handler: EpollHandler, events: UInt32) -> Bool {
        if Int(fd) >= handlers.count { handlers.append(contentsOf: repeatElement((handler: nil, registration: 0), count: Int(fd) + 1024 - handlers.count)) }
        registrations &+= 1
        var event = epoll_event(events: events, data: epoll_data_t(u64: UInt64(registrations) << 32 | UInt64(UInt32(fd))))
        guard epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) == 0 else { return false }
        handlers[Int(fd)] = (handler, registrations)
        return true
    }

    /// Events the front watches its sockets for: edge-triggered, so a registration is made once per
    /// socket and never changed; handlers do I/O until EAGAIN and retry it when their state changes.
    static let edgeEvents = UInt32(EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue) | EPOLLET.rawValue

    /// Hands the events of `fd` (registered) to another handler, without a system call.
    func setHandler(_ fd: Int32, _ handler: EpollHandler) {
        if Int(fd) < handlers.count { handlers[Int(fd)].handler = handler }
    }

    /// Stops watching `fd` (it is not closed).
    func unregister(_ fd: Int32) {
        epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nil)
        if Int(fd) < handlers.count { handlers[Int(fd)].handler = nil }
    }

    /// Stops watching `fd` and closes it (closing removes it from the epoll set: no system call for that).
    func close(_ fd: Int32) {
        guard fd >= 0 else { return }
        if Int(fd) < handlers.count { handlers[Int(fd)].handler = nil }
        Glibc.close(fd)
    }

    /// Runs `task` on the loop's thread soon.
    func execute(_ task: @escaping @Sendable () -> Void) {
        tasks.withLock { $0.append(task) }
        var one: UInt64 = 1
        _ = write(wake, &one, 8)
    }

    /// Makes ``run()`` return after the current iteration.
    func stop() {
        stopping.store(true, ordering: .relaxed)
        var one: UInt64 = 1
        _ = write(wake, &one, 8)
    }

    /// Makes the next sweep run no later than `time` (monotonic nanoseconds): for a deadline
    /// shorter than the sweep interval. Call it on the loop's thread.
    func sweep(by time: UInt64) {
        if time < nextSweep { nextSweep = time }
    }

    /// The loop; returns when stopped, or throws when epoll fails (the proxy must then be considered down).
    func run() throws(EgressError) {
        let capacity = 256
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: capacity)
        defer { events.deallocate() }
        nextSweep = now + sweepInterval
        while !stopping.load(ordering: .relaxed) {
            let timeout = Int32(clamping: (nextSweep > now ? nextSweep - now : 0) / 1_000_000 + 1)
            let count = epoll_wait(epoll, events, Int32(capacity), timeout)
            now = Self.monotonicNow()
            if count < 0 {
                guard errno == EINTR else { throw .cannotListen("epoll_wait: \(String(cString: strerror(errno)))") }
                continue
            }
            for index in 0..<Int(count) {
                let data = events[index].data.u64
                let fd = Int32(bitPattern: UInt32(truncatingIfNeeded: data))
                if fd == wake {
                    var value: UInt64 = 0
                    _ = read(wake, &value, 8)
                    for task in tasks.withLock({ list in defer { list = [] }; return list }) { task() }
                    continue
                }
                // A handler may close other descriptors of this batch; those find no handler.
                guard Int(fd) < handlers.count, let handler = handlers[Int(fd)].handler,
                      handlers[Int(fd)].registration == UInt32(truncatingIfNeeded: data >> 32) else { continue }
                handler.ready(fd: fd, events: events[index].events)
            }
            if now >= nextSweep {
                // Set first: a deadline shorter than the interval that the sweep finds still ahead
                // brings the next one forward (``sweep(by:)``) instead of waiting a whole interval.
                nextSweep = now + sweepInterval
                onSweep?(now)
            }
        }
        // Tasks queued with the stop (closing every connection) still run.
        for task in tasks.withLock({ list in defer { list = [] }; return list }) { task() }
    }

    deinit {
        Glibc.close(epoll)
        Glibc.close(wake)
    }
}
