import FoundationEssentials
import Glibc

// String helpers that FoundationEssentials lacks (Foundation has them on NSString, which would bring
// ICU's 34 MB of data into the binary). Names differ from Foundation's, so a file that imports both
// is never ambiguous.

extension Unicode.Scalar {
    /// Foundation's `CharacterSet.whitespaces`: Unicode general category Zs and tab.
    public var isSpaceOrTab: Bool { self == "\t" || properties.generalCategory == .spaceSeparator }

    /// Foundation's `CharacterSet.whitespacesAndNewlines`: categories Zs, Zl, Zp, U+000A–U+000D and U+0085.
    public var isWhitespaceOrNewline: Bool {
        switch properties.generalCategory {
        case .spaceSeparator, .lineSeparator, .paragraphSeparator: return true
        default: return self == "\t" || (0x0A...0x0D).contains(value) || value == 0x85
        }
    }
}

extension StringProtocol {
    /// Without the leading and trailing scalars that `drop` accepts.
    public func trimming(where drop: (Unicode.Scalar) -> Bool) -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !drop($0) }) else { return "" }
        let last = scalars.lastIndex(where: { !drop($0) })!
        return String(String.UnicodeScalarView(scalars[first...last]))
    }

    /// Without leading and trailing spaces and tabs (Foundation's `trimmingCharacters(in: .whitespaces)`).
    public func trimmingWhitespace() -> String { trimming(where: \.isSpaceOrTab) }

    /// Without leading and trailing white space and line ends (`.whitespacesAndNewlines`).
    public func trimmingWhitespaceAndNewlines() -> String { trimming(where: \.isWhitespaceOrNewline) }

    /// Without leading and trailing scalars that occur in `characters`.
    public func trimming(charactersIn characters: String) -> String {
        let set = Set(characters.unicodeScalars)
        return trimming { set.contains($0) }
    }

    /// Every occurrence of `target` replaced by `replacement`, compared scalar by scalar (so a `\n`
    /// inside a `\r\n` is found, as Foundation's `replacingOccurrences(of:with:)` finds it).
    public func replacingAll(_ target: String, with replacement: String) -> String {
        let needle = Array(target.unicodeScalars)
        guard !needle.isEmpty else { return String(self) }
        let haystack = Array(unicodeScalars)
        var out = String.UnicodeScalarView()
        var index = 0
        while index < haystack.count {
            if haystack[index] == needle[0], index + needle.count <= haystack.count, Array(haystack[index..<(index + needle.count)]) == needle {
                out.append(contentsOf: replacement.unicodeScalars)
                index += needle.count
            } else {
                out.append(haystack[index])
                index += 1
            }
        }
        return String(out)
    }

    /// The range of the first (or, `backwards`, the last) occurrence of `needle`, compared scalar by
    /// scalar (ASCII letters in any case with `caseInsensitive`): Foundation's `range(of:options:)`.
    public func scalarRange(of needle: String, backwards: Bool = false, caseInsensitive: Bool = false) -> Range<String.Index>? {
        let target = Array(needle.unicodeScalars)
        guard !target.isEmpty else { return nil }
        let scalars = unicodeScalars
        let indices = Array(scalars.indices)
        guard indices.count >= target.count else { return nil }
        func same(_ a: Unicode.Scalar, _ b: Unicode.Scalar) -> Bool {
            guard caseInsensitive else { return a == b }
            func lower(_ s: Unicode.Scalar) -> UInt32 { (0x41...0x5A).contains(s.value) ? s.value + 0x20 : s.value }
            return lower(a) == lower(b)
        }
        let starts = 0...(indices.count - target.count)
        for start in backwards ? Array(starts.reversed()) : Array(starts) {
            if (0..<target.count).allSatisfy({ same(scalars[indices[start + $0]], target[$0]) }) {
                let end = start + target.count < indices.count ? indices[start + target.count] : scalars.endIndex
                return indices[start]..<end
            }
        }
        return nil
    }

    /// The text with `%XX` escapes decoded; nil when a `%` is not followed by two hex digits or the
    /// result is not UTF-8 (as Foundation's `removingPercentEncoding`).
    public var percentDecoded: String? {
        var bytes: [UInt8] = []
        var iterator = utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else { bytes.append(byte); continue }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    /// The text with every byte of its UTF-8 outside ASCII letters, digits and `allowed` written as `%XX`.
    public func percentEncoded(allowing allowed: String = "") -> String {
        let extra = Set(allowed.utf8)
        var out = ""
        for byte in utf8 {
            let isAlphanumeric = (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
            if isAlphanumeric || extra.contains(byte) {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "%" + Hex.padded(byte, width: 2).uppercased()
            }
        }
        return out
    }
}

private func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case 0x30...0x39: byte - 0x30
    case 0x41...0x46: byte - 0x41 + 10
    case 0x61...0x66: byte - 0x61 + 10
    default: nil
    }
}

/// Path string operations as NSString did them (no URL, no file system access).
public enum FilePaths {
    /// The last component: `/a/b/` → `b`, `/` → `/`, `` → ``.
    public static func lastComponent(_ path: String) -> String {
        let trimmed = stripTrailingSlashes(path)
        if trimmed == "/" { return "/" }
        guard let slash = trimmed.lastIndex(of: "/") else { return trimmed }
        return String(trimmed[trimmed.index(after: slash)...])
    }

    /// Without the last component: `/a/b` → `/a`, `/a` → `/`, `a` → ``, `/` → `/`.
    public static func deletingLastComponent(_ path: String) -> String {
        let trimmed = stripTrailingSlashes(path)
        if trimmed == "/" { return "/" }
        guard let slash = trimmed.lastIndex(of: "/") else { return "" }
        let parent = stripTrailingSlashes(String(trimmed[..<slash]))
        return parent.isEmpty ? "/" : parent
    }

    /// `component` appended with one `/` between: `a` + `b` → `a/b`, `` + `b` → `b`, `/` + `b` → `/b`.
    public static func appending(_ component: String, to path: String) -> String {
        let tail = String(component.drop { $0 == "/" })
        if path.isEmpty { return stripTrailingSlashes(component) }
        let head = stripTrailingSlashes(path)
        let joined = tail.isEmpty ? head : (head == "/" ? "/" + tail : head + "/" + tail)
        return stripTrailingSlashes(joined)
    }

    static func stripTrailingSlashes(_ path: String) -> String {
        var result = Substring(path)
        while result.count > 1, result.hasSuffix("/") { result = result.dropLast() }
        return String(result)
    }
}

/// A short, human description of an error, where Foundation would have used `localizedDescription`.
public func describeError(_ error: any Error) -> String {
    if let posix = error as? POSIXError { return String(cString: strerror(posix.code.rawValue)) }
    if let cocoa = error as? CocoaError {
        switch cocoa.code {
        case .fileNoSuchFile, .fileReadNoSuchFile: return "no such file"
        case .fileReadNoPermission, .fileWriteNoPermission: return "permission denied"
        case .fileReadInapplicableStringEncoding, .fileReadCorruptFile: return "the file is not valid UTF-8 text"
        case .fileWriteOutOfSpace: return "no space left on the device"
        case .fileWriteVolumeReadOnly: return "the file system is read-only"
        default: return "\(cocoa)"
        }
    }
    return "\(error)"
}
