import StepGuardAudit

/// The plain HTTP requests a client sends into a tunnel or a captured connection, when the policy
/// names services: the sibling of ``TunnelStart``'s SNI rule. A server behind an address shared by
/// several hosts picks the virtual host of each request by its `Host` (or by the host of an
/// absolute-form target, which servers honour over `Host`), so a request naming a service through a
/// tunnel opened to another host would reach the service uninspected. Every request head is
/// therefore followed, one after the other (the body between two heads by its framing), and each
/// must name the tunnel's own host and no service. Both fronts feed it the client's bytes and
/// write upstream only what it clears; it does no I/O.
///
/// What it cannot follow is denied: a head that does not parse, a body framing it cannot tell,
/// `CONNECT`, HTTP other than 1.0/1.1, bytes that stop being HTTP after a request, a first line only
/// a lenient server reads as a request. Bytes that never were HTTP (SSH, a database protocol) are
/// relayed as they come, and so is the rest of a
/// connection whose request asked to `Upgrade` once what follows it is no request line (a
/// WebSocket's frames).
struct TunnelRequests {
    /// The rule of a request head refused here.
    static let rule = "built-in: Host must equal the tunnel's host"

    /// What the bytes held so far allow.
    enum Step {
        /// Not enough bytes to decide anything: read more.
        case needMore
        /// The first `count` bytes may go upstream (part of a head checked, or of a body).
        case forward(Int)
        /// Not HTTP (or a protocol switched to): relay everything from here on unchecked.
        case relayRest
        /// Refuse the connection, recording this (recorded but not enforced: see ``next(_:enforcing:)``).
        case deny(DecisionRecord)
    }

    let route: Route
    let decider: EgressDecider
    /// The most bytes of a request head (start line and fields) held while it is incomplete.
    let maxHeadBytes: Int
    let maxFields: Int
    /// Request heads cleared so far.
    private(set) var requests = 0
    /// Whether requests were served on this connection before it became a tunnel.
    private let afterRequests: Bool
    /// The body of the last head cleared, while some of it is still to come.
    private var body: BodyFraming?
    /// Whether the last head cleared asked to switch protocols (`Upgrade`).
    private var upgradeAsked = false
    /// The head just denied, when the stream can be followed past it: its length, body framing
    /// and upgrade (see ``next(_:enforcing:)``).
    private var denied: (length: Int, kind: BodyFraming.Kind, upgrade: Bool)?

    /// `afterRequests`: requests were served on this connection before (bytes that are not HTTP
    /// then stop parsing as HTTP, and are denied).
    init(route: Route, decider: EgressDecider, limits: ProxyLimits, afterRequests: Bool = false) {
        self.route = route
        self.decider = decider
        maxHeadBytes = limits.maxHeaderBytes + 8192
        maxFields = limits.maxHeaderCount
        self.afterRequests = afterRequests
    }

    /// What the client's bytes not yet forwarded (`bytes`, from the start of what follows the
    /// last step's forwarded bytes) allow next. Call again after forwarding.
    mutating func next(_ bytes: UnsafeRawBufferPointer) -> Step {
        denied = nil
        guard !bytes.isEmpty else { return .needMore }
        if var framing = body {
            guard let taken = framing.consume(bytes) else {
                return deny("the chunked body of a request in the tunnel to \(target) is malformed; it cannot be followed to the next request")
            }
            body = framing.finished ? nil : framing
            return taken > 0 ? .forward(taken) : .needMore
        }
        // Empty lines before a request line are skipped by servers (nginx skips bare CRs too; a
        // lenient one leading spaces): passed on, and what follows them is decided.
        var blank = 0
        while blank < bytes.count, [13, 10, 32, 9].contains(bytes[blank]) { blank += 1 }
        if blank > 0 { return .forward(blank) }
        switch Self.startsRequest(bytes) {
        case nil:
            return bytes.count > maxHeadBytes ? deny("\(bytes.count) bytes in the tunnel to \(target) begin no request line that ends") : .needMore
        case false?:
            if (requests == 0 && !afterRequests) || upgradeAsked {
                switch Self.lenientlyStartsRequest(bytes) {
                case false?: return .relayRest
                case nil:
                    return bytes.count > maxHeadBytes ? deny("\(bytes.count) bytes in the tunnel to \(target) begin a line that ends too late to tell whether it is a request") : .needMore
                case true?:
                    return deny("the first line in the tunnel to \(target) is no well-formed request line, but a lenient server (python's http.server) reads it as one (its words split by a tab, CR, VT, FF, 0x1C-0x1F, 0x85 or 0xA0, or holding a control character); it cannot be checked")
                }
            }
            return deny("bytes after a request in the tunnel to \(target) are not an HTTP request; with services: in the policy, every request in a plain HTTP tunnel is checked")
        case true?:
            break
        }
        switch RawHead.parse(bytes, maxFields: maxFields) {
        case .incomplete:
            guard bytes.count > maxHeadBytes else { return .needMore }
            return deny("a request head in the tunnel to \(target) is longer than \(maxHeadBytes) bytes")
        case .invalid:
            return deny("a request head in the tunnel to \(target) is malformed (or has more than \(maxFields) fields); it cannot be checked")
        case .complete(let head):
            switch Self.check(head, bytes, route: route, decider: decider) {
            case .denied(let record, let then):
                denied = then.map { (head.length, $0.0, $0.upgrade) }
                return .deny(record)
            case .allowed(let kind, let upgrade):
                return cleared(head.length, kind, upgrade: upgrade)
            }
        }
    }

    /// ``next(_:)``, with each denial recorded by `enforce` (the session's `ProxyState.enforce`):
    /// one it does not enforce (`mode: audit`) is overlooked — the denied head goes upstream as if
    /// it were allowed and the requests after it are still followed (and decided); when the stream
    /// cannot be followed past it, the rest is relayed. Both fronts call this.
    mutating func next(_ bytes: UnsafeRawBufferPointer, enforcing enforce: (DecisionRecord) -> Bool) -> Step {
        let step = next(bytes)
        guard case .deny(let record) = step, !enforce(record) else { return step }
        return overlook()
    }

    private mutating func overlook() -> Step {
        guard let head = denied else { return .relayRest }
        denied = nil
        return cleared(head.length, head.kind, upgrade: head.upgrade)
    }

    private mutating func cleared(_ length: Int, _ kind: BodyFraming.Kind, upgrade: Bool) -> Step {
        requests += 1
        upgradeAsked = upgrade
        body = kind == .none ? nil : BodyFraming(kind)
        return .forward(length)
    }

    /// The `403` a refused tunnel's client gets: only while no request was forwarded here (otherwise
    /// its bytes would be taken for the answer to an earlier request; the requests served before a
    /// captured connection became a tunnel were answered whole); empty then.
    func denialReply(_ record: DecisionRecord) -> [UInt8] {
        requests == 0 ? Array(record.denial.answer(close: true).wireBytes.utf8) : []
    }

    private var target: String { route.hostAndPort }

    private func deny(_ reason: String) -> Step {
        .deny(DecisionRecord(.service, allowed: false, rule: Self.rule, reason: reason, route: route, method: "CONNECT", path: "", service: nil))
    }

    // MARK: Request heads

    /// Whether `bytes` begin a request line as a server would take it: a method (token characters),
    /// spaces, then a target that is origin-form (`/`), `*` or absolute-form (`scheme://`, any
    /// scheme: nginx takes them all), or a line that ends with an HTTP version (`CONNECT host:port
    /// HTTP/1.1`). Nil until the line ends (a line cut after `GET htt` may still name a host), unless
    /// a control character shows before that it is none (git's `0032git-upload-pack /x\0host=…`).
    /// What begins otherwise (a TLS record, an SSH banner, `PING\r\n`) is no HTTP request.
    static func startsRequest(_ bytes: UnsafeRawBufferPointer) -> Bool? {
        var index = 0
        while index < bytes.count, RawHead.isTokenByte(bytes[index]) { index += 1 }
        guard index < bytes.count else { return nil }
        guard index > 0, bytes[index] == 32 else { return false }
        while index < bytes.count, bytes[index] == 32 { index += 1 }
        var lineEnd = index
        while lineEnd < bytes.count, bytes[lineEnd] != 13, bytes[lineEnd] != 10 {
            let byte = bytes[lineEnd]
            if (byte < 32 && byte != 9) || byte == 127 { return false }
            lineEnd += 1
        }
        guard lineEnd < bytes.count, index < lineEnd else { return lineEnd < bytes.count ? false : nil }
        let first = bytes[index]
        if first == UInt8(ascii: "/") || first == UInt8(ascii: "*") { return true }
        if first.isASCIILetter {
            // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then "://"
            var end = index
            while end < lineEnd, bytes[end].isASCIILetter || bytes[end].isASCIIDigit || [43, 45, 46].contains(bytes[end]) { end += 1 }
            if end + 3 <= lineEnd, bytes[end] == 58, bytes[end + 1] == 47, bytes[end + 2] == 47 { return true }
        }
        guard let lastSpace = bytes[index..<lineEnd].lastIndex(of: 32), lastSpace + 6 <= lineEnd else { return false }
        return bytes.equalsIgnoringCase((lastSpace + 1)..<(lastSpace + 6), "http/")
    }

    /// Whether bytes that ``startsRequest(_:)`` found no request line still begin one for a lenient
    /// server: python's http.server splits its first line on any whitespace of Latin-1 (tab, CR, VT,
    /// FF, 0x1C-0x1F, 0x85, 0xA0, leading ones too) and serves `GET target` or `METHOD … HTTP/x`
    /// whatever the words hold (a NUL, a control character). A first word of letters (`_` too)
    /// followed by such a space is held until its line ends (nil); what begins otherwise (TLS, SSH,
    /// git's `0032git-upload-pack …`, a WebSocket frame) is decided at once.
    static func lenientlyStartsRequest(_ bytes: UnsafeRawBufferPointer) -> Bool? {
        var words: [Range<Int>] = []
        var wordStart: Int?
        var index = 0
        while index < bytes.count, bytes[index] != 10 {
            let byte = bytes[index]
            if byte.isLenientSpace {
                if let start = wordStart { words.append(start..<index) }
                wordStart = nil
            } else {
                // The method: letters (a python handler's `do_` name) or `_`.
                if words.isEmpty, !(byte.isASCIILetter || byte == UInt8(ascii: "_")) { return false }
                if wordStart == nil { wordStart = index }
            }
            index += 1
        }
        guard index < bytes.count else { return nil }
        if let start = wordStart { words.append(start..<index) }
        if words.count == 2 { return bytes.string(words[0]) == "GET" }  // HTTP/0.9, python's only method then
        guard words.count >= 3, let version = words.last, version.count >= 5 else { return false }
        return bytes.equalsIgnoringCase(version.lowerBound..<(version.lowerBound + 5), "http/")
    }

    /// What a complete request head in a tunnel to `route` is.
    enum HeadCheck {
        /// It names the tunnel's host: its body's framing, and whether it asks to switch protocols.
        case allowed(BodyFraming.Kind, upgrade: Bool)
        /// Refused; `then`: what ``allowed(_:upgrade:)`` would have said, when the stream can be
        /// followed past it (a denial `mode: audit` records but does not enforce).
        case denied(DecisionRecord, then: (BodyFraming.Kind, upgrade: Bool)?)
    }

    /// Checks a complete request `head` (ranges into `bytes`) sent into a tunnel or a captured
    /// connection to `route`: HTTP/1.0 or 1.1, not `CONNECT`, exactly one `Host`, and every host it
    /// names (the `Host`, the authority of an absolute-form target) normalised, no service and equal
    /// to the route's host; a body framed by one `Content-Length` or by chunked coding (not both).
    /// Also used for each request of the captured plain-HTTP path, which serves bodiless ones itself.
    static func check(_ head: RawHead, _ bytes: UnsafeRawBufferPointer, route: Route, decider: EgressDecider) -> HeadCheck {
        let method = bytes.string(head.start.0)
        let targetText = bytes.string(head.start.1)
        let path = String(targetText.prefix { $0 != "?" }.prefix(512))
        let tunnel = route.hostAndPort
        var followable: (BodyFraming.Kind, upgrade: Bool)?
        func denied(_ reason: String, named host: String? = nil, service: BoundService? = nil) -> HeadCheck {
            .denied(DecisionRecord(.service, allowed: false, rule: rule, reason: reason, route: route, method: String(method.prefix(32)),
                                   path: path, service: service, details: host.map { ["request_host": .string($0)] } ?? [:]), then: followable)
        }
        let http10 = bytes.equalsIgnoringCase(head.start.2, "http/1.0")
        guard http10 || bytes.equalsIgnoringCase(head.start.2, "http/1.1") else {
            return denied("a request in the tunnel to \(tunnel) is not HTTP/1.0 or HTTP/1.1 ('\(bytes.string(head.start.2).prefix(20))'); it cannot be checked")
        }
        guard !bytes.equalsIgnoringCase(head.start.0, "connect") else {
            return denied("a CONNECT request inside the tunnel to \(tunnel) is refused: open each tunnel through stepguard's proxy")
        }
        let malformedLength = "a request in the tunnel to \(tunnel) has a malformed Content-Length; its body cannot be followed"
        var hosts: [String] = []
        var lengths: [Int] = []
        var codings: [String]?
        var upgrade = false
        for (name, value) in head.fields {
            switch name.count {
            case 4 where bytes.equalsIgnoringCase(name, "host"): hosts.append(bytes.string(value))
            case 7 where bytes.equalsIgnoringCase(name, "upgrade"): upgrade = true
            case 14 where bytes.equalsIgnoringCase(name, "content-length"):
                let tokens = bytes.lowercasedTokens(value)
                for token in tokens {
                    guard token.utf8.count <= 15, token.utf8.allSatisfy(\.isASCIIDigit), let length = Int(token) else { return denied(malformedLength) }
                    lengths.append(length)
                }
                if tokens.isEmpty { return denied(malformedLength) }
            case 17 where bytes.equalsIgnoringCase(name, "transfer-encoding"):
                codings = (codings ?? []) + bytes.lowercasedTokens(value)
            default: break
            }
        }
        // The body's framing first (what follows this head), then the hosts it names.
        var unfollowable: String?
        if let codings {
            if lengths.isEmpty, !http10, codings.last == "chunked", codings.filter({ $0 == "chunked" }).count == 1 {
                followable = (.chunked, upgrade)
            } else {
                unfollowable = "a request in the tunnel to \(tunnel) has a Transfer-Encoding (with a Content-Length, not ending in chunked, or in HTTP/1.0) whose body cannot be followed"
            }
        } else if let length = lengths.first {
            if lengths.allSatisfy({ $0 == length }) {
                followable = (length == 0 ? .none : .length(length), upgrade)
            } else {
                unfollowable = "a request in the tunnel to \(tunnel) has differing Content-Length values; its body cannot be followed"
            }
        } else {
            followable = (.none, upgrade)
        }
        guard hosts.count == 1 else {
            let count = hosts.isEmpty ? "no Host field" : "\(hosts.count) Host fields"
            return denied("a request in the tunnel to \(tunnel) has \(count); with services: in the policy, each request in a plain HTTP tunnel must name \(route.host.text) in one Host field")
        }
        var named = hosts
        if let absolute = absoluteAuthority(bytes, head.start.1) {
            guard let authority = absolute else {
                return denied("the request target '\(targetText.prefix(100))' in the tunnel to \(tunnel) is neither origin-form nor an http(s) URL naming a host")
            }
            named.append(authority)
        }
        for text in named {
            guard let split = RequestTarget.splitAuthority(text, defaultPort: route.port), let host = HostName.normalise(split.host) else {
                return denied("the host '\(text.prefix(100))' a request in the tunnel to \(tunnel) names is not a host name", named: String(text.prefix(100)))
            }
            if let service = decider.service(for: host) {
                return denied("a plain HTTP request naming '\(host.text)' (the service \(service.definition.name)) was sent into the tunnel to \(tunnel); reach the service by its name through the proxy (HTTP(S)_PROXY) so its requests are inspected",
                              named: host.text, service: service)
            }
            guard host == route.host else {
                return denied("a plain HTTP request names '\(host.text)', not the tunnel's host \(tunnel); with services: in the policy, each request in a tunnel must name the host it was opened to",
                              named: host.text)
            }
            // A server compares the name as sent, ignoring only ASCII case and a trailing dot (nginx):
            // one that normalises to the tunnel's host only here (`web。example。test`, IDNA's dots, a
            // Kelvin sign) reaches its default virtual host, which may be the service.
            if case .name(let name) = route.host, !Self.isSpelledAsSent(split.host, name) {
                return denied("the host '\(text.prefix(100))' a request in the tunnel to \(tunnel) names is \(name) only after Unicode normalisation; a server would route it elsewhere (its default virtual host)",
                              named: String(text.prefix(100)))
            }
        }
        guard let framing = followable else { return denied(unfollowable ?? "a request's body cannot be followed") }
        return .allowed(framing.0, upgrade: upgrade)
    }

    /// Whether `raw` (a host as sent) is `name` (normalised) to a server: equal but for ASCII case
    /// and one trailing dot.
    private static func isSpelledAsSent(_ raw: String, _ name: String) -> Bool {
        var raw = Array(raw.utf8)
        if raw.last == UInt8(ascii: ".") { raw.removeLast() }
        return raw.count == name.utf8.count && zip(raw, name.utf8).allSatisfy { ($0 >= 65 && $0 <= 90 ? $0 + 32 : $0) == $1 }
    }

    /// The authority of an absolute-form target (`scheme://authority/…`): nil for origin-form or
    /// `*`; `.some(nil)` for any other form, a scheme other than http(s), or user information.
    private static func absoluteAuthority(_ bytes: UnsafeRawBufferPointer, _ target: Range<Int>) -> String?? {
        let text = bytes.string(target)
        if text.hasPrefix("/") || text == "*" { return nil }
        let lower = text.lowercased()
        let scheme = lower.hasPrefix("http://") ? 7 : lower.hasPrefix("https://") ? 8 : 0
        guard scheme > 0 else { return .some(nil) }
        let rest = text.dropFirst(scheme)
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        guard !authority.isEmpty, !authority.contains("@") else { return .some(nil) }
        return .some(String(authority))
    }
}

private extension UInt8 {
    var isASCIILetter: Bool { (self | 0x20) >= UInt8(ascii: "a") && (self | 0x20) <= UInt8(ascii: "z") }
    var isASCIIDigit: Bool { self >= UInt8(ascii: "0") && self <= UInt8(ascii: "9") }
    /// Whitespace to python's `str.split()` on Latin-1 (a line feed ends the line before).
    var isLenientSpace: Bool { self == 32 || (9...13).contains(self) || (28...31).contains(self) || self == 0x85 || self == 0xA0 }
}
