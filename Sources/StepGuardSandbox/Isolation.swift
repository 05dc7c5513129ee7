import CSandbox
import FoundationEssentials
import Glibc

/// What isolating a step asks of the kernel: new user, network and mount namespaces in which only
/// loopback is up, the proxy's address is the only listener, and credential stores appear empty.
public struct IsolationRequest: Sendable, Equatable {
    /// Listen on 127.0.0.1:`proxyPort` inside the namespace and hand the socket to the proxy.
    public var proxyPort: UInt16?
    /// Absolute paths to hide (directories get an empty tmpfs, files and sockets an empty file).
    public var hiddenPaths: [String]
    /// stepguard's own files the step must not reach (the audit log): covered like hidden files,
    /// read-only, but not listed among the hidden paths.
    public var protectedFiles: [String]
    /// Watch the hidden paths (`tripwires:`): the step's touching one is reported through
    /// ``StartedStep/tripwires``. Hidden directories get decoys named like their real entries.
    public var tripwires: Bool
    /// Capture transparently (with `proxyPort`): every TCP connection the step opens to a
    /// non-loopback address goes to the proxy's port, every address is local, the step's
    /// `/etc/resolv.conf` names stepguard's resolver, and the sockets of ``CapturedNetwork`` are
    /// handed to stepguard. The host's resolver sockets (``resolverSockets``) are hidden.
    public var capture: Bool

    public init(proxyPort: UInt16?, hiddenPaths: [String], protectedFiles: [String] = [], tripwires: Bool = false, capture: Bool = false) {
        self.proxyPort = proxyPort
        self.hiddenPaths = hiddenPaths
        self.protectedFiles = protectedFiles
        self.tripwires = tripwires
        self.capture = capture
    }

    /// Local daemons a step could ask for names through the filesystem, around the resolver
    /// stepguard gives it: systemd-resolved's varlink sockets, nscd, and the D-Bus system bus
    /// (systemd-resolved answers `ResolveHostname` there, and forwards the name upstream). Covered
    /// under capture.
    public static let resolverSockets = [
        "/run/systemd/resolve/io.systemd.Resolve", "/run/systemd/resolve/io.systemd.Resolve.Monitor",
        "/run/nscd/socket", "/var/run/nscd/socket",
        "/run/dbus/system_bus_socket", "/var/run/dbus/system_bus_socket",
    ]

    /// The step's `/etc/resolv.conf` under capture: stepguard's resolver only, no search domains
    /// (they would turn a short name into queries for names under them).
    static let resolverConfiguration = "# stepguard: names are resolved by stepguard's resolver, which the policy decides\nnameserver 127.0.0.53\noptions edns0\n"

    /// Expands `~` in `filesystem.hide` entries against `home`.
    public static func expand(_ paths: [String], home: String?) -> [String] {
        paths.compactMap { path in
            if path == "~" || path.hasPrefix("~/") {
                guard let home, !home.isEmpty else { return nil }
                return home + String(path.dropFirst())
            }
            return path
        }
    }
}

/// How the step is started: isolation and process limits.
public struct SpawnOptions: Sendable, Equatable {
    public var isolation: IsolationRequest?
    /// When isolation is impossible on this machine, start the step without it (and say why in
    /// ``StartedStep/isolationFallback``) instead of failing.
    public var fallBackWithoutIsolation: Bool
    /// The most processes (and threads) the step and its descendants may have at once: a pids
    /// cgroup when one can be made, else RLIMIT_NPROC (see ``ProcessLimit``).
    public var maxProcesses: Int?
    /// Open descriptors above stderr the step inherits (`--keep-fd`). Every other descriptor is
    /// closed when the step starts: none of stepguard's own, and no socket its parent left open
    /// that would lead out around the proxy.
    public var keptDescriptors: [Int32]
    /// The caller's temporary directory (`$TMPDIR`, or `/tmp`): where an isolated spawn's private
    /// directory is made when no memory file system can take it.
    public var temporaryDirectory = "/tmp"

    /// The temporary directory an environment names: `$TMPDIR` when it is set and not empty, else `/tmp`.
    public static func temporaryDirectory(in environment: [String: String]) -> String {
        environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    }

    public init(isolation: IsolationRequest? = nil, fallBackWithoutIsolation: Bool = false, maxProcesses: Int? = nil,
                keptDescriptors: [Int32] = []) {
        self.isolation = isolation
        self.fallBackWithoutIsolation = fallBackWithoutIsolation
        self.maxProcesses = maxProcesses
        self.keptDescriptors = keptDescriptors
    }
}

/// A step that has started: its pid and, when isolated with a proxy port, the socket listening
/// inside its network namespace (the proxy accepts the step's connections on it).
public struct StartedStep: Sendable {
    /// The process whose end is the step's end: the step's main process, or for an isolated step
    /// the init of its PID namespace (stepguard's), which outlives everything in the namespace.
    public let pid: pid_t
    /// The step's process group (signals are forwarded to it).
    let processGroup: pid_t
    public let proxyListener: Int32?
    /// The hidden paths that existed and were covered.
    public let hidden: [String]
    /// Why isolation was asked for but not applied (the step runs with proxy variables only).
    public var isolationFallback: String?

    /// How `maxProcesses` is enforced, for the audit log (nil without a limit).
    public internal(set) var processLimit: String?

    /// Whether the step runs in its own namespaces.
    public var isIsolated: Bool { isolated }
    let isolated: Bool
    /// Where an isolated step's init reports the step's wait status.
    let stepStatus: StepStatusChannel?
    /// Why an isolated step could not get a /proc of its own (it then sees the /proc of stepguard's
    /// namespace: other processes' command lines, though it still cannot signal them), or nil.
    public let ownProcUnavailable: String?
    /// The watch on the hidden paths when tripwires were asked for and the step is isolated; start
    /// it in `onStart`. ``StepSupervisor`` finishes it once the step has ended.
    public let tripwires: TripwireWatch?
    /// Why tripwires were asked for but the step runs isolated without them, or nil.
    public internal(set) var tripwireFallback: String?
    /// The sockets of the captured namespace, when capture was asked for and is on.
    public let capture: CapturedNetwork?
    /// Why capture was asked for but is off (clients that ignore the proxy variables then reach
    /// nothing, as without capture), or nil.
    public let captureFallback: String?
}

/// The sockets made inside a captured step's network namespace, which stepguard serves (each
/// owned by whoever takes it; nil when it could not be made: the IPv6 ones are optional).
public struct CapturedNetwork: Sendable {
    /// Listening on 127.0.0.1 and [::1] at a privileged port: the step's redirected TCP
    /// connections, whose original destination the proxy reads (SO_ORIGINAL_DST).
    public let listener4: Int32?
    public let listener6: Int32?
    /// UDP on 0.0.0.0:53 and [::]:53: every DNS query the step sends, to whichever server.
    public let dnsUDP4: Int32?
    public let dnsUDP6: Int32?
    /// Listening on 127.0.0.53:53 for DNS over TCP.
    public let dnsTCP: Int32?
    /// Raw UDP sockets that see a copy of every datagram the step sends.
    public let rawUDP4: Int32?
    public let rawUDP6: Int32?

    init(_ fds: [Int32]) {
        func at(_ index: Int32) -> Int32? { fds[Int(index)] >= 0 ? fds[Int(index)] : nil }
        listener4 = at(Int32(SG_CAPTURE_LISTENER4))
        listener6 = at(Int32(SG_CAPTURE_LISTENER6))
        dnsUDP4 = at(Int32(SG_CAPTURE_DNS_UDP4))
        dnsUDP6 = at(Int32(SG_CAPTURE_DNS_UDP6))
        dnsTCP = at(Int32(SG_CAPTURE_DNS_TCP))
        rawUDP4 = at(Int32(SG_CAPTURE_RAW_UDP4))
        rawUDP6 = at(Int32(SG_CAPTURE_RAW_UDP6))
    }

    /// Every socket, for closing them when nothing serves them.
    public var all: [Int32] { [listener4, listener6, dnsUDP4, dnsUDP6, dnsTCP, rawUDP4, rawUDP6].compactMap { $0 } }

    /// Why setting capture up failed at `stage` with `code`.
    static func failure(stage: sg_capture_stage, errno code: Int32) -> String {
        let what = [SG_CAPTURE_ROUTE: "adding a local default route in the step's network namespace",
                    SG_CAPTURE_RULES: "adding the nftables redirect in the step's network namespace (needs nf_tables and nf_nat in the kernel)",
                    SG_CAPTURE_SOCKETS_STAGE: "making the resolver's sockets in the step's network namespace",
                    SG_CAPTURE_RESOLV_CONF: "covering /etc/resolv.conf"][stage] ?? "setting up capture"
        return "\(what) failed: \(String(cString: strerror(code)))"
    }
}

/// The two pipes between stepguard and an isolated step's init: the init writes the step's wait
/// status to `status` before it leaves, and leaves at once (ending the namespace) when `lifeline`
/// closes, i.e. when stepguard dies.
struct StepStatusChannel: Sendable {
    let status: Int32
    let lifeline: Int32

    /// The step's wait status, once the init has ended; nil when the init was killed before it
    /// could say (the step was killed with it).
    func read() -> Int32? {
        var value: Int32 = 0
        let count = withUnsafeMutableBytes(of: &value) { Glibc.read(status, $0.baseAddress, $0.count) }
        return count == MemoryLayout<Int32>.size ? value : nil
    }

    func close() {
        Glibc.close(status)
        Glibc.close(lifeline)
    }
}

/// The hidden paths sorted into what the kernel is asked to do with them.
struct HidePlan {
    var directories: [String] = []
    /// The hidden files, then the protected ones.
    var files: [String] = []
    /// How many of `files` are protected (the last ones).
    var protectedCount = 0
    /// The hidden paths that exist, as reported (protected files are not listed).
    var reported: [String] = []

    /// Paths that do not exist are skipped: there is nothing to hide.
    init(_ paths: [String], protected: [String] = []) {
        var protectedFiles: [String] = []
        for (path, isProtected) in paths.map({ ($0, false) }) + protected.map({ ($0, true) }) {
            var info = stat()
            guard stat(path, &info) == 0 else { continue }
            if (info.st_mode & S_IFMT) == S_IFDIR {
                directories.append(path)
            } else if isProtected {
                protectedFiles.append(path)
            } else {
                files.append(path)
            }
            if !isProtected { reported.append(path) }
        }
        files += protectedFiles
        protectedCount = protectedFiles.count
    }

    /// The hidden files, without stepguard's protected ones.
    var hiddenFiles: ArraySlice<String> { files.dropLast(protectedCount) }

    /// Every covered path, in the order the kernel is asked to cover them (directories, then files).
    var all: [String] { directories + files }
}

extension SandboxError {
    static func from(stage: sg_stage, errno code: Int32, path: String?) -> SandboxError {
        var reason = String(cString: strerror(code))
        if stage == SG_STAGE_USER_NAMESPACE {
            let hints: [Int32: String] = [ENOSPC: " (user.max_user_namespaces is 0 or exhausted)",
                                          EPERM: " (unprivileged user namespaces are disabled or restricted)",
                                          EINVAL: " (the kernel lacks user or network namespace support)"]
            reason += hints[code] ?? ""
        }
        switch stage {
        case SG_STAGE_USER_NAMESPACE, SG_STAGE_ID_MAP, SG_STAGE_LOOPBACK, SG_STAGE_LISTENER, SG_STAGE_MOUNT_PRIVATE:
            let what = [SG_STAGE_USER_NAMESPACE: "creating user, network, mount and PID namespaces",
                        SG_STAGE_ID_MAP: "mapping the step's uid and gid", SG_STAGE_LOOPBACK: "bringing up loopback",
                        SG_STAGE_LISTENER: "listening for the proxy inside the namespace",
                        SG_STAGE_MOUNT_PRIVATE: "making mounts private"][stage] ?? "isolating"
            return .isolationUnavailable("\(what) failed: \(reason)")
        case SG_STAGE_HIDE:
            return .isolationUnavailable("hiding '\(path ?? "?")' failed: \(reason)")
        case SG_STAGE_PROC:
            return .isolationUnavailable("mounting the step's own /proc in its PID namespace failed: \(reason)")
        case SG_STAGE_LOCK:
            return .isolationUnavailable("locking the step's mounts (a nested user namespace) failed: \(reason)")
        case SG_STAGE_KERNEL_KNOBS:
            return .isolationUnavailable("making '\(path ?? "?")' read-only for the step failed: \(reason) (a root step could otherwise change the kernel's global settings, e.g. kernel.core_pattern, and escape its isolation; run stepguard where mount(2) is allowed in its own namespaces, or run the step as an unprivileged user)")
        case SG_STAGE_DECOY:
            return .tripwiresUnavailable("making the decoy '\(path ?? "?")' in a hidden directory failed: \(reason)")
        case SG_STAGE_TRIPWIRE:
            let limit = code == ENOSPC || code == EMFILE
                ? " (fs.inotify.max_user_watches or max_user_instances is exhausted; raise it, or set tripwires: off)" : ""
            let what = path.map { "watching '\($0)'" } ?? "making an inotify instance"
            return .tripwiresUnavailable("\(what) failed: \(reason)\(limit)")
        case SG_STAGE_LIMITS:
            return .limitUnavailable("applying limits.processes to the step failed: \(reason)")
        case SG_STAGE_DESCRIPTORS:
            return .spawnFailed("closing the descriptors the step must not inherit", errno: code)
        case SG_STAGE_EXEC:
            if code == ENOENT { return .commandNotFound(path ?? "", searched: nil) }
            if code == EACCES { return .notExecutable(path ?? "") }
            return .spawnFailed("executing '\(path ?? "")'", errno: code)
        default:
            return .spawnFailed("starting the step (stage \(stage.rawValue))", errno: code)
        }
    }
}

extension IsolationRequest {
    /// Well-known daemon sockets that lead out of any namespace through the filesystem.
    public static let knownDaemonSockets = [
        "/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock",
        "/run/podman/podman.sock", "/run/buildkit/buildkitd.sock",
    ]

    /// Daemon sockets that exist on this machine and are not hidden: an isolated step can still
    /// reach them (the Docker socket is root on the host). Shown in the isolation verdict.
    public var reachableDaemonSockets: [String] {
        Self.knownDaemonSockets.filter { socket in
            FileManager.default.fileExists(atPath: socket) && !hiddenPaths.contains { socket == $0 || socket.hasPrefix($0 + "/") }
        }
    }
}
