/// Where an absolute-form or origin-form request goes, parsed from its request line (and, for an
/// intercepted connection, its Host fields).
struct RequestTarget {
    let host: HostName.Normalised
    let port: UInt16
    /// `/path?query` as sent upstream.
    let originForm: String
    /// The path without the query (what is decided and recorded: queries may hold secrets).
    var path: String { String(originForm.prefix { $0 != "?" }) }
    var query: [(String, String)] { InspectedRequest.formItems(originForm.split(separator: "?", maxSplits: 1).dropFirst().first.map(String.init) ?? "") }
    /// The Host header sent upstream.
    let authority: String

    /// Splits `host:port` / `[v6]:port`; the port is required unless `defaultPort` is given.
    static func splitAuthority(_ authority: String, defaultPort: UInt16?) -> (host: String, port: UInt16)? {
        var host = authority
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = String(authority[...close])
            let rest = authority[authority.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { return nil }
                portText = rest.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: ":") {
            guard authority.firstIndex(of: ":") == colon else { return nil }
            host = String(authority[..<colon])
            portText = authority[authority.index(after: colon)...]
        }
        guard !host.isEmpty else { return nil }
        if let portText {
            guard !portText.isEmpty, portText.allSatisfy(\.isNumber), let port = UInt16(portText), port > 0 else { return nil }
            return (host, port)
        }
        guard let defaultPort else { return nil }
        return (host, defaultPort)
    }

    /// The host and port of a CONNECT request's target (`host:port`, the port required).
    static func connect(_ uri: String) throws(ProxyFailure) -> (host: HostName.Normalised, port: UInt16) {
        guard let split = splitAuthority(uri, defaultPort: nil), let host = HostName.normalise(split.host) else {
            throw ProxyFailure(status: .badRequest, reason: "CONNECT needs host:port, not '\(uri.prefix(200))'", rule: "built-in: request target")
        }
        return (host, split.port)
    }

    /// The target of an absolute-form `http://` request to the proxy.
    static func absolute(_ uri: String) throws(ProxyFailure) -> RequestTarget {
        let lower = uri.lowercased()
        if lower.hasPrefix("https://") {
            throw refusal("send https:// requests through CONNECT, not as absolute-form requests")
        }
        guard lower.hasPrefix("http://") else {
            throw refusal("this is stepguard's forward proxy: send CONNECT host:port or an absolute-form http:// request, not '\(uri.prefix(100))'")
        }
        let rest = uri.dropFirst(7)
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        let authority = String(rest[..<authorityEnd])
        guard !authority.contains("@") else {
            throw refusal("user information in the request URL is not accepted")
        }
        var origin = String(rest[authorityEnd...].prefix { $0 != "#" })
        if origin.isEmpty { origin = "/" } else if origin.hasPrefix("?") { origin = "/" + origin }
        guard let split = splitAuthority(authority, defaultPort: 80), let host = HostName.normalise(split.host) else {
            throw refusal("'\(authority.prefix(100))' is not a valid host[:port]")
        }
        return RequestTarget(host: host, port: split.port, originForm: origin, authority: authority)
    }

    /// The target of a request inside the intercepted connection to `route`: origin-form (or an
    /// absolute `https://` form), and every Host — the fields and the one in the URI — naming the
    /// CONNECT target. A Host naming anything else is `403`: the request would reach another host
    /// than the one decided.
    static func intercepted(_ uri: String, hostFields: [String], route: Route) throws(ProxyFailure) -> RequestTarget {
        var origin = uri
        var hostFields = hostFields
        if uri.lowercased().hasPrefix("https://") {
            let rest = uri.dropFirst(8)
            let end = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
            hostFields.append(String(rest[..<end]))
            origin = String(rest[end...])
            if origin.isEmpty { origin = "/" }
        }
        guard origin.hasPrefix("/") else {
            throw refusal("request target '\(uri.prefix(100))' is not origin-form")
        }
        guard !hostFields.isEmpty else {
            throw hostRefusal("the request has no Host header; it must name \(route.host.text)")
        }
        for value in hostFields {
            guard let split = splitAuthority(value, defaultPort: route.port), HostName.normalise(split.host) == route.host, split.port == route.port else {
                throw hostRefusal("Host '\(value.prefix(100))' differs from the CONNECT target \(route.host.text):\(route.port)")
            }
        }
        let authority = route.port == 443 ? route.host.text : "\(route.host.text):\(route.port)"
        return RequestTarget(host: route.host, port: route.port, originForm: String(origin.prefix { $0 != "#" }), authority: authority)
    }

    /// The rule of an intercepted request whose Host names another host than its CONNECT.
    static let hostRule = "built-in: Host must equal the CONNECT target"

    private static func refusal(_ reason: String) -> ProxyFailure {
        ProxyFailure(status: .badRequest, reason: reason, rule: "built-in: request target")
    }

    private static func hostRefusal(_ reason: String) -> ProxyFailure {
        ProxyFailure(status: .forbidden, reason: reason, decision: "deny", rule: hostRule)
    }

    /// This target with its path normalised (see ``InterceptedPath``): what is decided and forwarded.
    func normalisedForService(encodedSlashes: Bool) throws(ProxyFailure) -> RequestTarget {
        RequestTarget(host: host, port: port, originForm: try InterceptedPath.normalise(originForm, encodedSlashes: encodedSlashes), authority: authority)
    }
}
