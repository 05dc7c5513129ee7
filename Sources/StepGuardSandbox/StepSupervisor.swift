import CSandbox
import Dispatch
import Foundation
import Synchronization

/// Runs one build step and supervises it until it and every descendant are gone.
///
/// The step runs in its own process group with stdin, stdout and stderr inherited. SIGINT, SIGTERM,
/// SIGHUP and SIGQUIT sent to stepguard are forwarded to the step's group. stepguard is a child
/// subreaper, so descendants that outlive their parents are re-parented to it and reaped; when the
/// step's main process ends, what is left of its process tree gets SIGTERM, then SIGKILL after
/// the grace period. ``stop()`` does the same while the step runs (a policy violation with
/// `on_violation: kill`).
public final class StepSupervisor: Sendable {
    /// Signals forwarded to the step.
    public static let forwardedSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT]

    private struct State {
        var processGroup: pid_t?
        var finished = false
        var stopping = false
    }

    private let state = Mutex(State())
    private let gracePeriod: Duration
    private let queue = DispatchQueue(label: "stepguard.supervisor")

    /// - Parameter gracePeriod: time between SIGTERM and SIGKILL when the step is stopped.
    public init(gracePeriod: Duration) {
        self.gracePeriod = gracePeriod
    }

    /// Starts `command`, blocks until the step and all its descendants have ended, and returns how
    /// the step's main process ended. `onStart` runs with the step's pid once it has started.
    public func run(_ command: StepCommand, onStart: @Sendable (pid_t) -> Void = { _ in }) throws(SandboxError) -> StepTermination {
        let executable = try command.resolveExecutable()
        _ = sg_set_child_subreaper()
        let signalSources = installSignalForwarding()
        defer { removeSignalForwarding(signalSources) }

        let takeTerminal = isatty(STDIN_FILENO) == 1 && tcgetpgrp(STDIN_FILENO) == getpgrp()
        let pid = try spawn(executable: executable, command: command, takeTerminal: takeTerminal)
        state.withLock { $0.processGroup = pid }
        onStart(pid)

        let termination = reapAll(mainPid: pid)
        if takeTerminal {
            signal(SIGTTOU, SIG_IGN)
            tcsetpgrp(STDIN_FILENO, getpgrp())
            signal(SIGTTOU, SIG_DFL)
        }
        return termination
    }

    /// Stops the running step: SIGTERM to its process group and leftover descendants now, SIGKILL
    /// after the grace period. Safe to call from any thread, more than once.
    public func stop() {
        let group: pid_t? = state.withLock { state in
            guard !state.finished, !state.stopping, let group = state.processGroup else { return nil }
            state.stopping = true
            return group
        }
        guard let group else { return }
        terminateTree(group: group, signal: SIGTERM)
        scheduleKill(group: group)
    }

    // MARK: - Spawning

    private func spawn(executable: String, command: StepCommand, takeTerminal: Bool) throws(SandboxError) -> pid_t {
        let argv = command.arguments.map { strdup($0) } + [nil]
        let envp = command.environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var options = sg_spawn_options(take_terminal: takeTerminal ? 1 : 0)
        var pid: pid_t = 0
        let error = argv.withUnsafeBufferPointer { args in
            envp.withUnsafeBufferPointer { env in
                sg_spawn(executable, args.baseAddress, env.baseAddress, &options, &pid)
            }
        }
        guard error == 0 else {
            if error == ENOENT { throw SandboxError.commandNotFound(executable, searched: nil) }
            if error == EACCES { throw SandboxError.notExecutable(executable) }
            throw SandboxError.spawnFailed("starting '\(executable)'", errno: error)
        }
        return pid
    }

    // MARK: - Reaping

    /// Waits for every child (the step and re-parented orphans); once the main process has ended,
    /// terminates what is left of its tree.
    private func reapAll(mainPid: pid_t) -> StepTermination {
        var termination: StepTermination?
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, 0)
            if pid < 0 {
                if errno == EINTR { continue }
                break  // ECHILD: nothing left to reap
            }
            guard pid == mainPid else { continue }
            termination = Self.termination(from: status)
            // The main process is gone; anything left of the step is an orphan to clean up.
            if hasChildren() || groupExists(mainPid) {
                let alreadyStopping = state.withLock { state in
                    defer { state.stopping = true }
                    return state.stopping
                }
                terminateTree(group: mainPid, signal: SIGTERM)
                if !alreadyStopping { scheduleKill(group: mainPid) }
            }
        }
        state.withLock { $0.finished = true }
        return termination ?? .signaled(SIGKILL)
    }

    private func scheduleKill(group: pid_t) {
        let (seconds, attoseconds) = gracePeriod.components
        let delay = DispatchTimeInterval.nanoseconds(Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000))
        queue.asyncAfter(deadline: .now() + delay) { [self] in
            guard !state.withLock({ $0.finished }) else { return }
            terminateTree(group: group, signal: SIGKILL)
        }
    }

    /// Sends `signal` to the step's process group and to every direct child of stepguard (which
    /// includes re-parented descendants that left the group).
    private func terminateTree(group: pid_t, signal: Int32) {
        kill(-group, signal)
        for child in childPids() { kill(child, signal) }
    }

    private func groupExists(_ group: pid_t) -> Bool {
        kill(-group, 0) == 0
    }

    private func hasChildren() -> Bool { !childPids().isEmpty }

    /// Children of every thread of this process, from /proc/self/task/*/children.
    private func childPids() -> [pid_t] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.flatMap { task -> [pid_t] in
            guard let text = try? String(contentsOfFile: "/proc/self/task/\(task)/children", encoding: .utf8) else { return [] }
            return text.split(separator: " ").compactMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
    }

    static func termination(from status: Int32) -> StepTermination {
        let signal = status & 0x7f
        return signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
    }

    // MARK: - Signal forwarding

    private func installSignalForwarding() -> [any DispatchSourceSignal] {
        Self.forwardedSignals.map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { [self] in
                if let group = state.withLock({ $0.finished ? nil : $0.processGroup }) {
                    kill(-group, number)
                }
            }
            source.resume()
            return source
        }
    }

    private func removeSignalForwarding(_ sources: [any DispatchSourceSignal]) {
        sources.forEach { $0.cancel() }
        Self.forwardedSignals.forEach { signal($0, SIG_DFL) }
    }
}
