import CSandbox
import Dispatch
import FoundationEssentials
import StepGuardCore
import Glibc
import Synchronization

/// Runs one build step and supervises it until it and every descendant are gone.
///
/// The step runs in its own process group with stdin, stdout and stderr inherited, and no other
/// descriptor unless ``SpawnOptions/keptDescriptors`` names it. SIGINT, SIGTERM,
/// SIGHUP and SIGQUIT sent to stepguard are forwarded to the step's group. stepguard is a child
/// subreaper, so descendants that outlive their parents are re-parented to it and reaped; when the
/// step's main process ends, what is left of its process tree gets SIGTERM, then SIGKILL after
/// the grace period. ``stop()`` does the same while the step runs (a policy violation with
/// `on_violation: kill`).
public final class StepSupervisor: Sendable {

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
    /// the step's main process ended. `onStart` runs once the step has started (before it is waited for).
    public func run(_ command: StepCommand, options: SpawnOptions = SpawnOptions(),
                    onStart: @Sendable (StartedStep) -> Void = { _ in }) throws(SandboxError) -> StepTermination {
        let executable = try command.resolveExecutable()
        _ = sg_set_child_subreaper()
        sg_forward_signals(0)  // hold signals until the step's group exists
        defer { sg_forward_signals_stop() }

        let takeTerminal = isatty(STDIN_FILENO) == 1 && tcgetpgrp(STDIN_FILENO) == getpgrp()
        let limit = try options.maxProcesses.map { maximum throws(SandboxError) in try ProcessLimit.prepare(maximum: maximum) }
        defer { if case .cgroup(let group)? = limit { group.remove() } }
        var started: StartedStep
        do {
            started = try spawnFallingBack(executable: executable, command: command, options: options, limit: limit, takeTerminal: takeTerminal)
        } catch .tripwiresUnavailable(let reason) {
            // Tripwires are detection; hiding and isolation hold without them: never drop those for them.
            var unwatched = options
            unwatched.isolation?.tripwires = false
            started = try spawnFallingBack(executable: executable, command: command, options: unwatched, limit: limit, takeTerminal: takeTerminal)
            started.tripwireFallback = reason
        }
        started.processLimit = limit?.summary
        let group = started.processGroup
        state.withLock { $0.processGroup = group }
        sg_forward_signals(group)
        onStart(started)

        let termination = reapAll(mainPid: started.pid, group: group, stepStatus: started.stepStatus)
        started.tripwires?.finish()
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

    /// Kills the running step at once: SIGKILL to its process group and every child of stepguard
    /// (for an isolated step its init, whose end ends the whole PID namespace). No grace period:
    /// used when the step has shown it is hostile (a tripwire). Safe to call from any thread.
    public func killAtOnce() {
        let group: pid_t? = state.withLock { state in
            guard !state.finished, let group = state.processGroup else { return nil }
            state.stopping = true
            return group
        }
        guard let group else { return }
        terminateTree(group: group, signal: SIGKILL)
    }

    // MARK: - Spawning

    /// Spawns the step; when isolation is impossible and the options allow it, spawns it without
    /// (and says why in ``StartedStep/isolationFallback``).
    private func spawnFallingBack(executable: String, command: StepCommand, options: SpawnOptions, limit: ProcessLimit?,
                                  takeTerminal: Bool) throws(SandboxError) -> StartedStep {
        do {
            return try spawn(executable: executable, command: command, options: options, limit: limit, takeTerminal: takeTerminal)
        } catch .isolationUnavailable(let reason) where options.fallBackWithoutIsolation {
            var plain = options
            plain.isolation = nil
            var started = try spawn(executable: executable, command: command, options: plain, limit: limit, takeTerminal: takeTerminal)
            started.isolationFallback = reason
            return started
        }
    }

    private func spawn(executable: String, command: StepCommand, options: SpawnOptions, limit: ProcessLimit?,
                       takeTerminal: Bool) throws(SandboxError) -> StartedStep {
        let plan = HidePlan(options.isolation?.hiddenPaths ?? [], protected: options.isolation?.protectedFiles ?? [])
        let tripwirePlan = options.isolation?.tripwires == true ? TripwirePlan(plan) : TripwirePlan(HidePlan([]))
        let capture = options.isolation.map { $0.capture && $0.proxyPort != nil } ?? false
        let privateDirectory = try options.isolation == nil ? nil
            : Self.makePrivateDirectory(count: max(plan.files.count, 1), resolverConfiguration: capture ? IsolationRequest.resolverConfiguration : nil,
                                        plan: plan, tripwirePlan: tripwirePlan, temporary: options.temporaryDirectory)
        defer { privateDirectory.map { Self.removePrivateDirectory($0.directory, entries: $0.entries) } }
        let argv = CStringArray(command.arguments)
        let envp = CStringArray(command.environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })
        let directories = CStringArray(plan.directories)
        let files = CStringArray(plan.files)
        let coverFiles = privateDirectory?.coverFiles ?? []
        // Until the tripwire watch takes them over (then `traps` is emptied), they are closed here.
        var traps = privateDirectory?.traps ?? []
        defer { for trap in traps { close(trap.listener) } }
        let writableCovers = privateDirectory?.writableCovers
        let sources = CStringArray(coverFiles)
        let decoyDirectories = CStringArray(tripwirePlan.decoyDirectories)
        let decoyFiles = CStringArray(tripwirePlan.decoyFiles)
        let watchPaths = CStringArray(tripwirePlan.watches.map(\.path))
        let watchMasks = tripwirePlan.watches.map(\.mask)
        var watchDescriptors = [Int32](repeating: -1, count: tripwirePlan.watches.count)
        var watchIdentities = [UInt64](repeating: 0, count: 2 * tripwirePlan.watches.count)
        let kept = Set(options.keptDescriptors.filter { $0 > STDERR_FILENO }).sorted()
        for fd in kept where fcntl(fd, F_GETFD) < 0 {
            throw SandboxError.spawnFailed("keeping descriptor \(fd) for the step (it is not open)", errno: errno)
        }
        let emptyFile: String? = privateDirectory?.files.first
        let resolverConfiguration: String? = privateDirectory?.resolverConfiguration
        let coverFlags = writableCovers?.flags ?? []
        let result = emptyFile.withOptionalCString { emptyPath in resolverConfiguration.withOptionalCString { resolvConf in
            (writableCovers?.directory).withOptionalCString { coverDirectory in coverFlags.withUnsafeBufferPointer { coverFlagPointer in
            directories.withPointers { hideDirectories in
                files.withPointers { hideFiles in
                    sources.withPointers { hideSources in
                        decoyDirectories.withPointers { decoyDirectoryPointers in
                            decoyFiles.withPointers { decoyFilePointers in
                                watchPaths.withPointers { watchPathPointers in
                                    watchMasks.withUnsafeBufferPointer { masks in
                                        watchDescriptors.withUnsafeMutableBufferPointer { watches in watchIdentities.withUnsafeMutableBufferPointer { identities in
                                            kept.withUnsafeBufferPointer { keep in
                                                var spawnOptions = sg_spawn_options(
                                                    take_terminal: takeTerminal ? 1 : 0, isolate: options.isolation == nil ? 0 : 1,
                                                    proxy_port: options.isolation?.proxyPort ?? 0,
                                                    capture: capture ? 1 : 0, resolv_conf: resolvConf,
                                                    hide_directories: hideDirectories, hide_files: hideFiles, empty_file: emptyPath,
                                                    hide_file_sources: privateDirectory == nil ? nil : hideSources,
                                                    cover_directory: coverDirectory, writable_covers: coverFlagPointer.baseAddress,
                                                    decoy_directories: decoyDirectoryPointers, decoy_files: decoyFilePointers,
                                                    tripwire_paths: watchPathPointers, tripwire_masks: masks.baseAddress,
                                                    tripwire_watches: watches.baseAddress, tripwire_count: Int32(masks.count),
                                                    tripwire_identities: identities.baseAddress,
                                                    max_processes: limit?.rlimitMaximum ?? 0, cgroup_procs: limit?.cgroupProcs ?? -1,
                                                    keep_fds: keep.baseAddress, keep_fd_count: Int32(keep.count),
                                                    grace_milliseconds: Int(gracePeriod.components.seconds * 1000 + gracePeriod.components.attoseconds / 1_000_000_000_000_000))
                                                return argv.withMutablePointers { args in
                                                    envp.withMutablePointers { env in sg_spawn(executable, args, env, &spawnOptions) }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        } } } } }
        guard result.error == 0 else {
            let named: [String] = switch result.stage {
            case SG_STAGE_DECOY: tripwirePlan.decoyDirectories + tripwirePlan.decoyFiles
            case SG_STAGE_TRIPWIRE: tripwirePlan.watches.map(\.path)
            case SG_STAGE_KERNEL_KNOBS: (0..<16).compactMap { sg_kernel_knob_path(Int32($0)).map { String(cString: $0) } }
            default: plan.all
            }
            let failedPath = result.failed_path >= 0 && Int(result.failed_path) < named.count ? named[Int(result.failed_path)]
                : result.stage == SG_STAGE_TRIPWIRE ? nil : result.stage == SG_STAGE_DECOY ? writableCovers.map { "\($0.directory) (the writable covers of hidden files)" } : executable
            throw SandboxError.from(stage: result.stage, errno: result.error, path: failedPath)
        }
        var tripwires: TripwireWatch?
        if !tripwirePlan.watches.isEmpty {
            do throws(SandboxError) {
                guard result.tripwire_fd >= 0 else {
                    throw SandboxError.spawnFailed("receiving the tripwire watch from the step's namespace", errno: EIO)
                }
                tripwires = try TripwireWatch(fd: result.tripwire_fd, plan: tripwirePlan, watchDescriptors: watchDescriptors, root: result.pid,
                                              traps: traps, names: result.names_fd, namesError: result.names_error,
                                              identities: watchIdentities)
                traps = []
            } catch {
                // The step has started, but without the watch it was to run under: stop it (fail closed).
                Glibc.kill(-result.group, SIGKILL)
                if result.pid != result.group { Glibc.kill(result.pid, SIGKILL) }
                throw error
            }
        }
        return StartedStep(pid: result.pid, processGroup: result.group, proxyListener: result.listener >= 0 ? result.listener : nil,
                           hidden: options.isolation == nil ? [] : plan.reported, isolated: options.isolation != nil,
                           stepStatus: result.status_fd >= 0 ? StepStatusChannel(status: result.status_fd, lifeline: result.lifeline_fd) : nil,
                           ownProcUnavailable: result.proc_error == 0 ? nil : String(cString: strerror(result.proc_error)),
                           tripwires: tripwires, capture: capture && result.capture_stage == SG_CAPTURE_NONE ? CapturedNetwork(capturedDescriptors(result)) : nil,
                           captureFallback: capture && result.capture_stage != SG_CAPTURE_NONE
                               ? CapturedNetwork.failure(stage: result.capture_stage, errno: result.capture_error) : nil)
    }

    /// The descriptors of sg_spawn_result.capture_fds (a C array: a tuple in Swift).
    private func capturedDescriptors(_ result: sg_spawn_result) -> [Int32] {
        withUnsafeBytes(of: result.capture_fds) { Array($0.bindMemory(to: Int32.self)) }
    }

    /// Where the private directory of one spawn is made: a memory file system when one is at hand
    /// (`$TMPDIR` if it is one, else `/dev/shm`), else the temporary directory. Its files are only
    /// the sources of bind mounts, removed once the step has started; on ext4, making and removing
    /// them cost 0.5–1 ms of every isolated run, on tmpfs about 30 µs (issue #17's start-up).
    static func scratchBase(temporary: String) -> String {
        for candidate in [temporary, "/dev/shm"] {
            if sg_is_memory_filesystem(candidate) == 1 && access(candidate, W_OK | X_OK) == 0 { return candidate }
        }
        return temporary
    }

    /// What an isolated spawn makes in its private directory: the sources of the hidden files'
    /// covers and of the step's resolv.conf, and what its tripwires need there.
    private struct PrivateDirectory {
        let directory: String
        /// Empty, read-only files (see ``makeEmptyFiles(in:count:resolverConfiguration:)``).
        let files: [String]
        let resolverConfiguration: String?
        /// The source of each hidden file's cover (indexed like ``HidePlan/files``): an empty file,
        /// a trap's socket, or a writable cover's place.
        var coverFiles: [String]
        /// One listening socket per hidden socket (tripwires on).
        var traps: [SocketTrap] = []
        /// The writable covers' mount point and flags (tripwires on), as ``TripwirePlan/pointWritableCovers(into:coverFiles:)`` returns them.
        var writableCovers: (directory: String, flags: [Int32])?
        /// Every entry made in the directory, removed with it.
        var entries: [String]
    }

    /// The private directory of one spawn, with everything it is to hold (``PrivateDirectory``).
    ///
    /// A memory file system that cannot take all of it (`/dev/shm` full: any local user can fill
    /// it, and a step that sees it can too — to the inode, so that the empty files fit and a trap
    /// or the covers' mount point does not) is no reason to refuse the step: it is then all made
    /// in the temporary directory, as when there is no memory file system, whose failure is the error.
    private static func makePrivateDirectory(count: Int, resolverConfiguration: String?, plan: HidePlan, tripwirePlan: TripwirePlan,
                                             temporary: String) throws(SandboxError) -> PrivateDirectory {
        let base = scratchBase(temporary: temporary)
        if base != temporary, let made = try? makePrivateDirectory(in: base, count: count, resolverConfiguration: resolverConfiguration,
                                                                    plan: plan, tripwirePlan: tripwirePlan) {
            return made
        }
        return try makePrivateDirectory(in: temporary, count: count, resolverConfiguration: resolverConfiguration, plan: plan, tripwirePlan: tripwirePlan)
    }

    /// ``PrivateDirectory`` in `base`; on failure nothing of it is left (no entry, no open trap).
    private static func makePrivateDirectory(in base: String, count: Int, resolverConfiguration: String?, plan: HidePlan,
                                             tripwirePlan: TripwirePlan) throws(SandboxError) -> PrivateDirectory {
        let made = try makeEmptyFiles(in: base, count: count, resolverConfiguration: resolverConfiguration)
        var directory = PrivateDirectory(directory: made.directory, files: made.files, resolverConfiguration: made.resolverConfiguration,
                                         coverFiles: made.files, entries: made.files + [made.resolverConfiguration].compactMap { $0 })
        do throws(SandboxError) {
            // Hidden sockets are covered with a trap of stepguard's when tripwires are on (SocketTrap).
            for index in tripwirePlan.sockets where index < directory.coverFiles.count {
                let socketPath = "\(made.directory)/trap-\(index).sock"
                directory.entries.append(socketPath)  // before it is bound: a trap that fails after binding leaves its file
                directory.traps.append(try SocketTrap.make(at: socketPath, covering: plan.files[index]))
                directory.coverFiles[index] = socketPath
            }
            directory.writableCovers = try tripwirePlan.pointWritableCovers(into: made.directory, coverFiles: &directory.coverFiles)
            if let covers = directory.writableCovers { directory.entries.append(covers.directory) }
        } catch {
            for trap in directory.traps { close(trap.listener) }
            removePrivateDirectory(made.directory, entries: directory.entries)
            throw error
        }
        return directory
    }

    /// `count` empty, read-only files in a new private directory in `base`, bind-mounted over
    /// hidden files (one each, so that a tripwire knows which hidden file was opened).
    /// With `resolverConfiguration`, also writes it to a file the step's `/etc/resolv.conf` is covered with.
    private static func makeEmptyFiles(in base: String, count: Int, resolverConfiguration: String?) throws(SandboxError)
        -> (directory: String, files: [String], resolverConfiguration: String?) {
        var template = Array((base + "/stepguard-hide-XXXXXX").utf8CString)
        guard let created = mkdtemp(&template) else { throw SandboxError.spawnFailed("creating a private directory in \(base)", errno: errno) }
        let directory = String(cString: created)
        var files: [String] = []
        for index in 0..<count {
            let path = directory + "/empty-\(index)"
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o444)
            guard fd >= 0 else {
                let error = errno
                removePrivateDirectory(directory, entries: files)
                throw SandboxError.spawnFailed("creating \(path)", errno: error)
            }
            close(fd)
            files.append(path)
        }
        var resolverPath: String?
        if let resolverConfiguration {
            // Written like the empty files beside it (no temporary file, no fsync: it lives for one spawn).
            let path = directory + "/resolv.conf"
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o444)
            let bytes = Array(resolverConfiguration.utf8)
            let written = fd >= 0 ? write(fd, bytes, bytes.count) : -1
            let error = errno
            if fd >= 0 { close(fd) }
            guard written == bytes.count else {
                removePrivateDirectory(directory, entries: files + (fd >= 0 ? [path] : []))
                throw SandboxError.spawnFailed("creating \(path)", errno: error)
            }
            resolverPath = path
        }
        chmod(directory, 0o755)
        return (directory, files, resolverPath)
    }

    /// Removes a private directory of ``makePrivateDirectory(in:count:resolverConfiguration:plan:tripwirePlan:)`` and the
    /// entries stepguard made in it (the step never sees the directory, only bind mounts of its
    /// files): files and sockets are unlinked, a directory (the writable covers' mount point, empty
    /// outside the step's namespace) removed; none is followed if it is a symbolic link.
    private static func removePrivateDirectory(_ directory: String, entries: [String]) {
        for entry in entries where unlink(entry) != 0 && errno == EISDIR { rmdir(entry) }
        rmdir(directory)
    }

    // MARK: - Reaping

    /// Waits for every child (the step, or the init of its PID namespace, and re-parented orphans);
    /// once the main process has ended, terminates what is left of its tree. An isolated step's
    /// status comes from its init (`stepStatus`), which has ended the whole namespace by then.
    private func reapAll(mainPid: pid_t, group: pid_t, stepStatus: StepStatusChannel?) -> StepTermination {
        defer { stepStatus?.close() }
        var termination: StepTermination?
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, 0)
            if pid < 0 {
                if errno == EINTR { continue }
                break  // ECHILD: nothing left to reap
            }
            guard pid == mainPid else { continue }
            termination = Self.termination(from: stepStatus?.read() ?? status)
            // The main process is gone; anything left of the step is an orphan to clean up.
            if hasChildren() || groupExists(group) {
                let alreadyStopping = state.withLock { state in
                    defer { state.stopping = true }
                    return state.stopping
                }
                terminateTree(group: group, signal: SIGTERM)
                if !alreadyStopping { scheduleKill(group: group) }
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

    /// Whether stepguard still has a child (running or not yet reaped), without reaping it.
    /// Cheaper than listing /proc, which this answers in the common case of a step that left nothing.
    private func hasChildren() -> Bool {
        var info = siginfo_t()
        while waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 {
            if errno != EINTR { return errno != ECHILD }
        }
        return true
    }

    /// Children of every thread of this process, from /proc/self/task/*/children.
    private func childPids() -> [pid_t] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.flatMap { task -> [pid_t] in
            guard let text = try? String(contentsOfFile: "/proc/self/task/\(task)/children", encoding: .utf8) else { return [] }
            return text.split(separator: " ").compactMap { pid_t($0.trimmingWhitespaceAndNewlines()) }
        }
    }

    static func termination(from status: Int32) -> StepTermination {
        let signal = status & 0x7f
        return signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
    }
}
