import Foundation
import StepGuardTestSupport
import Testing

/// stepguard's code in 2 MiB pages (issue #17): the binary is linked with 2 MiB segment alignment,
/// and installed with 2 MiB writes (as actions/setup and the GitLab component install it) its code is
/// mapped in 2 MiB pages wherever the kernel keeps 2 MiB page-cache folios for the file system;
/// `stepguard doctor` says which.
@Suite struct CodePagesTests {
    /// The PT_LOAD segments of the ELF file at `path`: (file offset, virtual address, alignment).
    static func loadSegments(_ path: String) throws -> [(offset: UInt64, address: UInt64, alignment: UInt64)] {
        let handle = try #require(FileHandle(forReadingAtPath: path))
        defer { try? handle.close() }
        let header = [UInt8](handle.readData(ofLength: 64 * 1024))
        func u64(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(header[at + $1]) << (8 * UInt64($1)) } }
        func u32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(header[at + $1]) << (8 * UInt32($1)) } }
        func u16(_ at: Int) -> Int { Int(header[at]) | Int(header[at + 1]) << 8 }
        try #require(header.starts(with: [0x7F, 0x45, 0x4C, 0x46, 2]), "not a 64-bit ELF file")
        let (table, size, count) = (Int(u64(0x20)), u16(0x36), u16(0x38))
        return (0..<count).map { table + $0 * size }.filter { u32($0) == 1 /* PT_LOAD */ }.map { (u64($0 + 8), u64($0 + 16), u64($0 + 48)) }
    }

    static func fileHugePages() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("FileHugePages:") }) else { return nil }
        return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }.map { $0 * 1024 }
    }

    @Test func theBinaryIsLinkedWithTwoMebibyteSegmentAlignment() throws {
        let segments = try Self.loadSegments(StepGuardBinary.path)
        #expect(segments.count >= 2)
        for segment in segments {
            #expect(segment.alignment == 2 << 20, "PT_LOAD at \(segment.offset) is aligned to \(segment.alignment)")
            #expect(segment.offset % (2 << 20) == segment.address % (2 << 20), "file offset and address disagree modulo 2 MiB")
        }
    }

    @Test func installedWithTwoMebibyteWritesItsCodeIsMappedInTwoMebibytePagesWhereTheKernelCan() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let copy = directory.path + "/stepguard"
        let before = Self.fileHugePages()
        // As the installers copy it: dd bs=2M.
        let dd = try ProgramRun.start("/bin/dd", ["if=\(StepGuardBinary.path)", "of=\(copy)", "bs=2M", "status=none"]).wait()
        try #require(dd.status == 0, "\(dd.stderr)")
        chmod(copy, 0o755)
        let size = try #require(try FileManager.default.attributesOfItem(atPath: copy)[.size] as? Int)
        let doctor = try ProgramRun.start(copy, ["doctor", "--format", "json"]).wait()
        #expect(doctor.status == 0, "\(doctor.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(doctor.stdout.utf8)) as? [String: Any])
        let checks = try #require(object["checks"] as? [[String: Any]])
        let code = try #require(checks.first { ($0["name"] as? String)?.hasPrefix("code in 2 MiB pages") == true })
        // Whether this kernel cached the copy in 2 MiB folios: the machine's count grew by most of it.
        let cachedInFolios = before.flatMap { before in Self.fileHugePages().map { $0 - before >= size / 2 } } ?? false
        if cachedInFolios {
            #expect(code["status"] as? String == "ok", "\(code)")
            #expect((code["detail"] as? String)?.contains("MiB of code this process maps") == true, "\(code)")
        } else {
            // A kernel without large folios for this file system: the line says so, with a remedy.
            #expect(["ok", "limited"].contains(code["status"] as? String ?? ""), "\(code)")
            if code["status"] as? String == "limited" { #expect(code["remedy"] != nil, "\(code)") }
        }
        // The copy runs a step like the original.
        let run = try ProgramRun.start(copy, ["run", "--", "/bin/true"]).wait()
        #expect(run.status == 0, "\(run.stderr)")
    }
}
