/// A strict reader of JSON request bodies that may carry credentials: RFC 8259 in UTF-8 and
/// nothing else (no trailing bytes, no lone surrogates, nesting at most ``maxDepth`` deep), and no
/// object with the same key twice, compared ignoring case (servers disagree on which one counts;
/// Go's decoder matches struct fields ignoring case). What it refuses cannot be inspected, so a
/// credential rule that needs the body denies it.
enum StrictJSON {
    /// Why a body is not read.
    struct Failure: Error, Sendable {
        let reason: String
    }

    /// The deepest nesting of objects and arrays read.
    static let maxDepth = 64

    /// Every string value in `bytes` with its path: object keys joined by `.`, array elements as `[i]`
    /// (`credentials.oidcIdentityToken`, `tokens[0]`).
    static func strings(in bytes: [UInt8]) throws(Failure) -> [(path: String, value: String)] {
        var reader = Reader(bytes: bytes)
        var found: [(String, String)] = []
        reader.skipWhitespace()
        try reader.value(path: "", depth: 0, into: &found)
        reader.skipWhitespace()
        guard reader.index == bytes.count else { throw Failure(reason: "bytes after the end of the JSON document (at byte \(reader.index))") }
        return found
    }

    private struct Reader {
        let bytes: [UInt8]
        var index = 0

        mutating func skipWhitespace() {
            while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
        }

        func failure(_ what: String) -> Failure { Failure(reason: "\(what) at byte \(index)") }

        mutating func value(path: String, depth: Int, into found: inout [(String, String)]) throws(Failure) {
            guard index < bytes.count else { throw failure("the JSON document ends early") }
            switch bytes[index] {
            case UInt8(ascii: "{"):
                guard depth < StrictJSON.maxDepth else { throw failure("JSON nested deeper than \(StrictJSON.maxDepth)") }
                index += 1
                var keys = Set<String>()
                skipWhitespace()
                if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return }
                while true {
                    skipWhitespace()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw failure("an object key expected") }
                    let key = try string()
                    guard keys.insert(key.lowercased()).inserted else { throw failure("the key '\(key.prefix(40))' appears twice in one object") }
                    skipWhitespace()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw failure("':' expected") }
                    index += 1
                    skipWhitespace()
                    try value(path: path.isEmpty ? key : "\(path).\(key)", depth: depth + 1, into: &found)
                    skipWhitespace()
                    guard index < bytes.count else { throw failure("the JSON document ends early") }
                    if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                    guard bytes[index] == UInt8(ascii: "}") else { throw failure("',' or '}' expected") }
                    index += 1
                    return
                }
            case UInt8(ascii: "["):
                guard depth < StrictJSON.maxDepth else { throw failure("JSON nested deeper than \(StrictJSON.maxDepth)") }
                index += 1
                skipWhitespace()
                if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1; return }
                var element = 0
                while true {
                    skipWhitespace()
                    try value(path: "\(path)[\(element)]", depth: depth + 1, into: &found)
                    element += 1
                    skipWhitespace()
                    guard index < bytes.count else { throw failure("the JSON document ends early") }
                    if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                    guard bytes[index] == UInt8(ascii: "]") else { throw failure("',' or ']' expected") }
                    index += 1
                    return
                }
            case UInt8(ascii: "\""):
                found.append((path, try string()))
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            default: try number()
            }
        }

        mutating func literal(_ word: String) throws(Failure) {
            let expected = Array(word.utf8)
            guard index + expected.count <= bytes.count, Array(bytes[index..<index + expected.count]) == expected else { throw failure("a JSON value expected") }
            index += expected.count
        }

        mutating func number() throws(Failure) {
            let start = index
            func digits() -> Int {
                let from = index
                while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") { index += 1 }
                return index - from
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
            let leadingZero = index < bytes.count && bytes[index] == UInt8(ascii: "0")
            let integer = digits()
            guard integer > 0, !(leadingZero && integer > 1) else { index = start; throw failure("a JSON value expected") }
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                guard digits() > 0 else { throw failure("digits expected after '.'") }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
                guard digits() > 0 else { throw failure("digits expected in the exponent") }
            }
        }

        /// A string starting at the opening quote, decoded.
        mutating func string() throws(Failure) -> String {
            index += 1
            var utf8: [UInt8] = []
            while true {
                guard index < bytes.count else { throw failure("a JSON string is not closed") }
                let byte = bytes[index]
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    guard let text = String(validating: utf8, as: UTF8.self) else { throw failure("a JSON string is not valid UTF-8") }
                    return text
                case UInt8(ascii: "\\"):
                    guard index < bytes.count else { throw failure("a JSON string is not closed") }
                    let escape = bytes[index]
                    index += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
                    case UInt8(ascii: "b"): utf8.append(0x08)
                    case UInt8(ascii: "f"): utf8.append(0x0C)
                    case UInt8(ascii: "n"): utf8.append(0x0A)
                    case UInt8(ascii: "r"): utf8.append(0x0D)
                    case UInt8(ascii: "t"): utf8.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try hex4()
                        if (0xD800..<0xDC00).contains(scalar) {
                            guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                                throw failure("a lone surrogate escape in a JSON string")
                            }
                            index += 2
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else { throw failure("a lone surrogate escape in a JSON string") }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00..<0xE000).contains(scalar) {
                            throw failure("a lone surrogate escape in a JSON string")
                        }
                        guard let unicode = Unicode.Scalar(scalar) else { throw failure("an invalid \\u escape") }
                        utf8 += Array(String(Character(unicode)).utf8)
                    default:
                        throw failure("an invalid escape in a JSON string")
                    }
                case 0..<0x20:
                    throw failure("a control character in a JSON string")
                default:
                    utf8.append(byte)
                }
            }
        }

        mutating func hex4() throws(Failure) -> UInt32 {
            guard index + 4 <= bytes.count else { throw failure("a \\u escape is cut short") }
            var value: UInt32 = 0
            for byte in bytes[index..<index + 4] {
                let digit: UInt32
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
                default: throw failure("a \\u escape needs four hex digits")
                }
                value = value << 4 | digit
            }
            index += 4
            return value
        }
    }
}
