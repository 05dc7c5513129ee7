import Foundation
import StepGuardTestSupport
import Testing

/// openat2 with O_CREAT | O_EXCL onto a hidden file fails with EEXIST before anything is opened,
/// like open and openat with those flags (which trip), but its flags are in a structure (`struct
/// open_how`) the names filter cannot read, and ff6aef6 let it pass unseen. Every openat2 is now
/// sent, and the listener reads the flags: an exclusive create onto a hidden name trips, an
/// openat2 of an ordinary name does not.
extension TripwireTests {
    /// A Python statement list that calls openat2(AT_FDCWD, `path`, {`flags`, 0600 when creating})
    /// and prints `result errno`.
    static func openat2(_ path: String, flags: String) -> String {
        """
        import ctypes, os, struct
        libc = ctypes.CDLL(None, use_errno=True)
        flags = \(flags)
        how = ctypes.create_string_buffer(struct.pack("QQQ", flags, 0o600 if flags & os.O_CREAT else 0, 0), 24)
        r = libc.syscall(ctypes.c_long(437), ctypes.c_long(-100), ctypes.c_char_p(os.path.expanduser("\(path)").encode()), how, ctypes.c_long(24))
        print(r, ctypes.get_errno() if r < 0 else 0)
        """
    }

    @Test(arguments: [false, true])
    func anExclusiveCreateThroughOpenat2Trips(asNobody: Bool) throws {
        defer { directory.remove() }
        let log = directory.path("audit-\(asNobody).jsonl")
        let step = Self.openat2("~/.npmrc", flags: "os.O_WRONLY | os.O_CREAT | os.O_EXCL")
        guard let result = try run(["--policy", try policy("isolation: required\non_violation: fail\n"), "--audit-log", log,
                                    "--", "python3", "-c", step], asNobody: asNobody) else { return }
        #expect(result.status == 77, "\(result.stdout) \(result.stderr)")
        #expect(result.stdout == "-1 17\n", "refused by the kernel (EEXIST) all the same: \(result.stdout)")
        let denied = try tripwireEvents(log).filter { $0["decision"] as? String == "deny" }
        #expect(denied.contains { $0["operation"] as? String == "create" && $0["path"] as? String == "\(home)/.npmrc" }, "\(denied)")
        #expect(try String(contentsOfFile: "\(home)/.npmrc", encoding: .utf8) == "\(marker)\n")
    }

    /// openat2 of ordinary names — an exclusive create of a new file, a plain open of an existing
    /// one — goes ahead and trips nothing.
    @Test func openat2OfOrdinaryNamesTripsNothing() throws {
        defer { directory.remove() }
        let log = directory.path("audit.jsonl")
        let fresh = directory.path("fresh-\(UUID().uuidString.prefix(8))")
        let step = Self.openat2(fresh, flags: "os.O_WRONLY | os.O_CREAT | os.O_EXCL") + "\n" + Self.openat2("~/notes.txt", flags: "os.O_RDONLY")
        guard let result = try run(["--policy", try policy("isolation: required\non_violation: fail\n"), "--audit-log", log,
                                    "--", "python3", "-c", step]) else { return }
        #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.count == 2 && lines.allSatisfy { !$0.hasPrefix("-") && $0.hasSuffix(" 0") }, "\(result.stdout)")
        #expect(FileManager.default.fileExists(atPath: fresh))
        #expect(try tripwireEvents(log).filter { $0["decision"] as? String == "deny" }.isEmpty)
    }
}
