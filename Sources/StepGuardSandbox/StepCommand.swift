import FoundationEssentials
import Glibc

/// A command to run as a build step: the program (looked up in the step's PATH), its arguments and
/// its environment.
public struct StepCommand: Sendable, Equatable {
    public var arguments: [String]
    public var environment: [String: String]

    public init(arguments: [String], environment: [String: String]) {
        self.arguments = arguments
        self.environment = environment
    }

    /// The executable's path: `arguments[0]` itself when it contains a `/`, else the first
    /// executable file of that name in the step's `PATH`.
    public func resolveExecutable() throws(SandboxError) -> String {
        guard let name = arguments.first, !name.isEmpty else { throw SandboxError.noCommand }
        if name.contains("/") {
            guard FileManager.default.fileExists(atPath: name) else { throw SandboxError.commandNotFound(name, searched: nil) }
            guard access(name, X_OK) == 0 else { throw SandboxError.notExecutable(name) }
            return name
        }
        let path = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        var foundButNotExecutable: String?
        for directory in path.split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = (directory.isEmpty ? "." : String(directory)) + "/" + name
            var isDirectory = false
            guard FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory), !isDirectory else { continue }
            if access(candidate, X_OK) == 0 { return candidate }
            foundButNotExecutable = foundButNotExecutable ?? candidate
        }
        if let foundButNotExecutable { throw SandboxError.notExecutable(foundButNotExecutable) }
        throw SandboxError.commandNotFound(name, searched: path)
    }
}

/// How a step ended.
public enum StepTermination: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    /// The shell convention: the exit status, or 128 + N when killed by signal N.
    public var exitCode: Int32 {
        switch self {
        case .exited(let code): code
        case .signaled(let signal): 128 + signal
        }
    }

    public var description: String {
        switch self {
        case .exited(let code): "exited with status \(code)"
        case .signaled(let signal): "killed by signal \(signal) (\(signalName(signal)))"
        }
    }
}

/// The conventional name of a signal number (SIGTERM, SIGKILL…).
public func signalName(_ signal: Int32) -> String {
    let names: [Int32: String] = [SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGKILL: "SIGKILL",
                                  SIGTERM: "SIGTERM", SIGSEGV: "SIGSEGV", SIGABRT: "SIGABRT", SIGPIPE: "SIGPIPE",
                                  SIGUSR1: "SIGUSR1", SIGUSR2: "SIGUSR2", SIGALRM: "SIGALRM", SIGBUS: "SIGBUS"]
    return names[signal] ?? "signal \(signal)"
}

/// Errors starting or supervising a step.
public enum SandboxError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `run` was given no command after `--`.
    case noCommand
    /// The program is not a path and is in no directory of PATH.
    case commandNotFound(String, searched: String?)
    /// The program exists but is not executable.
    case notExecutable(String)
    /// fork/exec or a process-control call failed.
    case spawnFailed(String, errno: Int32)
    /// The step cannot be isolated on this machine (user namespaces unavailable, mounts refused…).
    case isolationUnavailable(String)
    /// `limits.processes` cannot be enforced on this machine.
    case limitUnavailable(String)
    /// The hidden paths could not be watched (decoys or inotify watches refused); the step is then
    /// started isolated without tripwires (see ``StartedStep/tripwireFallback``).
    case tripwiresUnavailable(String)

    public var description: String {
        switch self {
        case .noCommand:
            "no command to run; write it after '--', e.g. stepguard run -- make test"
        case .commandNotFound(let name, let searched):
            searched.map { "command not found: '\(name)' is in no directory of PATH (\($0))" }
                ?? "command not found: '\(name)' does not exist"
        case .notExecutable(let path):
            "'\(path)' is not executable; check its mode (chmod +x) or run it through its interpreter"
        case .spawnFailed(let what, let code):
            "\(what) failed: \(String(cString: strerror(code)))"
        case .isolationUnavailable(let what):
            """
            cannot isolate the step: \(what). Isolation needs user namespaces: run as root, or enable them \
            (sysctl kernel.unprivileged_userns_clone=1; on Ubuntu 24.04 runners \
            sysctl kernel.apparmor_restrict_unprivileged_userns=0), or set isolation: auto to fall back \
            to proxy variables only
            """
        case .tripwiresUnavailable(let what):
            "cannot set tripwires on the hidden paths: \(what)"
        case .limitUnavailable(let what):
            """
            \(what). Run stepguard as an unprivileged user (RLIMIT_NPROC then applies), give it a pids cgroup \
            it may create children in (cgroup v2: delegate the pids controller), or remove limits.processes
            """
        }
    }
}
