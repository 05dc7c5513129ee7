import CSandbox
import FoundationEssentials
import StepGuardCore
import Glibc
import Synchronization

/// One fact about this machine that stepguard depends on, as `stepguard doctor` reports it.
public struct MachineCheck: Sendable, Equatable {
    public enum Status: String, Sendable {
        /// Present and working.
        case ok
        /// Absent: what depends on it is off or refused (see `remedy`).
        case missing
        /// Present with a limit worth knowing.
        case limited
    }

    /// What was checked, e.g. `user namespaces`.
    public let name: String
    public let status: Status
    /// What was found, in words.
    public let detail: String
    /// What to do when it is missing or limited.
    public let remedy: String?

    public init(name: String, status: Status, detail: String, remedy: String? = nil) {
        self.name = name
        self.status = status
        self.detail = detail
        self.remedy = remedy
    }
}

/// Probes what this machine gives the sandbox, the same way `stepguard run` would use it.
public enum MachineProbe {
    /// Starts `true` isolated, exactly as `run` isolates a step (user, network, mount and PID
    /// namespaces, locked mounts, its own /proc). Returns the check and, when the probe failed, the
    /// error `run` would fail with: ``SandboxError/isolationUnavailable(_:)`` when isolation is
    /// impossible (`run` refuses only `isolation: required`), another error when an isolated step
    /// cannot be started at all. The probe step's PATH and the temporary directory (`TMPDIR`) are
    /// `environment`'s.
    public static func isolation(environment: [String: String]) -> (MachineCheck, SandboxError?) {
        let name = "user namespaces (isolation)"
        let supervisor = StepSupervisor(gracePeriod: .seconds(1))
        let step = StepCommand(arguments: ["true"], environment: ["PATH": environment["PATH"] ?? "/usr/bin:/bin"])
        var probe = SpawnOptions(isolation: IsolationRequest(proxyPort: nil, hiddenPaths: []))
        probe.temporaryDirectory = SpawnOptions.temporaryDirectory(in: environment)
        let procProblem = Mutex<String?>(nil)
        do {
            let termination = try supervisor.run(step, options: probe) { started in procProblem.withLock { $0 = started.ownProcUnavailable } }
            guard termination == .exited(0) else {
                let error = SandboxError.isolationUnavailable("an isolated probe step \(termination)")
                return (MachineCheck(name: name, status: .missing, detail: error.description, remedy: restrictionRemedy()), error)
            }
        } catch let error {
            guard case .isolationUnavailable(let reason) = error else {
                return (MachineCheck(name: name, status: .missing, detail: "the probe step did not start: \(error)",
                                     remedy: "an isolated step needs a writable $TMPDIR (or /tmp) and a free process slot"), error)
            }
            return (MachineCheck(name: name, status: .missing, detail: "isolation is unavailable: \(reason)",
                                 remedy: restrictionRemedy() ?? "run as root, or enable unprivileged user namespaces"), error)
        }
        if let procProblem = procProblem.withLock({ $0 }) {
            return (MachineCheck(name: name, status: .limited,
                                 detail: "user, network, mount and PID namespaces work, but the kernel refuses the step a /proc of its own (\(procProblem)): steps see this machine's processes",
                                 remedy: "run outside a container that masks /proc, or in one started with an unmasked /proc"), nil)
        }
        return (MachineCheck(name: name, status: .ok, detail: "user, network, mount and PID namespaces, locked mounts, the step's own /proc"), nil)
    }

    /// The sysctl that keeps unprivileged user namespaces off here, with the command that turns it on.
    static func restrictionRemedy(readingFrom root: String = "/proc/sys") -> String? {
        func value(_ name: String) -> String? {
            (try? String(contentsOfFile: "\(root)/\(name)", encoding: .utf8))?.trimmingWhitespaceAndNewlines()
        }
        if value("kernel/apparmor_restrict_unprivileged_userns") == "1" {
            return "AppArmor restricts unprivileged user namespaces (Ubuntu 23.10+, GitHub's ubuntu-24.04): load a profile that grants them to stepguard, as actions/setup does with sudo (actions/setup/stepguard.apparmor), or sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"
        }
        if value("kernel/unprivileged_userns_clone") == "0" {
            return "unprivileged user namespaces are disabled: sudo sysctl -w kernel.unprivileged_userns_clone=1"
        }
        if value("user/max_user_namespaces") == "0" {
            return "user.max_user_namespaces is 0: sudo sysctl -w user.max_user_namespaces=15000"
        }
        return nil
    }

    /// Whether `limits.processes` gets a pids cgroup (made and removed here) or RLIMIT_NPROC.
    public static func processLimit() -> MachineCheck {
        let name = "pids cgroup (limits.processes)"
        do {
            switch try ProcessLimit.prepare(maximum: 64) {
            case .cgroup(let group):
                let directory = group.directory
                group.remove()
                return MachineCheck(name: name, status: .ok, detail: "a pids cgroup can be made under \(FilePaths.deletingLastComponent(directory))")
            case .rlimit:
                return MachineCheck(name: name, status: .limited, detail: "no writable pids cgroup: limits.processes falls back to RLIMIT_NPROC, counted per user",
                                    remedy: "delegate the pids controller to this user's cgroup (systemd: Delegate=pids) for an exact limit")
            }
        } catch {
            return MachineCheck(name: name, status: .missing, detail: error.description,
                                remedy: "mount the pids controller, or remove limits.processes from the policy")
        }
    }

    /// Whether stepguard's code is mapped in 2 MiB pages; collapses it first where the kernel can.
    public static func codePages() -> MachineCheck {
        let name = "code in 2 MiB pages (start-up)"
        ExecutableCode.collapseIntoHugePages()
        guard let mapping = ExecutableCode.mapping() else {
            return MachineCheck(name: name, status: .limited, detail: "/proc/self/smaps cannot be read")
        }
        let mebibytes = { (bytes: Int) in String(bytes / (1 << 20)) }
        if mapping.inHugePages > 0 {
            return MachineCheck(name: name, status: .ok, detail: "\(mebibytes(mapping.inHugePages)) of the \(mebibytes(mapping.mapped)) MiB of code this process maps")
        }
        let settings = FileManager.default.contents(atPath: "/sys/kernel/mm/transparent_hugepage/enabled").map { String(decoding: $0, as: UTF8.self) } ?? ""
        if settings.contains("[never]") {
            return MachineCheck(name: name, status: .limited, detail: "transparent huge pages are off: each run maps its code in 4 KiB pages",
                                remedy: "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled (about 0.7 ms less per run)")
        }
        return MachineCheck(name: name, status: .limited,
                            detail: "the page cache holds stepguard's code in small pages: each run maps it in 4 KiB pages",
                            remedy: "where the file system caches large folios (ext4 since Linux 6.16, XFS, tmpfs), install the binary with 2 MiB writes, as actions/setup does (dd if=stepguard of=NEW bs=2M, then mv NEW over it): about 0.7 ms less per run")
    }

    /// The Landlock ABI the kernel offers (not used by stepguard yet; reported for planning).
    public static func landlock() -> MachineCheck {
        let name = "Landlock"
        let abi = sg_landlock_abi()
        if abi > 0 { return MachineCheck(name: name, status: .ok, detail: "ABI version \(abi)") }
        let reason = -abi == EOPNOTSUPP ? "disabled at boot (add landlock to the lsm= kernel parameter)" : String(cString: strerror(-abi))
        return MachineCheck(name: name, status: .limited, detail: "unavailable: \(reason)")
    }
}
