import CLinuxIO
#if canImport(Glibc)
import Glibc
#endif

/// An HTTP/1.1 message head as the socket front reads it: byte ranges into the bytes it was parsed
/// from. The parser is strict: anything unusual (bare LF, obs-fold, control characters, a
/// malformed start line) is `invalid`, and the front hands such a connection to the full NIO
/// pipeline, which answers it with the right error.
struct RawHead {
    /// The three parts of the start line: method, target, version (request) or version, status, reason (response).
    var start: (Range<Int>, Range<Int>, Range<Int>)
    var fields: [(name: Range<Int>, value: Range<Int>)]
    /// Bytes of the head, final CRLF CRLF included.
    var length: Int

    enum Parsed {
        case incomplete
        case invalid
        case complete(RawHead)
    }

    /// Parses the head at the start of `bytes`; at most `maxFields` fields.
    static func parse(_ bytes: UnsafeRawBufferPointer, maxFields: Int) -> Parsed {
        guard let base = bytes.baseAddress, bytes.count >= 4 else { return .incomplete }
        guard let end = sg_memmem(base, bytes.count, "\r\n\r\n", 4) else { return .incomplete }
        let length = base.distance(to: UnsafeRawPointer(end)) + 4
        // Lines: [lineStart, CR) for each line before the empty one.
        var lines: [Range<Int>] = []
        var lineStart = 0
        var index = 0
        while index < length - 2 {
            let byte = bytes[index]
            if byte == 13 {
                guard bytes[index + 1] == 10 else { return .invalid }
                lines.append(lineStart..<index)
                index += 2
                lineStart = index
                continue
            }
            if byte == 10 { return .invalid }
            index += 1
        }
        guard let first = lines.first, lines.count - 1 <= maxFields else { return .invalid }
        guard let start = startLine(bytes, first) else { return .invalid }
        var fields: [(name: Range<Int>, value: Range<Int>)] = []
        fields.reserveCapacity(lines.count - 1)
        for line in lines.dropFirst() {
            guard let field = field(bytes, line) else { return .invalid }
            fields.append(field)
        }
        return .complete(RawHead(start: start, fields: fields, length: length))
    }

    private static func startLine(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>) -> (Range<Int>, Range<Int>, Range<Int>)? {
        guard let firstSpace = bytes[line].firstIndex(of: 32) else { return nil }
        let rest = (firstSpace + 1)..<line.upperBound
        guard let secondSpace = bytes[rest].firstIndex(of: 32) else { return nil }
        let parts = (line.lowerBound..<firstSpace, (firstSpace + 1)..<secondSpace, (secondSpace + 1)..<line.upperBound)
        guard !parts.0.isEmpty, !parts.1.isEmpty else { return nil }
        // No control characters anywhere in the line; the first two parts hold no space either.
        for byte in bytes[line] where byte < 32 || byte == 127 { return nil }
        return parts
    }

    private static func field(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>) -> (name: Range<Int>, value: Range<Int>)? {
        guard let colon = bytes[line].firstIndex(of: 58), colon > line.lowerBound else { return nil }
        for byte in bytes[line.lowerBound..<colon] where !isTokenByte(byte) { return nil }
        var valueStart = colon + 1
        var valueEnd = line.upperBound
        while valueStart < valueEnd, bytes[valueStart] == 32 || bytes[valueStart] == 9 { valueStart += 1 }
        while valueEnd > valueStart, bytes[valueEnd - 1] == 32 || bytes[valueEnd - 1] == 9 { valueEnd -= 1 }
        for byte in bytes[valueStart..<valueEnd] where (byte < 32 && byte != 9) || byte == 127 { return nil }
        return (line.lowerBound..<colon, valueStart..<valueEnd)
    }

    /// RFC 9110 tchar.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
             UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"): true
        default: false
        }
    }
}

extension UnsafeRawBufferPointer {
    /// ASCII case-insensitive equality of the bytes in `range` with `lower`, which is lower case.
    func equalsIgnoringCase(_ range: Range<Int>, _ lower: StaticString) -> Bool {
        equalsIgnoringCase(range, UnsafeRawBufferPointer(start: lower.utf8Start, count: lower.utf8CodeUnitCount))
    }

    /// ASCII case-insensitive equality of the bytes in `range` with `lower`, which is lower case.
    func equalsIgnoringCase(_ range: Range<Int>, _ lower: String) -> Bool {
        var lower = lower
        return lower.withUTF8 { equalsIgnoringCase(range, UnsafeRawBufferPointer($0)) }
    }

    private func equalsIgnoringCase(_ range: Range<Int>, _ expected: UnsafeRawBufferPointer) -> Bool {
        guard range.count == expected.count else { return false }
        for offset in 0..<range.count {
            let byte = self[range.lowerBound + offset]
            if (byte >= 65 && byte <= 90 ? byte + 32 : byte) != expected[offset] { return false }
        }
        return true
    }

    func string(_ range: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: self[range]), as: UTF8.self)
    }

    /// The comma-separated, lower-cased tokens of the value at `range` (e.g. a Connection header).
    func lowercasedTokens(_ range: Range<Int>) -> [String] {
        self[range].split(separator: UInt8(ascii: ",")).compactMap { token in
            let trimmed = token.drop { $0 == 32 || $0 == 9 }.reversed().drop { $0 == 32 || $0 == 9 }.reversed()
            return trimmed.isEmpty ? nil : String(decoding: trimmed, as: UTF8.self).lowercased()
        }
    }
}

/// Where an HTTP/1.1 message body ends (RFC 9112 §6.3), tracked while the bytes are relayed unchanged.
struct BodyFraming {
    enum Kind: Equatable {
        case none
        case length(Int)
        case chunked
        /// Until the sender closes the connection (then the connection cannot be reused).
        case untilClose
    }

    private(set) var kind: Kind
    private var chunk = ChunkState.size(0, digits: 0)

    private enum ChunkState {
        case size(Int, digits: Int)
        case extensionText(Int)
        case sizeLF(Int)
        case data(Int)
        case dataCR
        case dataLF
        case trailerStart
        case trailerText
        case trailerLF(last: Bool)
        case done
    }

    init(_ kind: Kind) { self.kind = kind }

    var finished: Bool {
        switch kind {
        case .none: true
        case .length(let remaining): remaining == 0
        case .chunked: if case .done = chunk { true } else { false }
        case .untilClose: false
        }
    }

    /// How many bytes of a body framed by its length, or by the sender's close (`Int.max`), are
    /// still to come: bytes that may be moved without being looked at. Nil for chunked or no body.
    var opaqueRemainder: Int? {
        switch kind {
        case .length(let remaining): remaining
        case .untilClose: .max
        case .none, .chunked: nil
        }
    }

    /// Counts `count` bytes of such a body moved without being looked at (see ``opaqueRemainder``).
    mutating func skip(_ count: Int) {
        if case .length(let remaining) = kind { kind = .length(remaining - count) }
    }

    /// Consumes body bytes from the start of `bytes`; returns how many belong to this body, or nil
    /// when the chunked framing is malformed.
    mutating func consume(_ bytes: UnsafeRawBufferPointer) -> Int? {
        switch kind {
        case .none: return 0
        case .untilClose: return bytes.count
        case .length(let remaining):
            let taken = min(remaining, bytes.count)
            kind = .length(remaining - taken)
            return taken
        case .chunked:
            var index = 0
            while index < bytes.count {
                let byte = bytes[index]
                switch chunk {
                case .size(let value, let digits):
                    if let digit = byte.hexDigitValue.map(Int.init) {
                        guard digits < 15 else { return nil }
                        chunk = .size(value << 4 | digit, digits: digits + 1)
                    } else if digits > 0, byte == 13 {
                        chunk = .sizeLF(value)
                    } else if digits > 0, byte == 59 || byte == 32 || byte == 9 {
                        chunk = .extensionText(value)
                    } else {
                        return nil
                    }
                    index += 1
                case .extensionText(let size):
                    if byte == 13 { chunk = .sizeLF(size) } else if byte == 10 || (byte < 32 && byte != 9) { return nil }
                    index += 1
                case .sizeLF(let size):
                    guard byte == 10 else { return nil }
                    chunk = size == 0 ? .trailerStart : .data(size)
                    index += 1
                case .data(let remaining):
                    let taken = min(remaining, bytes.count - index)
                    index += taken
                    chunk = remaining == taken ? .dataCR : .data(remaining - taken)
                case .dataCR:
                    guard byte == 13 else { return nil }
                    chunk = .dataLF
                    index += 1
                case .dataLF:
                    guard byte == 10 else { return nil }
                    chunk = .size(0, digits: 0)
                    index += 1
                case .trailerStart:
                    chunk = byte == 13 ? .trailerLF(last: true) : .trailerText
                    if byte == 10 { return nil }
                    index += 1
                case .trailerText:
                    if byte == 13 { chunk = .trailerLF(last: false) } else if byte == 10 { return nil }
                    index += 1
                case .trailerLF(let last):
                    guard byte == 10 else { return nil }
                    index += 1
                    if last {
                        chunk = .done
                        return index
                    }
                    chunk = .trailerStart
                case .done:
                    return index
                }
            }
            return index
        }
    }

}

extension UInt8 {
    /// The value of this byte as a hexadecimal digit (`0`–`9`, `a`–`f`, `A`–`F`), or nil: chunk
    /// sizes and percent-escapes.
    var hexDigitValue: UInt8? {
        switch self {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): self - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): self - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): self - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
