import FoundationEssentials
import Glibc

/// How `limits.processes` is enforced for one step.
///
/// A pids cgroup made for the step is preferred: `pids.max` caps the processes and threads of the
/// step and all its descendants, whoever runs stepguard. Without a writable pids controller
/// (cgroup v1 `pids` hierarchy, or cgroup v2 with `pids` delegated), RLIMIT_NPROC is used, which the
/// kernel applies per user (per user namespace when the step is isolated) and never to root; so as
/// root without a cgroup the limit cannot be enforced, and the step does not start.
enum ProcessLimit {
    /// A cgroup whose `cgroup.procs` is open (the child joins it before exec).
    case cgroup(PidsCgroup)
    /// RLIMIT_NPROC of `maximum`, set in the child before exec.
    case rlimit(Int)

    /// Prepares the limit; throws ``SandboxError/limitUnavailable(_:)`` when nothing can enforce it.
    static func prepare(maximum: Int) throws(SandboxError) -> ProcessLimit {
        let failure: PidsCgroup.Failure
        do {
            return .cgroup(try PidsCgroup(maximum: maximum))
        } catch {
            failure = error
        }
        guard geteuid() == 0 else { return .rlimit(maximum) }
        throw .limitUnavailable("""
            limits.processes: \(maximum) cannot be enforced: stepguard runs as root, which RLIMIT_NPROC does not \
            bind, and no pids cgroup could be made (\(failure.reason))
            """)
    }

    /// The RLIMIT_NPROC to set in the child, or 0 for none.
    var rlimitMaximum: Int {
        if case .rlimit(let maximum) = self { maximum } else { 0 }
    }

    /// The open `cgroup.procs` the child joins, or -1 for none.
    var cgroupProcs: Int32 {
        if case .cgroup(let group) = self { group.procs } else { -1 }
    }

    /// What the audit log and the verdict say about the limit.
    var summary: String {
        switch self {
        case .cgroup(let group): "at most \(group.maximum) processes (pids cgroup \(group.directory))"
        case .rlimit: "RLIMIT_NPROC"
        }
    }
}

/// A pids cgroup made for one step, removed once the step's processes are gone.
final class PidsCgroup {
    struct Failure: Error { let reason: String }

    let directory: String
    let maximum: Int
    /// `cgroup.procs` of the new cgroup, open for writing; the child writes "0" to join.
    let procs: Int32

    /// Makes `stepguard-<pid>-<n>` under this process's own pids cgroup and sets `pids.max`.
    init(maximum: Int) throws(Failure) {
        guard let parent = Self.ownPidsCgroup() else {
            throw Failure(reason: "no pids controller is mounted for this process (cgroup v1 `pids`, or v2 with pids delegated)")
        }
        var made: String?
        for attempt in 0..<100 {
            let candidate = "\(parent)/stepguard-\(getpid())-\(attempt)"
            if mkdir(candidate, 0o755) == 0 { made = candidate; break }
            guard errno == EEXIST else { throw Failure(reason: "cannot create \(candidate): \(String(cString: strerror(errno)))") }
        }
        guard let made else { throw Failure(reason: "cannot create a cgroup under \(parent)") }
        guard Self.writeFile("\(maximum)", to: made + "/pids.max") else {
            let reason = String(cString: strerror(errno))
            rmdir(made)
            throw Failure(reason: "cannot set \(made)/pids.max: \(reason)")
        }
        let procs = open(made + "/cgroup.procs", O_WRONLY | O_CLOEXEC)
        guard procs >= 0 else {
            let reason = String(cString: strerror(errno))
            rmdir(made)
            throw Failure(reason: "cannot open \(made)/cgroup.procs: \(reason)")
        }
        self.directory = made
        self.maximum = maximum
        self.procs = procs
    }

    /// Removes the cgroup (it must be empty: call once every process of the step was reaped).
    func remove() {
        close(procs)
        rmdir(directory)
    }

    /// The directory of this process's cgroup in a hierarchy with the pids controller, if it is
    /// mounted: the v1 `pids` hierarchy, else v2 when its controllers include pids.
    static func ownPidsCgroup() -> String? {
        guard let membership = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8),
              let mounts = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return nil }
        // mountinfo: id parent major:minor root mount-point options... - fstype source super-options
        var v1: (root: String, point: String)?
        var v2: (root: String, point: String)?
        for line in mounts.split(separator: "\n") {
            let halves = line.split(separator: " - ", maxSplits: 1)
            guard halves.count == 2 else { continue }
            let fields = halves[0].split(separator: " ")
            let tail = halves[1].split(separator: " ")
            guard fields.count >= 5, tail.count >= 3 else { continue }
            let mount = (root: String(fields[3]), point: String(fields[4]))
            if tail[0] == "cgroup", tail[2].split(separator: ",").contains("pids") { v1 = mount }
            if tail[0] == "cgroup2" { v2 = mount }
        }
        // /proc/self/cgroup: hierarchy-id:controllers:path
        for line in membership.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            let path = String(parts[2])
            if let v1, parts[1].split(separator: ",").contains("pids") {
                return join(mount: v1, path: path)
            }
            if let v2, parts[0] == "0", parts[1].isEmpty, let directory = join(mount: v2, path: path),
               (try? String(contentsOfFile: directory + "/cgroup.subtree_control", encoding: .utf8))?
                   .split(whereSeparator: \.isWhitespace).contains("pids") == true {
                return directory
            }
        }
        return nil
    }

    private static func join(mount: (root: String, point: String), path: String) -> String? {
        guard path.hasPrefix(mount.root) else { return nil }
        let relative = mount.root == "/" ? path : String(path.dropFirst(mount.root.count))
        return relative == "/" || relative.isEmpty ? mount.point : mount.point + relative
    }

    private static func writeFile(_ text: String, to path: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return text.utf8CString.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count - 1) } == text.utf8.count
    }
}
