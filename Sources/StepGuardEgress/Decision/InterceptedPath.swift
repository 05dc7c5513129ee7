/// The path of a request to an intercepted service, normalised before it is decided and forwarded
/// as decided: a server that resolves `..` or decodes `%2e` itself must not reach a path the
/// policy's `paths:` globs never saw.
///
/// - Percent-escapes of unreserved characters (RFC 3986 §2.3) are decoded, the other escapes
///   upper-cased; escapes must be two hex digits and decode to valid UTF-8 (no overlong forms).
/// - Dot segments are removed (RFC 3986 §5.2.4) and empty segments merged (`//` → `/`).
/// - Refused: encoded `/` or `\`, a literal `\`, encoded control characters, a double-encoded
///   escape (`%252e`), and a dot segment with parameters (`..;x`, which some servers read as `..`).
///   A service whose catalog entry sets `encoded_slashes: true` (npm: `/@scope%2fname`) may send
///   `%2F`, kept as it is, unless a piece between slashes, encoded or not, is empty or a dot segment.
///
/// The query is left as it is (it is not matched by `paths:`).
enum InterceptedPath {
    /// The normalised form of the origin-form target `originForm` (`/path?query`, no fragment).
    static func normalise(_ originForm: String, encodedSlashes: Bool = false) throws(ProxyFailure) -> String {
        let bytes = Array(originForm.utf8)
        let pathEnd = bytes.firstIndex(of: UInt8(ascii: "?")) ?? bytes.count
        guard bytes.first == UInt8(ascii: "/") else { throw refusal("the path '\(originForm.prefix(100))' does not start with /") }
        var decoded: [UInt8] = []  // the path with every escape decoded, to check it is UTF-8
        var path: [UInt8] = []
        decoded.reserveCapacity(pathEnd)
        path.reserveCapacity(pathEnd)
        var index = 0
        while index < pathEnd {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "%"):
                guard index + 2 < pathEnd,
                      let high = bytes[index + 1].hexDigitValue, let low = bytes[index + 2].hexDigitValue else {
                    throw refusal("the path has an invalid percent-escape at byte \(index)")
                }
                let value = high << 4 | low
                switch value {
                case UInt8(ascii: "/") where encodedSlashes:
                    break
                case UInt8(ascii: "/"), UInt8(ascii: "\\"):
                    throw refusal("the path has an encoded '\(Character(Unicode.Scalar(value)))' (%\(hex(value))); a server may read it as a separator")
                case 0..<0x20, 0x7F:
                    throw refusal("the path has an encoded control character (%\(hex(value)))")
                case UInt8(ascii: "%") where index + 4 < pathEnd && bytes[index + 3].hexDigitValue != nil && bytes[index + 4].hexDigitValue != nil:
                    throw refusal("the path has a double-encoded escape (%25\(String(decoding: bytes[index + 3...index + 4], as: UTF8.self)))")
                default:
                    break
                }
                decoded.append(value)
                if isUnreserved(value) {
                    path.append(value)
                } else {
                    path += Array("%\(hex(value))".utf8)
                }
                index += 3
            case UInt8(ascii: "\\"):
                throw refusal("the path has a '\\'; a server may read it as a separator")
            case 0..<0x21, 0x7F...:
                throw refusal("the path has a byte that is not allowed in a request target (0x\(hex(byte)))")
            default:
                decoded.append(byte)
                path.append(byte)
                index += 1
            }
        }
        guard String(validating: decoded, as: UTF8.self) != nil else {
            throw refusal("the path's percent-escapes do not decode to valid UTF-8 (overlong or truncated sequences are refused)")
        }
        let normalised = try removingDotSegments(String(decoding: path, as: UTF8.self))
        if encodedSlashes, normalised.contains("%2F") {
            for segment in normalised.split(separator: "/") where segment.contains("%2F") {
                let pieces = segment.split(separator: "%2F", omittingEmptySubsequences: false)
                if let bad = pieces.first(where: { $0.isEmpty || $0.prefix { $0 != ";" } == "." || $0.prefix { $0 != ";" } == ".." }) {
                    throw refusal("the path has an encoded '/' next to \(bad.isEmpty ? "another '/'" : "'\(bad.prefix(20))'"); a server that decodes it would see a dot or empty segment")
                }
            }
        }
        return normalised + String(decoding: bytes[pathEnd...], as: UTF8.self)
    }

    /// `path` (starting with `/`) without `.` and `..` segments and without empty segments.
    static func removingDotSegments(_ path: String) throws(ProxyFailure) -> String {
        var output: [Substring] = []
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        var endsWithSlash = false
        for (position, segment) in segments.enumerated() {
            let isLast = position == segments.count - 1
            let bare = segment.prefix { $0 != ";" }
            if bare == "." || bare == ".." {
                guard bare.count == segment.count else {
                    throw refusal("the path has a dot segment with parameters ('\(segment.prefix(20))'); a server may read it as '\(bare)'")
                }
                if bare == "..", !output.isEmpty { output.removeLast() }
                endsWithSlash = true
                continue
            }
            if segment.isEmpty {
                if isLast { endsWithSlash = true }
                continue
            }
            output.append(segment)
            endsWithSlash = false
        }
        let joined = "/" + output.joined(separator: "/")
        return endsWithSlash && !output.isEmpty ? joined + "/" : joined
    }

    private static func refusal(_ reason: String) -> ProxyFailure {
        ProxyFailure(status: .forbidden, reason: reason + "; intercepted paths are normalised before they are decided, and what cannot be normalised safely is refused",
                     decision: "deny", rule: rule)
    }

    /// The rule of a refused path.
    static let rule = "built-in: intercepted paths are normalised"

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"): true
        default: false
        }
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789ABCDEF".utf8)
        return String(decoding: [digits[Int(byte >> 4)], digits[Int(byte & 0xF)]], as: UTF8.self)
    }
}
