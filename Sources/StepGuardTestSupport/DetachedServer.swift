import Foundation

/// A server a test starts that must outlive the shell that starts it (sshd, PostgreSQL).
///
/// Foundation's `Process` learns that a child ended when a socket it passes to the child is closed
/// by every process holding it; a server started from that child inherits the socket and keeps it
/// open, so the child is never reaped and the test hangs in `waitUntilExit`. The server is therefore
/// started with every descriptor above 2 closed, and reparented away from the test process.
public struct DetachedServer: Sendable {
    /// The server's process id (the test stops it with `stop`).
    public let pid: pid_t

    /// Starts `command` (a shell command line) in the background, its output appended to `log`.
    public static func start(_ command: String, log: String) throws -> DetachedServer {
        let script = """
            for fd in /proc/$$/fd/*; do n=${fd##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-"; done
            \(command) </dev/null >>\(log) 2>&1 & echo $!
            """
        let started = try ProgramRun.start("/bin/bash", ["-c", script]).wait()
        guard started.status == 0, let pid = pid_t(started.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw TestSupportError.commandFailed("starting \(command)", started)
        }
        return DetachedServer(pid: pid)
    }

    /// Sends `signal` to the server (SIGTERM by default).
    public func stop(_ signal: Int32 = SIGTERM) { kill(pid, signal) }
}
