import Foundation
import StepGuardTestSupport
import Testing

/// `limits.processes` caps how many processes the step and its descendants have at once, also when
/// stepguard runs as root (the CI case), where RLIMIT_NPROC would not bind: a pids cgroup does.
@Suite struct ProcessLimitTests {
    /// A step that starts `count` sleeping children and prints how many it could start.
    static func forker(_ count: Int) -> [String] {
        let script = """
            import subprocess
            started = []
            for _ in range(\(count)):
                try:
                    started.append(subprocess.Popen(["sleep", "5"]))
                except OSError:
                    pass
            print(len(started))
            for p in started:
                p.kill()
                p.wait()
            """
        return ["python3", "-c", script]
    }

    @Test(arguments: ["off", "required"])
    func theStepCannotExceedTheLimit(isolation: String) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let policy = try directory.write("limited.yaml", "version: 1\nisolation: \(isolation)\nlimits: { processes: 6 }\n")
        let log = directory.path + "/audit.jsonl"
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--audit-log", log, "--"] + Self.forker(20))
        #expect(run.status == 0, "stderr: \(run.stderr)")
        // python itself counts against the limit: at most 5 of the 20 children can start.
        let started = try #require(Int(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(started >= 1 && started <= 5, "started \(started) children under a limit of 6")
        let audit = try String(contentsOfFile: log, encoding: .utf8)
        #expect(audit.contains("\"process_limit\""))
        if getuid() == 0 {
            #expect(audit.contains("pids cgroup"), "as root the limit must come from a cgroup: \(audit)")
        }
    }

    @Test func withoutALimitTheSameStepStartsEveryChild() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let policy = try directory.write("free.yaml", "version: 1\nisolation: off\n")
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--"] + Self.forker(20))
        #expect(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "20")
    }

    @Test func theCgroupIsRemovedAfterTheStep() throws {
        guard getuid() == 0, FileManager.default.fileExists(atPath: "/sys/fs/cgroup/pids/cgroup.procs") else { return }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let policy = try directory.write("limited.yaml", "version: 1\nisolation: off\nlimits: { processes: 4 }\n")
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--", "sh", "-c", "cat /proc/self/cgroup"])
        let line = try #require(run.stdout.split(separator: "\n").first { $0.contains(":pids:") })
        let path = String(line.split(separator: ":", maxSplits: 2)[2])
        #expect(path.contains("/stepguard-"))
        #expect(!FileManager.default.fileExists(atPath: "/sys/fs/cgroup/pids" + path))
    }

    @Test func asRootWithoutAPidsCgroupNothingRuns() throws {
        guard getuid() == 0, FileManager.default.fileExists(atPath: "/sys/fs/cgroup/pids/cgroup.procs") else { return }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let policy = try directory.write("limited.yaml", "version: 1\nisolation: off\nlimits: { processes: 6 }\n")
        let marker = directory.path + "/ran"
        // A private mount namespace without the pids hierarchy stands in for a machine without one.
        let binary = StepGuardBinary.path
        let run = try ProgramRun.start("/usr/bin/unshare", ["-m", "sh", "-c",
            "umount /sys/fs/cgroup/pids && exec \"$0\" run --policy \"$1\" -- touch \"$2\"", binary, policy, marker]).wait()
        #expect(run.status == 69, "stderr: \(run.stderr)")
        #expect(run.stderr.contains("limits.processes: 6 cannot be enforced"))
        #expect(!FileManager.default.fileExists(atPath: marker))
    }
}
