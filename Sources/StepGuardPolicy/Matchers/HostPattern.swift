/// A host-name glob such as `github.com` or `*.githubusercontent.com`.
///
/// Matching is case-insensitive and ignores a trailing dot on either side. `*` may match across
/// dots (`*.example.com` matches `a.b.example.com`) but never the empty label before `.example.com`.
public struct HostPattern: Sendable, Hashable, CustomStringConvertible {
    /// The normalised pattern (lower case, no trailing dot).
    public let pattern: String
    let glob: Glob

    public init(_ text: String) throws(MatcherError) {
        let normalised = HostPattern.normalise(text)
        let expected = "a host name or glob of letters, digits, '-', '_', '.', '*' and '?', e.g. *.github.com"
        guard !normalised.isEmpty else { throw MatcherError("empty host", expected: expected) }
        guard normalised.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.*?".contains($0)) }) else {
            throw MatcherError("host '\(text)' has characters a host name cannot have", expected: expected)
        }
        guard !normalised.split(separator: ".", omittingEmptySubsequences: false).contains(where: \.isEmpty) else {
            throw MatcherError("host '\(text)' has an empty label", expected: expected)
        }
        self.pattern = normalised
        self.glob = try Glob(normalised, caseInsensitive: true)
    }

    /// Lower-cases a host name and removes one trailing dot (`GitHub.com.` → `github.com`).
    public static func normalise(_ host: String) -> String {
        var lowered = host.lowercased()
        if lowered.hasSuffix(".") { lowered.removeLast() }
        return lowered
    }

    /// Whether `host` matches (after normalisation).
    public func matches(_ host: String) -> Bool {
        glob.matches(HostPattern.normalise(host))
    }

    /// True when the pattern names exactly one host.
    public var isLiteral: Bool { glob.isLiteral }

    public var description: String { pattern }
}

/// One entry of `egress.allow` / `egress.deny`: a host glob or an IP network, with an optional port.
///
/// Forms: `github.com`, `*.npmjs.org:443`, `10.0.0.0/8`, `169.254.169.254`, `127.0.0.1:8443`,
/// `fd00::/8`, `[::1]:443`.
public struct EgressRule: Sendable, Hashable, CustomStringConvertible {
    public enum Target: Sendable, Hashable {
        case host(HostPattern)
        case network(CIDR)
    }

    public let target: Target
    /// The port the rule is limited to, or nil for any port.
    public let port: UInt16?

    public init(target: Target, port: UInt16?) {
        self.target = target
        self.port = port
    }

    public init(_ text: String) throws(MatcherError) {
        let expected = "a host glob, IP network or host:port, e.g. github.com, *.npmjs.org:443, 10.0.0.0/8, [::1]:443"
        var body = text
        var port: UInt16?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw MatcherError("'\(text)' has no closing ']'", expected: expected) }
            body = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { throw MatcherError("'\(text)' has text after ']'", expected: expected) }
                port = try EgressRule.parsePort(String(rest.dropFirst()), in: text)
            }
        } else if text.filter({ $0 == ":" }).count == 1 {
            let pieces = text.split(separator: ":", omittingEmptySubsequences: false)
            body = String(pieces[0])
            port = try EgressRule.parsePort(String(pieces[1]), in: text)
        }
        if body.contains(":") || body.contains("/") || IPAddress(body) != nil {
            if body.contains("/"), port != nil {
                throw MatcherError("'\(text)' combines a network with a port", expected: "a network without a port, or one address with a port")
            }
            self.target = .network(try CIDR(body))
        } else {
            self.target = .host(try HostPattern(body))
        }
        self.port = port
    }

    static func parsePort(_ text: String, in whole: String) throws(MatcherError) -> UInt16 {
        guard !text.isEmpty, text.allSatisfy(\.isNumber), let port = UInt16(text), port > 0 else {
            throw MatcherError("'\(whole)' has a bad port '\(text)'", expected: "a port from 1 to 65535")
        }
        return port
    }

    /// Whether the rule covers a connection to `host` (as requested) at `address` (as resolved) and `port`.
    public func matches(host: String, address: IPAddress?, port: UInt16) -> Bool {
        if let rulePort = self.port, rulePort != port { return false }
        switch target {
        case .host(let pattern):
            return pattern.matches(host)
        case .network(let cidr):
            if let literal = IPAddress(anySpelling: host), cidr.contains(literal) { return true }
            return address.map(cidr.contains) ?? false
        }
    }

    public var description: String {
        let base: String
        switch target {
        case .host(let pattern): base = pattern.description
        case .network(let cidr):
            base = (port != nil && cidr.network.bitWidth == 128) ? "[\(cidr)]" : cidr.description
        }
        return port.map { "\(base):\($0)" } ?? base
    }
}

/// A `host:port` pair, as used by `network.resolve` (`"fulcio.sigstore.dev:443": "127.0.0.1:8443"`).
public struct HostPort: Sendable, Hashable, CustomStringConvertible {
    public let host: String
    public let port: UInt16

    public init(host: String, port: UInt16) {
        self.host = HostPattern.normalise(host)
        self.port = port
    }

    public init(_ text: String) throws(MatcherError) {
        let expected = "host:port, e.g. fulcio.sigstore.dev:443, 127.0.0.1:8443 or [::1]:8443"
        guard let colon = text.lastIndex(of: ":") else { throw MatcherError("'\(text)' has no port", expected: expected) }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, !host.contains("/"), !host.contains(" ") else { throw MatcherError("'\(text)' has no host", expected: expected) }
        if host.contains(":"), IPAddress(host) == nil { throw MatcherError("'\(text)' is not host:port", expected: expected) }
        self.init(host: host, port: try EgressRule.parsePort(String(text[text.index(after: colon)...]), in: text))
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
