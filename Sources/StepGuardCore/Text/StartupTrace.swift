#if STEPGUARD_STARTUP_TRACE
import Glibc
#endif

/// Wall-clock marks at the stages of `stepguard run`, read by `bench/start-stages.py` to show
/// where a run's start-up goes. Compiled in only when the package is built with
/// `STEPGUARD_STARTUP_TRACE=1` in the environment (the script's own build, see Package.swift); in
/// every other build ``mark(_:)`` is empty and inlined away.
public enum StartupTrace {
    /// Writes `stepguard-stage MICROSECONDS STAGE` (CLOCK_MONOTONIC) to stderr in a traced build.
    @inlinable
    public static func mark(_ stage: StaticString) {
        #if STEPGUARD_STARTUP_TRACE
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let line = "stepguard-stage \(Int(now.tv_sec) * 1_000_000 + Int(now.tv_nsec) / 1000) \(stage)\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
        #endif
    }
}
