import CSandbox
import FoundationEssentials
import Glibc

/// How stepguard's own code is mapped (start-up, issue #17): in 2 MiB pages where the kernel can,
/// which spares every run thousands of page faults and iTLB misses (see textpages.h).
public enum ExecutableCode {
    /// Collapses stepguard's code into 2 MiB page-cache folios where the kernel can do it on request
    /// (milliseconds once per machine, microseconds after). Best effort: whether it did.
    @discardableResult
    public static func collapseIntoHugePages() -> Bool {
        sg_text_collapse_huge_pages() == 0
    }

    /// How much of stepguard's code this process maps, and how much of it in 2 MiB pages, from
    /// /proc/self/smaps; nil when that cannot be read.
    public static func mapping() -> (mapped: Int, inHugePages: Int)? {
        var start: UnsafeMutableRawPointer?
        var length = 0
        guard sg_text_range(&start, &length) == 0, let start,
              let smaps = FileManager.default.contents(atPath: "/proc/self/smaps") else { return nil }
        return mapping(in: String(decoding: smaps, as: UTF8.self), containing: UInt(bitPattern: start))
    }

    /// The `Rss` and `FilePmdMapped` (in bytes) of the mapping in `smaps` whose range holds `address`.
    static func mapping(in smaps: String, containing address: UInt) -> (mapped: Int, inHugePages: Int)? {
        var inside = false
        var rss: Int?
        for line in smaps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let first = fields.first else { continue }
            if let dash = first.firstIndex(of: "-"), !first.hasSuffix(":"),
               let low = UInt(first[..<dash], radix: 16), let high = UInt(first[first.index(after: dash)...], radix: 16) {
                if inside { return nil }  // the mapping ended without FilePmdMapped
                inside = low <= address && address < high
                continue
            }
            guard inside, fields.count >= 2, let kilobytes = Int(fields[1]) else { continue }
            if first == "Rss:" { rss = kilobytes * 1024 }
            if first == "FilePmdMapped:", let rss { return (rss, kilobytes * 1024) }
        }
        return nil
    }
}
