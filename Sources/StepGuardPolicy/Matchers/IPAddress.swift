#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address.
///
/// ``init(_:)`` accepts the standard notations only (as written in a policy). ``init(anySpelling:)``
/// accepts every spelling a client library may turn into an address — `2852039166`, `0x7f000003`,
/// `0177.0.0.3`, `127.1`, `[::ffff:127.0.0.3]` — so that egress rules judge the address, not the text.
public enum IPAddress: Sendable, Hashable, CustomStringConvertible {
    case v4(UInt32)
    case v6([UInt8])  // 16 bytes, network order

    /// Parses standard dotted-quad IPv4 or RFC 4291 IPv6 text (no brackets, no zone).
    public init?(_ text: String) {
        var v4 = in_addr()
        if text.contains("."), !text.contains(":"), inet_pton(AF_INET, text, &v4) == 1 {
            self = .v4(UInt32(bigEndian: v4.s_addr))
            return
        }
        var v6 = in6_addr()
        if text.contains(":"), inet_pton(AF_INET6, text, &v6) == 1 {
            self = .v6(withUnsafeBytes(of: &v6) { Array($0) })
            return
        }
        return nil
    }

    /// Parses any spelling of an address that resolvers and URL parsers accept (inet_aton forms,
    /// bracketed IPv6), and unwraps IPv4-mapped and IPv4-compatible IPv6 into the IPv4 address.
    public init?(anySpelling raw: String) {
        var text = raw
        if text.hasPrefix("["), text.hasSuffix("]") { text = String(text.dropFirst().dropLast()) }
        if let zone = text.firstIndex(of: "%") { text = String(text[..<zone]) }
        if text.contains(":") {
            guard let address = IPAddress(text) else { return nil }
            self = address.unmapped
            return
        }
        if text.hasSuffix(".") { text.removeLast() }
        guard let value = Self.parseInetAton(text) else { return nil }
        self = .v4(value)
    }

    /// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`) IPv6 address, else `self`.
    public var unmapped: IPAddress {
        guard case .v6(let bytes) = self else { return self }
        let mapped = bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xff && bytes[11] == 0xff
        guard mapped else { return self }
        return .v4(bytes[12..<16].reduce(0) { $0 << 8 | UInt32($1) })
    }

    /// The IPv4 address in the last 32 bits of an IPv4-compatible (`::a.b.c.d`, deprecated; not
    /// `::` or `::1`) or NAT64 (`64:ff9b::a.b.c.d`, RFC 6052) IPv6 address; nil for any other address.
    public var embeddedIPv4: IPAddress? {
        guard case .v6(let bytes) = self else { return nil }
        let embedded = bytes[12..<16].reduce(0) { $0 << 8 | UInt32($1) }
        let compatible = bytes[0..<12].allSatisfy { $0 == 0 } && embedded > 1
        let nat64 = bytes[0..<12].elementsEqual([0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0])
        guard compatible || nat64 else { return nil }
        return .v4(embedded)
    }

    /// Whether this is a loopback address (127.0.0.0/8 or ::1).
    public var isLoopback: Bool {
        switch unmapped {
        case .v4(let value): return value >> 24 == 127
        case .v6(let bytes): return bytes[0..<15].allSatisfy { $0 == 0 } && bytes[15] == 1
        }
    }

    /// inet_aton(3) semantics: 1 to 4 parts, each decimal, octal (leading 0) or hex (0x); the last
    /// part fills the remaining bytes.
    private static func parseInetAton(_ text: String) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...4).contains(parts.count) else { return nil }
        var values: [UInt64] = []
        for part in parts {
            guard let value = parseNumber(part) else { return nil }
            values.append(value)
        }
        var result: UInt64 = 0
        for value in values.dropLast() {
            guard value <= 0xff else { return nil }
            result = result << 8 | value
        }
        let remainingBits = UInt64(8 * (5 - values.count))
        guard let last = values.last, last < (1 << remainingBits) else { return nil }
        result = result << remainingBits | last
        return UInt32(truncatingIfNeeded: result)
    }

    private static func parseNumber(_ part: Substring) -> UInt64? {
        guard !part.isEmpty else { return nil }
        let lower = part.lowercased()
        if lower.hasPrefix("0x") {
            let digits = lower.dropFirst(2)
            return digits.isEmpty ? 0 : UInt64(digits, radix: 16).flatMap { $0 <= UInt32.max ? $0 : nil }
        }
        if lower.count > 1, lower.hasPrefix("0") {
            return UInt64(lower.dropFirst(), radix: 8).flatMap { $0 <= UInt32.max ? $0 : nil }
        }
        return UInt64(lower, radix: 10).flatMap { $0 <= UInt32.max ? $0 : nil }
    }

    /// Standard text form: dotted quad, or RFC 5952 IPv6.
    public var description: String {
        switch self {
        case .v4(let value):
            return "\(value >> 24).\(value >> 16 & 0xff).\(value >> 8 & 0xff).\(value & 0xff)"
        case .v6(let bytes):
            var address = in6_addr()
            withUnsafeMutableBytes(of: &address) { $0.copyBytes(from: bytes) }
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count))
            return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }
}

/// A network in CIDR notation (`10.1.0.0/16`, `fd00::/8`); a bare address is a single-host network.
public struct CIDR: Sendable, Hashable, CustomStringConvertible {
    public let network: IPAddress
    public let prefixLength: Int

    /// Parses `address[/prefix]`; throws ``MatcherError`` when the text is not a network.
    public init(_ text: String) throws(MatcherError) {
        let expected = "an IPv4 or IPv6 network such as 10.0.0.0/8, 169.254.169.254 or fd00::/8"
        let pieces = text.split(separator: "/", omittingEmptySubsequences: false)
        guard pieces.count <= 2, let address = IPAddress(String(pieces[0])) else {
            throw MatcherError("'\(text)' is not an IP network", expected: expected)
        }
        let maximum = address.bitWidth
        var length = maximum
        if pieces.count == 2 {
            guard let parsed = Int(pieces[1]), (0...maximum).contains(parsed), pieces[1].allSatisfy(\.isNumber) else {
                throw MatcherError("'\(text)' has a bad prefix length", expected: "a prefix length from 0 to \(maximum)")
            }
            length = parsed
        }
        guard address.masked(to: length) == address else {
            throw MatcherError("'\(text)' has host bits set beyond /\(length)", expected: "the network address \(address.masked(to: length))/\(length)")
        }
        self.network = address
        self.prefixLength = length
    }

    /// The network of exactly one address (`/32`, `/128`).
    public init(address: IPAddress) {
        self.network = address
        self.prefixLength = address.bitWidth
    }

    /// Whether `address` (IPv4-mapped IPv6 unwrapped) lies in this network.
    public func contains(_ address: IPAddress) -> Bool {
        let candidate = address.unmapped
        guard candidate.bitWidth == network.bitWidth else { return false }
        return candidate.masked(to: prefixLength) == network
    }

    public var description: String {
        prefixLength == network.bitWidth ? network.description : "\(network)/\(prefixLength)"
    }
}

extension IPAddress {
    var bitWidth: Int {
        if case .v4 = self { return 32 }
        return 128
    }

    func masked(to length: Int) -> IPAddress {
        switch self {
        case .v4(let value):
            return .v4(length == 0 ? 0 : value & (UInt32.max << (32 - length)))
        case .v6(let bytes):
            var result = bytes
            for index in 0..<16 {
                let bitsHere = max(0, min(8, length - index * 8))
                result[index] &= bitsHere == 0 ? 0 : UInt8(0xff << (8 - bitsHere) & 0xff)
            }
            return .v6(result)
        }
    }
}
