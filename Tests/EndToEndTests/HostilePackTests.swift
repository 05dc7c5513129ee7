import Foundation
import StepGuardTestSupport
import Testing

/// `scan --history` and `scan --staged` on a repository whose pack was made to hurt the reader:
/// an object that is a delta of a delta of itself (a loop git never writes: its chains end at a
/// whole object). stepguard reads packs itself before asking libgit2, which follows such a loop
/// forever: the scan must end with an error naming the object, never hang.
@Suite struct HostilePackTests {
    /// Packs `f.txt`'s blob as a reference delta whose base is a reference delta back to it (both
    /// in one pack, with a version 2 index), removes the loose blob, and returns the blob's id.
    /// `committed`: the file is committed (after a first commit), else only staged.
    func loopingRepository(_ repo: TemporaryDirectory, committed: Bool) throws -> String {
        try repo.initRepo()
        _ = try repo.write("README", "hello\n")
        try repo.commitAll("init")
        _ = try repo.write("f.txt", "hello\n")
        _ = try repo.git("add", "f.txt")
        if committed { _ = try repo.git("commit", "-qm", "f") }
        let id = try repo.git("rev-parse", ":f.txt").trimmingCharacters(in: .whitespacesAndNewlines)
        let script = try repo.write("loop.py", """
            import hashlib, os, struct, sys, zlib
            git, x = sys.argv[1], bytes.fromhex(sys.argv[2])
            y = hashlib.sha1(b"the other end of the loop").digest()
            os.remove(os.path.join(git, "objects", x.hex()[:2], x.hex()[2:]))
            delta = bytes([6, 6, 6]) + b"hello\\n"   # base size 6, result size 6, insert 6 bytes
            def ref_delta(base): return bytes([0x70 | len(delta)]) + base + zlib.compress(delta)
            body = b"PACK" + struct.pack(">II", 2, 2)
            offsets = {x: len(body)}; body += ref_delta(y)
            offsets[y] = len(body); body += ref_delta(x)
            body += hashlib.sha1(body).digest()
            ids = sorted(offsets)
            idx = b"\\xfftOc" + struct.pack(">I", 2)
            idx += b"".join(struct.pack(">I", sum(1 for i in ids if i[0] <= b)) for b in range(256))
            idx += b"".join(ids) + b"".join(struct.pack(">I", 0) for _ in ids)
            idx += b"".join(struct.pack(">I", offsets[i]) for i in ids) + body[-20:]
            idx += hashlib.sha1(idx).digest()
            name = os.path.join(git, "objects", "pack", "pack-" + body[-20:].hex())
            open(name + ".pack", "wb").write(body)
            open(name + ".idx", "wb").write(idx)
            """)
        let made = try ProgramRun.run("/usr/bin/env", ["python3", script, repo.path(".git"), id], in: repo.url)
        try #require(made.status == 0, "\(made.stderr)")
        try FileManager.default.removeItem(atPath: script)
        return id
    }

    @Test(arguments: ["--history", "--staged"])
    func aDeltaLoopInAPackIsAnErrorNotAHang(_ mode: String) throws {
        let repo = try TemporaryDirectory(); defer { repo.remove() }
        let id = try loopingRepository(repo, committed: mode == "--history")
        // A hang (libgit2 following the loop) ends the run at the timeout, which fails the test.
        let r = try ProgramRun.run(StepGuardBinary.path, ["scan", mode], in: repo.url, timeout: 60)
        #expect(r.status == 2, "\(r.status) \(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains(id), "\(r.stderr)")
    }
}
