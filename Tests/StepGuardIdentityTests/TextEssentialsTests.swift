import Foundation
import StepGuardCore
import Testing

/// The StepGuardCore helpers that replace Foundation-only APIs (Sources/ imports only
/// FoundationEssentials) give what Foundation gives, checked here against Foundation itself.
@Suite struct TextEssentialsTests {
    static let samples = [
        "", " ", "\t a b \t", "\n\r\n x \u{85}\u{2028}", "\u{3000}wide\u{00A0}", "\u{FEFF}bom", "a\r\nb\nc\rd", "100%", "%41%42",
        "%zz", "%4", "%C3%A9", "%FF", "e\u{301}x", "😀 %25 ::,,", "--a--", "'\"quoted\"'", "x\u{0}y", "ß\u{301}",
    ]

    @Test(arguments: samples)
    func trimmingMatchesFoundation(_ text: String) {
        #expect(text.trimmingWhitespace() == text.trimmingCharacters(in: .whitespaces))
        #expect(text.trimmingWhitespaceAndNewlines() == text.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(text.trimming(charactersIn: "-'\"") == text.trimmingCharacters(in: CharacterSet(charactersIn: "-'\"")))
    }

    @Test(arguments: samples)
    func replacingAndSearchingMatchFoundation(_ text: String) {
        for (target, replacement) in [("%", "%25"), ("\r", "%0D"), ("\n", "%0A"), (":", "%3A"), ("-", "_"), ("x", "")] {
            #expect(text.replacingAll(target, with: replacement) == text.replacingOccurrences(of: target, with: replacement))
        }
        for needle in ["%", "\n", "a", "%4", "--"] {
            let mine = text.scalarRange(of: needle).map { text.unicodeScalars.distance(from: text.startIndex, to: $0.lowerBound) }
            let theirs = text.range(of: needle, options: .literal).map { text.unicodeScalars.distance(from: text.startIndex, to: $0.lowerBound) }
            #expect(mine == theirs, "\(needle)")
            let mineLast = text.scalarRange(of: needle, backwards: true).map { text.unicodeScalars.distance(from: text.startIndex, to: $0.lowerBound) }
            let theirsLast = text.range(of: needle, options: [.literal, .backwards]).map { text.unicodeScalars.distance(from: text.startIndex, to: $0.lowerBound) }
            #expect(mineLast == theirsLast, "\(needle) backwards")
        }
        #expect("a ToJson(x)".scalarRange(of: "tojson", caseInsensitive: true).map { String("a ToJson(x)"[$0]) } == "ToJson")
    }

    @Test(arguments: samples)
    func percentCodingMatchesFoundation(_ text: String) {
        // Foundation drops a leading byte-order mark while decoding; percentDecoded keeps every scalar.
        #expect(text.percentDecoded == (text.hasPrefix("\u{FEFF}") ? text : text.removingPercentEncoding))
        var allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        allowed.insert(charactersIn: "-._~")
        #expect(text.percentEncoded(allowing: "-._~") == text.addingPercentEncoding(withAllowedCharacters: allowed))
    }

    @Test(arguments: ["e\u{301}xample.test", "Ａｂｃ", "\u{1100}\u{1161}\u{11A8}", "a\u{323}\u{307}", "\u{212B}", "ﬁ"])
    func compositionMatchesFoundation(_ text: String) {
        #expect(text.canonicallyComposed == text.precomposedStringWithCanonicalMapping)
    }

    /// Where they differ is only in repeated slashes (Foundation on Linux writes `a` + `/d` as `a//d`
    /// and takes `//` as empty; FilePaths writes `a/d` and `/`): the same files.
    @Test(arguments: ["/", "a", "/a", "a/b", "/a/b/", "a//b", "./x"])  // not "": Foundation on Linux crashes on it
    func pathsMatchNSString(_ path: String) {
        #expect(FilePaths.lastComponent(path) == (path as NSString).lastPathComponent)
        #expect(FilePaths.appending("/d", to: path) == FilePaths.appending("d", to: path))
        for component in ["c", ".github/workflows"] {
            #expect(FilePaths.appending(component, to: path) == (path as NSString).appendingPathComponent(component), "\(path) + \(component)")
        }
    }

    /// NSString's documented examples (Foundation on Linux crashes on some of them, so they are not
    /// computed by it here).
    @Test func deletingLastComponentAsNSStringDocumentsIt() {
        let examples = ["/tmp/scratch.tiff": "/tmp", "/tmp/lock/": "/tmp", "/tmp/": "/", "/tmp": "/", "/": "/", "scratch.tiff": ""]
        for (path, parent) in examples { #expect(FilePaths.deletingLastComponent(path) == parent, "\(path)") }
    }

    @Test func numbersMatchStringFormat() {
        for value: UInt32 in [0, 0x1f, 0x7f, 0x2028, 0xffff] { #expect(Hex.padded(value, width: 4) == String(format: "%04x", value)) }
        #expect(Hex.string([0, 1, 0xab, 0xff]) == "0001abff")
        for value in [0.05, 0.15, 0.25, 1.25, 2.5, 12.34, 59.95, 0.0, 3599.9] {
            #expect(fixedDecimal(value, fractionDigits: 1) == String(format: "%.1f", value), "\(value)")
        }
    }

    @Test func walkDirectoryVisitsLikeTheEnumerator() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("walk-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        for path in ["a/b/c.txt", "a/skip/d.txt", "e.txt"] {
            try FileManager.default.createDirectory(atPath: root + "/" + (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            _ = FileManager.default.createFile(atPath: root + "/" + path, contents: Data())
        }
        var mine: [String] = []
        walkDirectory(root) { relative in
            mine.append(relative)
            return relative.hasSuffix("skip") ? .skipDescendants : .next
        }
        var theirs: [String] = []
        let enumerator = try #require(FileManager.default.enumerator(atPath: root))
        while let relative = enumerator.nextObject() as? String {
            theirs.append(relative)
            if relative.hasSuffix("skip") { enumerator.skipDescendants() }
        }
        #expect(mine.sorted() == theirs.sorted())
        #expect(!mine.contains("a/skip/d.txt"))
    }
}
