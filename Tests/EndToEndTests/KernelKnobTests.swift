import Foundation
import StepGuardTestSupport
import Testing

/// A root step is mapped to the host's root, and the kernel checks writes to /proc/sys and sysfs
/// by uid, not by capability: without read-only mounts an isolated root step could set
/// kernel.core_pattern or kernel.modprobe and have the kernel run its program as real root outside
/// every namespace. These steps try, but only ever open for writing and close: a write that got
/// through would change the host (never write a value here, not even one expected to fail).
@Suite struct KernelKnobTests {
    /// The hostile step: opens each knob that exists for writing (and closes it), then tries to
    /// undo the read-only mounts. One line per attempt: "what: OPENED" or "what: refused: reason".
    static let hostile = #"""
        import ctypes, glob, os, shutil, tempfile
        libc = ctypes.CDLL(None, use_errno=True)
        def attempt(what, result):
            print(f"{what}: " + ("OPENED" if result == 0 else "refused: " + os.strerror(ctypes.get_errno())), flush=True)
        def open_for_writing(path):
            if not os.path.lexists(path):
                print(f"{path}: absent", flush=True); return
            try:
                os.close(os.open(path, os.O_WRONLY)); print(f"{path}: OPENED", flush=True)
            except OSError as error:
                print(f"{path}: refused: {error.strerror}", flush=True)
        knobs = ["/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe", "/proc/sys/kernel/panic",
                 "/proc/sys/vm/drop_caches", "/proc/sysrq-trigger", "/proc/irq/default_smp_affinity",
                 "/proc/sys/fs/binfmt_misc/register", "/sys/kernel/mm/transparent_hugepage/enabled",
                 "/sys/kernel/uevent_helper"]
        knobs += sorted(glob.glob("/proc/bus/pci/*/*"))[:1] + sorted(glob.glob("/sys/module/*/parameters/*"))[:1]
        for knob in knobs: open_for_writing(knob)
        MS_BIND, MS_REMOUNT, MNT_DETACH = 4096, 32, 2
        attempt("remount /proc/sys read-write", libc.mount(None, b"/proc/sys", None, MS_BIND | MS_REMOUNT, None))
        attempt("unmount /proc/sys", libc.umount2(b"/proc/sys", MNT_DETACH))
        attempt("unmount /sys", libc.umount2(b"/sys", MNT_DETACH))
        scratch = tempfile.mkdtemp()
        libc.mount(b"tmpfs", scratch.encode(), b"tmpfs", 0, None)  # a place to mount on; its own success is no escape
        for name in ("proc", "sys"): os.makedirs(f"{scratch}/{name}", exist_ok=True)
        if libc.mount(b"proc", f"{scratch}/proc".encode(), b"proc", 0, None) == 0:
            open_for_writing(f"{scratch}/proc/sys/kernel/core_pattern")
        else:
            attempt("mount a fresh proc", -1)
        if libc.mount(b"sysfs", f"{scratch}/sys".encode(), b"sysfs", 0, None) == 0:
            open_for_writing(f"{scratch}/sys/kernel/mm/transparent_hugepage/enabled")
        else:
            attempt("mount a fresh sysfs", -1)
        libc.umount2(f"{scratch}/proc".encode(), MNT_DETACH); libc.umount2(f"{scratch}/sys".encode(), MNT_DETACH)
        libc.umount2(scratch.encode(), MNT_DETACH); shutil.rmtree(scratch)
        """#

    static func lines(_ output: String) -> [String] { output.split(separator: "\n").map(String.init) }

    @Test func aRootStepCannotOpenTheKernelsGlobalKnobsForWritingNorUndoTheReadOnlyMounts() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let policy = try directory.write("policy.yaml", "version: 1\nisolation: required\n", mode: 0o644)
        let script = try directory.write("hostile.py", Self.hostile, mode: 0o644)
        var runs = [("root", try StepGuardBinary.run(["run", "--policy", policy, "--", "python3", script]))]
        if getuid() == 0 {
            chmod(directory.path, 0o755)
            let environment = TestEnvironment.with(["HOME": directory.path])
            runs.append(("nobody", try StepGuardBinary.runAsNobody(["run", "--policy", policy, "--", "python3", script], environment: environment)))
        }
        for (user, run) in runs {
            let lines = Self.lines(run.stdout)
            #expect(run.status == 0, "\(user): stderr: \(run.stderr)")
            #expect(lines.contains { $0.hasPrefix("/proc/sys/kernel/core_pattern: refused: ") }, "\(user): \(run.stdout)")
            #expect(lines.contains { $0.hasPrefix("remount /proc/sys read-write: refused: ") }, "\(user): \(run.stdout)")
            #expect(lines.contains { $0.hasPrefix("unmount /proc/sys: refused: ") }, "\(user): \(run.stdout)")
            #expect(lines.contains { $0.hasPrefix("unmount /sys: refused: ") }, "\(user): \(run.stdout)")
            #expect(lines.count >= 14, "\(user): the step stopped early: \(run.stdout) \(run.stderr)")
            #expect(!lines.contains { $0.hasSuffix(": OPENED") }, "\(user): \(run.stdout)")
        }
    }

    @Test func aStepStillReadsProcSysAndSys() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let policy = try directory.write("policy.yaml", "version: 1\nisolation: required\n", mode: 0o644)
        let step = "cat /proc/sys/kernel/hostname; ls /sys/class/net"
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--", "sh", "-c", step])
        let lines = Self.lines(run.stdout)
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(lines.first.map { !$0.isEmpty } == true, "stdout: \(run.stdout)")
        #expect(lines.contains("lo"), "stdout: \(run.stdout)")
    }
}
