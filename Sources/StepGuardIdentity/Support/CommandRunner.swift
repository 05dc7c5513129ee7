import FoundationEssentials
import StepGuardCore
#if canImport(Glibc)
import Glibc
#endif

/// Result of running a helper command (e.g. `buildkite-agent`).
struct CommandResult: Sendable {
    var status: Int32
    var standardOutput: [UInt8]
    var standardError: [UInt8]
    var timedOut: Bool
}

/// Why a helper command could not be started.
struct CommandLaunchError: Error, CustomStringConvertible {
    var description: String
}

/// Runs a helper command with a time limit and bounded output capture. The command runs in its
/// own process group with default signal handling; on timeout the whole group is killed, so a
/// grandchild cannot keep the pipes (and us) waiting.
enum CommandRunner {
    static func run(executable: String, arguments: [String], environment: [String: String],
                    timeout: TimeInterval, outputLimit: Int) async throws -> CommandResult {
        var outFDs: [Int32] = [-1, -1], errFDs: [Int32] = [-1, -1]
        guard pipe(&outFDs) == 0 else { throw CommandLaunchError(description: "pipe failed: \(String(cString: strerror(errno)))") }
        guard pipe(&errFDs) == 0 else {
            close(outFDs[0]); close(outFDs[1])
            throw CommandLaunchError(description: "pipe failed: \(String(cString: strerror(errno)))")
        }
        // Close-on-exec, so other children spawned meanwhile do not inherit our pipe ends.
        for fd in outFDs + errFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outFDs[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errFDs[1], 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaultSignals = sigset_t()
        sigemptyset(&defaultSignals)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD] { sigaddset(&defaultSignals, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaultSignals)

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        close(outFDs[1])
        close(errFDs[1])
        guard rc == 0 else {
            close(outFDs[0]); close(errFDs[0])
            throw CommandLaunchError(description: String(cString: strerror(rc)))
        }

        // Blocking reads run on their own threads, never on Swift's cooperative pool.
        let outReader = BackgroundRead(fd: outFDs[0], limit: outputLimit)
        let errReader = BackgroundRead(fd: errFDs[0], limit: 4096)

        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        var timedOut = false
        while true {
            let waited = waitpid(pid, &status, WNOHANG)
            if waited == pid { break }
            if waited < 0, errno != EINTR { break }
            if Date() >= deadline {
                timedOut = true
                kill(-pid, SIGKILL)
                while waitpid(pid, &status, 0) < 0, errno == EINTR {}
                break
            }
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
        // End anything the command left behind in its group, so the pipes close.
        kill(-pid, SIGKILL)
        let output = await outReader.value()
        let errors = await errReader.value()
        let exitStatus: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return CommandResult(status: exitStatus, standardOutput: output, standardError: errors, timedOut: timedOut)
    }
}

/// Reads a file descriptor to its end on a dedicated thread, then closes it.
private final class BackgroundRead: @unchecked Sendable {
    // @unchecked: `result` and `waiter` are guarded by `lock`.
    private let lock = PosixLock()
    private var result: [UInt8]?
    private var waiter: CheckedContinuation<[UInt8], Never>?

    init(fd: Int32, limit: Int) {
        let thread = DetachedThread { [self] in
            var collected: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0, errno == EINTR { continue }
                if n <= 0 { break }
                if collected.count < limit { collected.append(contentsOf: buffer[0..<min(n, limit - collected.count)]) }
            }
            close(fd)
            lock.lock()
            if let waiter {
                self.waiter = nil
                lock.unlock()
                waiter.resume(returning: collected)
            } else {
                result = collected
                lock.unlock()
            }
        }
        thread.start()
    }

    func value() async -> [UInt8] {
        await withCheckedContinuation { continuation in
            lock.lock()
            if let result {
                lock.unlock()
                continuation.resume(returning: result)
            } else {
                waiter = continuation
                lock.unlock()
            }
        }
    }
}
