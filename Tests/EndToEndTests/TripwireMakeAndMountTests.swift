import Foundation
import StepGuardTestSupport
import Testing

/// Names the kernel refuses before inotify sees anything: `mkdir`, `mknod`, `symlink` and an
/// exclusive `open` (O_CREAT | O_EXCL) onto a hidden name (EEXIST), and `mount`, `umount`, `move_mount`, `open_tree`, `fspick` and
/// `mount_setattr` aimed at one (refused, or allowed but powerless: the covers are locked
/// mounts, so they cannot be unmounted nor left behind by a bind). Each trips through the
/// names filter, in every form and through the x86-64, x32 and i386 entries.
extension TripwireTests {
    /// Builds `rawcall ABI NR ARG…`: makes system call NR through the `64`, `x32` or `i386` entry;
    /// an ARG `s:TEXT` is a string (placed below 4 GiB, so that the 32-bit entries can take it),
    /// any other a number (`-100`: AT_FDCWD). Prints `result errno`.
    func rawCall() throws -> String {
        let compiler = try #require(["/usr/bin/cc", "/usr/bin/clang", "/usr/bin/gcc"].first { FileManager.default.isExecutableFile(atPath: $0) },
                                    "no C compiler")
        let source = try directory.write("rawcall.c", """
            #include <errno.h>
            #include <stdio.h>
            #include <stdlib.h>
            #include <string.h>
            #include <sys/mman.h>
            #include <unistd.h>
            int main(int argc, char **argv) {
                if (argc < 3 || argc > 8) return 64;
                char *low = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
                if (low == MAP_FAILED) return 65;
                unsigned long args[5] = { 0, 0, 0, 0, 0 };
                for (int i = 3; i < argc; i++) {
                    if (strncmp(argv[i], "s:", 2) == 0) {
                        char *slot = low + 4096 * (i - 3);
                        strncpy(slot, argv[i] + 2, 4095);
                        args[i - 3] = (unsigned long)slot;
                    } else {
                        args[i - 3] = (unsigned long)strtol(argv[i], NULL, 0);
                    }
                }
                long nr = strtol(argv[2], NULL, 0), result;
                if (strcmp(argv[1], "i386") == 0) {
                    __asm__ volatile ("int $0x80" : "=a"(result)
                                      : "a"(nr), "b"((unsigned)args[0]), "c"((unsigned)args[1]), "d"((unsigned)args[2]),
                                        "S"((unsigned)args[3]), "D"((unsigned)args[4]) : "memory");
                    printf("%ld %d\\n", result < 0 ? -1L : result, result < 0 ? (int)-result : 0);
                } else {
                    if (strcmp(argv[1], "x32") == 0) nr |= 0x40000000;
                    result = syscall(nr, args[0], args[1], args[2], args[3], args[4]);
                    printf("%ld %d\\n", result, result < 0 ? errno : 0);
                }
                return 0;
            }
            """, mode: 0o644)
        let program = directory.path("rawcall")
        let build = try ProgramRun.start(compiler, ["-O1", "-o", program, source]).wait()
        try #require(build.status == 0, "\(build.stderr)")
        chmod(program, 0o755)
        return program
    }

    /// The system call numbers of each entry (x32's are x86-64's with bit 30 set), and the
    /// arguments of each call aimed at `target` (strings `s:`).
    static func call(_ name: String, abi: String, target: String) -> [String] {
        let x86_64 = ["open": 2, "openat": 257, "mkdir": 83, "mkdirat": 258, "mknod": 133, "mknodat": 259, "symlink": 88, "symlinkat": 266, "mount": 165, "umount2": 166,
                      "open_tree": 428, "move_mount": 429, "fspick": 433, "mount_setattr": 442]
        let i386 = ["open": 5, "openat": 295, "mkdir": 39, "mkdirat": 296, "mknod": 14, "mknodat": 297, "symlink": 83, "symlinkat": 304, "mount": 21, "umount2": 52,
                    "umount": 22, "open_tree": 428, "move_mount": 429, "fspick": 433, "mount_setattr": 442]
        let number = abi == "i386" ? i386[name]! : x86_64[name]!
        let path = "s:" + target
        let arguments: [String] = switch name {
        case "open": [path, "0301", "0600"]  // O_WRONLY | O_CREAT | O_EXCL
        case "openat": ["-100", path, "0301", "0600"]
        case "mkdir": [path, "0755"]
        case "mkdirat": ["-100", path, "0755"]
        case "mknod": [path, "0010600", "0"]  // S_IFIFO | 0600
        case "mknodat": ["-100", path, "0010600", "0"]
        case "symlink": ["s:/tmp/elsewhere", path]
        case "symlinkat": ["s:/tmp/elsewhere", "-100", path]
        case "mount": ["s:/tmp", path, "0", "4096", "0"]  // MS_BIND
        case "umount2", "umount": [path, "0"]
        case "open_tree": ["-100", path, "1"]  // OPEN_TREE_CLONE
        case "move_mount": ["-100", "s:/tmp", "-100", path, "0"]
        case "fspick": ["-100", path, "0"]
        default: ["-100", path, "0", "0", "0"]  // mount_setattr
        }
        return [abi, String(number)] + arguments
    }

    /// Every form of an exclusive create (open with O_CREAT | O_EXCL), mkdir, mknod and symlink onto
    /// a hidden file, and of every mount call aimed at a hidden directory, through each entry: the
    /// kernel refuses the first four (EEXIST) before inotify sees anything, and each trips, as root
    /// in the step's namespace and (x86-64) as nobody. On fa2aaa3 none of them did.
    @Test(arguments: [
        ("open", "create"), ("openat", "create"), ("mkdir", "create"), ("mkdirat", "create"), ("mknod", "create"), ("mknodat", "create"), ("symlink", "create"), ("symlinkat", "create"),
        ("mount", "mount"), ("umount2", "unmount"), ("open_tree", "mount"), ("move_mount", "mount"), ("fspick", "mount"), ("mount_setattr", "mount"),
        ("umount", "unmount"),
    ], [("64", false), ("x32", false), ("i386", false), ("64", true)])
    func makingOrMountingAtAHiddenNameTripsThroughEveryEntry(call: (name: String, operation: String), entry: (abi: String, asNobody: Bool)) throws {
        defer { directory.remove() }
        let abi = entry.abi
        guard call.name != "umount" || abi == "i386" else { return }  // umount(name) is i386's only
        let program = try rawCall()
        let target = call.operation == "create" ? "\(home)/.npmrc" : "\(home)/.aws"
        let log = directory.path("audit.jsonl")
        guard let result = try run(["--policy", try policy("isolation: required\non_violation: fail\n"), "--audit-log", log, "--", program]
                                   + Self.call(call.name, abi: abi, target: target), asNobody: entry.asNobody) else { return }
        #expect(result.status == 77, "\(call.name) (\(abi)): \(result.stdout) \(result.stderr)")
        // mkdir, mknod and symlink are refused (EEXIST); a mount call may not be: root in the step's
        // namespace may clone (open_tree) or pick (fspick) the cover's mount — it trips all the same.
        // (A kernel built without the x32 ABI answers ENOSYS to x32 numbers, after the filter has seen them.)
        if call.operation == "create" {
            #expect(result.stdout == "-1 17\n" || (abi == "x32" && result.stdout == "-1 38\n"), "refused by the kernel (EEXIST) all the same: \(result.stdout)")
        }
        let denied = try tripwireEvents(log).filter { $0["decision"] as? String == "deny" }
        #expect(denied.contains { $0["operation"] as? String == call.operation && $0["path"] as? String == target }, "\(call.name) (\(abi)): \(denied)")
        #expect((denied.first?["process"] as? String)?.hasSuffix(" rawcall") == true, "\(denied)")
        #expect(try String(contentsOfFile: "\(home)/.npmrc", encoding: .utf8) == "\(marker)\n")
    }

    /// mkdir, an exclusive create, mkfifo (mknod), symlink onto a hidden name and a bind mount over a hidden directory
    /// kill the step within 100 ms, as root in its namespace and as nobody.
    @Test(arguments: [(#"os.mkdir(os.path.expanduser("~/.aws"))"#, "create", "/.aws"),
                      (#"os.open(os.path.expanduser("~/.npmrc"), os.O_WRONLY | os.O_CREAT | os.O_EXCL)"#, "create", "/.npmrc"),
                      (#"os.mkfifo(os.path.expanduser("~/.npmrc"))"#, "create", "/.npmrc"),
                      (#"os.symlink("/tmp", os.path.expanduser("~/.npmrc"))"#, "create", "/.npmrc"),
                      (#"import ctypes; ctypes.CDLL(None, use_errno=True).mount(b"/tmp", os.path.expanduser("~/.aws").encode(), None, 4096, None)"#,
                       "mount", "/.aws")],
          [false, true])
    func makingOrMountingAtAHiddenNameKillsTheStepWithin100ms(attempt: (action: String, operation: String, path: String), asNobody: Bool) throws {
        defer { directory.remove() }
        try expectKilledWithin100ms(after: attempt.action, operation: attempt.operation, path: home + attempt.path, asNobody: asNobody)
    }

    /// The step can make a user and mount namespace of its own and mount there, as root in the
    /// step's namespace and as nobody: a mount over a hidden directory, or unmounting its cover
    /// there, trips all the same (the cover there is the same file system and inode). Unmounting the cover to see what is under it is refused by
    /// the kernel (the covers are locked in a namespace the step makes), and a non-recursive bind
    /// of $HOME, which would leave the covers behind, is refused too: the stores stay unseen.
    @Test(arguments: [("unshare -Urm sh -c 'd=$(mktemp -d) && mount --bind $d ~/.aws && ls -A ~/.aws && echo mounted'", "mount", "/.aws", "mounted\n"),
                      ("unshare -Urm sh -c 'umount -l ~/.aws || echo refused'", "unmount", "/.aws", "refused\n"),
                      ("unshare -Urm sh -c 'd=$(mktemp -d) && mount --bind ~ $d && cat $d/.aws/credentials $d/.npmrc; echo done'", nil, nil, "done\n")],
          [false, true])
    func aMountNamespaceOfTheStepsOwnUncoversNothing(attempt: (command: String, operation: String?, path: String?, output: String), asNobody: Bool) throws {
        defer { directory.remove() }
        let log = directory.path("audit-\(asNobody).jsonl")
        guard let result = try run(["--policy", try policy("isolation: required\non_violation: fail\n"), "--audit-log", log,
                                    "--", "sh", "-c", attempt.command], asNobody: asNobody) else { return }
        #expect(!result.stdout.contains(marker) && !result.stderr.contains(marker), "a hidden store was read: \(result.stdout)")
        #expect(result.stdout == attempt.output, "\(attempt.command): \(result.stdout) \(result.stderr)")
        let denied = try tripwireEvents(log).filter { $0["decision"] as? String == "deny" }
        if let operation = attempt.operation, let path = attempt.path {
            #expect(result.status == 77, "\(result.stderr)")
            #expect(denied.contains { $0["operation"] as? String == operation && $0["path"] as? String == home + path }, "\(denied)")
        } else {
            #expect(result.status == 0, "\(result.stderr)")
            #expect(denied.isEmpty, "\(denied)")
        }
    }

    /// io_uring makes name calls inside the kernel (IORING_OP_MKDIRAT, UNLINKAT, RENAMEAT, LINKAT,
    /// SYMLINKAT), out of the names filter's sight: on fa2aaa3 a step's unlink, rename, mkdir or
    /// symlink of a hidden path through a ring tripped nothing. Under the filter io_uring does not exist: setting
    /// up a ring fails with ENOSYS through every entry, as root in the namespace and as nobody.
    @Test(arguments: [("64", false), ("x32", false), ("i386", false), ("64", true)])
    func ioUringIsNotAvailableToAStepWithTripwires(abi: String, asNobody: Bool) throws {
        defer { directory.remove() }
        let program = try rawCall()
        // io_uring_setup(4, params): params is a zeroed page (the empty string's slot).
        guard let result = try run(["--policy", try policy("isolation: required\non_violation: fail\n"), "--", program, abi, "425", "4", "s:"],
                                   asNobody: asNobody) else { return }
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "-1 38\n", "io_uring_setup through \(abi): \(result.stdout)")
    }

    /// Making a symbolic link that points into a hidden path is not an access (the target is a
    /// string nothing resolves): it trips nothing; following it opens what it points to, and trips
    /// (touchingAStoreInAnyWayTrips: `ln -s ~/.aws/config $link && cat $link`).
    @Test func aSymbolicLinkPointingIntoAStoreTripsOnlyWhenFollowed() throws {
        defer { directory.remove() }
        let log = directory.path("audit.jsonl")
        let made = try #require(try run(["--policy", try policy("isolation: required\non_violation: fail\n"), "--audit-log", log,
                                         "--", "sh", "-c", "link=$(mktemp -u) && ln -s ~/.aws/credentials $link && readlink $link && rm $link"]))
        #expect(made.status == 0, "\(made.stderr)")
        #expect(made.stdout == "\(home)/.aws/credentials\n")
        #expect(try tripwireEvents(log).filter { $0["decision"] as? String == "deny" }.isEmpty)
    }
}
