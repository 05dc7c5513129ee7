/// The keywords of the rules prefiltered by keyword, indexed by their first byte: one pass over a
/// buffer finds every such rule one of whose keywords it contains (ASCII case-insensitive).
///
/// `run` classifies every variable of the step's environment in up to three case forms before
/// the step starts, and each request header in flight: searching each of ~180 keywords through
/// the value one after the other cost ~30 µs a variable, ~3 ms for a CI job's hundred variables
/// (issue #17's start-up). Here each position of the buffer is compared only with the keywords
/// that start with its byte.
struct KeywordIndex: Sendable {
    /// A keyword (lower-cased bytes) and the rule it belongs to.
    private struct Entry: Sendable {
        let rule: Int
        let keyword: [UInt8]
    }
    /// Every keyword, grouped by first byte.
    private let entries: [Entry]
    /// For each byte value, the range of `entries` whose keywords start with it (empty for most).
    private let byFirstByte: [Range<Int>]
    /// Rules prefiltered by keyword that have none: they always run.
    let rulesWithoutKeywords: [Int]
    /// One bit per pair of bytes (lower-cased) that starts a keyword, or whose first byte is a
    /// one-byte keyword: most positions of a buffer start no keyword, and this tells so with one
    /// load instead of comparing every keyword that starts with the byte.
    private let startingPairs: [UInt64]

    /// `keywords(rule)` are the lower-cased keywords of each rule in `rules`.
    init(rules: [Int], keywords: (Int) -> [[UInt8]]) {
        var grouped = [[Entry]](repeating: [], count: 256)
        var without: [Int] = []
        for rule in rules {
            let words = keywords(rule)
            // No keyword, or an empty one (which every buffer contains): the rule always runs.
            guard !words.isEmpty, !words.contains(where: { $0.isEmpty }) else {  // a closure: a key path is looked up at run time
                without.append(rule)
                continue
            }
            for word in words { grouped[Int(word[0])].append(Entry(rule: rule, keyword: word)) }
        }
        var entries: [Entry] = []
        var ranges: [Range<Int>] = []
        for group in grouped {
            ranges.append(entries.count..<(entries.count + group.count))
            entries += group
        }
        self.entries = entries
        byFirstByte = ranges
        rulesWithoutKeywords = without
        var pairs = [UInt64](repeating: 0, count: 65536 / 64)
        for entry in entries {
            let first = Int(entry.keyword[0]) << 8
            if entry.keyword.count >= 2 {
                let pair = first | Int(entry.keyword[1])
                pairs[pair >> 6] |= 1 << UInt64(pair & 63)
            } else {
                for word in (first >> 6)..<((first + 256) >> 6) { pairs[word] = ~0 }  // any second byte
            }
        }
        startingPairs = pairs
    }

    /// Whether a keyword may start at `index` of `bytes` (its first two bytes, lower-cased, start one).
    @inline(__always)
    private static func mayStart(_ pairs: UnsafeBufferPointer<UInt64>, _ bytes: UnsafeRawBufferPointer, at index: Int) -> Bool {
        let second = index + 1 < bytes.count ? lower(bytes[index + 1]) : 0
        let pair = Int(lower(bytes[index])) << 8 | Int(second)
        return pairs[pair >> 6] & (1 << UInt64(pair & 63)) != 0
    }

    /// Marks in `hits` every indexed rule one of whose keywords `bytes` contains, ignoring ASCII case.
    func markRules(in bytes: UnsafeRawBufferPointer, hits: inout [Bool]) {
        for rule in rulesWithoutKeywords { hits[rule] = true }
        guard !entries.isEmpty else { return }
        entries.withUnsafeBufferPointer { entries in
            byFirstByte.withUnsafeBufferPointer { byFirstByte in startingPairs.withUnsafeBufferPointer { pairs in
                for index in 0..<bytes.count where Self.mayStart(pairs, bytes, at: index) {
                    for entry in entries[byFirstByte[Int(Self.lower(bytes[index]))]] where !hits[entry.rule] && Self.matches(entry.keyword, in: bytes, at: index) {
                        hits[entry.rule] = true
                    }
                }
            } }
        }
    }

    private static func matches(_ keyword: [UInt8], in bytes: UnsafeRawBufferPointer, at start: Int) -> Bool {
        guard bytes.count - start >= keyword.count else { return false }
        var offset = 1
        while offset < keyword.count {
            guard lower(bytes[start + offset]) == keyword[offset] else { return false }
            offset += 1
        }
        return true
    }

    @inline(__always)
    private static func lower(_ byte: UInt8) -> UInt8 { (byte >= 65 && byte <= 90) ? byte + 32 : byte }
}
