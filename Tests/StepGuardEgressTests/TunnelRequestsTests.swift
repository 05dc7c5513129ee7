import NIOCore
import NIOEmbedded
import StepGuardAudit
import Testing
@testable import StepGuardEgress

/// The plain HTTP requests of a tunnel (or captured connection), followed head by head when the
/// policy names services: each must name the tunnel's host and no service, in every spelling a
/// server would route by, and what cannot be followed is denied.
@Suite struct TunnelRequestsTests {
    let decider: EgressDecider
    let tunnel: Route

    init() throws {
        let core = DecisionCoreTests()
        decider = try core.decider("egress: { default: allow }\n" + DecisionCoreTests.vaultService)
        tunnel = try core.route("web.example", 80, "192.0.2.4")
    }

    /// What following `chunks` (sent one after the other) gives: the bytes forwarded, and how it ended.
    enum Outcome: Equatable {
        case following(forwarded: String)
        case relayed(forwarded: String)
        case denied(forwarded: String, reason: String, rule: String, service: String?)
    }

    func follow(_ chunks: [String], afterRequests: Bool = false) -> Outcome {
        follow(bytes: chunks.map { Array($0.utf8) }, afterRequests: afterRequests)
    }

    /// ``follow(_:afterRequests:)`` for bytes that are not UTF-8 (0x85, 0xA0 alone); outcomes hold them decoded.
    func follow(bytes chunks: [[UInt8]], afterRequests: Bool = false) -> Outcome {
        var requests = TunnelRequests(route: tunnel, decider: decider, limits: ProxyLimits(), afterRequests: afterRequests)
        var held: [UInt8] = []
        var forwarded: [UInt8] = []
        for chunk in chunks {
            held += chunk
            while !held.isEmpty {
                switch held.withUnsafeBytes({ requests.next($0) }) {
                case .needMore: break
                case .forward(let count):
                    #expect(count > 0 && count <= held.count)
                    forwarded += held.prefix(count)
                    held.removeFirst(count)
                    continue
                case .relayRest:
                    return .relayed(forwarded: String(decoding: forwarded + held, as: UTF8.self))
                case .deny(let record):
                    #expect(!record.allowed && record.type == .service)
                    return .denied(forwarded: String(decoding: forwarded, as: UTF8.self), reason: record.reason, rule: record.rule, service: record.service)
                }
                break
            }
        }
        return .following(forwarded: String(decoding: forwarded, as: UTF8.self))
    }

    func isDenied(_ outcome: Outcome, forwarded expected: String = "", naming text: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
        guard case .denied(let forwarded, let reason, let rule, _) = outcome else {
            Issue.record("not denied: \(outcome)", sourceLocation: sourceLocation)
            return
        }
        #expect(forwarded == expected, sourceLocation: sourceLocation)
        #expect(rule == TunnelRequests.rule, sourceLocation: sourceLocation)
        if let text { #expect(reason.contains(text), "\(reason)", sourceLocation: sourceLocation) }
    }

    @Test func requestsNamingTheTunnelsHostPassWithTheirBodiesInEverySpelling() {
        let requests = [
            "GET /a HTTP/1.1\r\nHost: web.example\r\n\r\n",
            "POST /b HTTP/1.1\r\nhost: WEB.Example.:80\r\nContent-Length: 5\r\n\r\nhello",
            "PUT /c HTTP/1.1\r\nHOST: web.example\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\nT: 1\r\n\r\n",
            "\r\nGET http://web.example/d HTTP/1.1\r\nHost: web.example:80\r\n\r\n",
            "GET /e HTTP/1.0\r\nHost: web.example\r\nContent-Length: 0\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\nHost: web.example\r\n\r\n",
        ]
        let all = requests.joined()
        #expect(follow([all]) == .following(forwarded: all))
        // Split at every byte: heads, chunk sizes and bodies across segments.
        #expect(follow(all.map { String($0) }) == .following(forwarded: all))
    }

    @Test func aHostOrAbsoluteTargetNamingAServiceOrAnotherHostIsDenied() {
        for (head, naming) in [
            ("GET /v1/secret HTTP/1.1\r\nHost: vault.example\r\n\r\n", "hashicorp-vault"),
            ("GET /v1/secret HTTP/1.1\r\nHost: VAULT.example.:8200\r\n\r\n", "hashicorp-vault"),
            ("GET http://vault.example/v1/secret HTTP/1.1\r\nHost: web.example\r\n\r\n", "hashicorp-vault"),
            ("GET HTTPS://vault.example:443/v1 HTTP/1.1\r\nHost: web.example\r\n\r\n", "hashicorp-vault"),
            ("GET / HTTP/1.1\r\nHost: other.example\r\n\r\n", "not the tunnel's host"),
            ("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", "not the tunnel's host"),
            ("GET / HTTP/1.1\r\nHost: 192.0.2.4\r\n\r\n", "not the tunnel's host"),
        ] {
            isDenied(follow([head]), naming: naming)
        }
        guard case .denied(_, _, _, let service) = follow(["GET / HTTP/1.1\r\nHost: vault.example\r\n\r\n"]) else { return }
        #expect(service == "hashicorp-vault")
    }

    @Test func headsThatCannotBeCheckedAreDenied() {
        for head in [
            "GET / HTTP/1.0\r\n\r\n",  // no Host: the server's default virtual host
            "GET / HTTP/1.1\r\nHost: web.example\r\nHost: vault.example\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: web.example\r\n vault.example\r\n\r\n",  // obs-fold
            "GET / HTTP/1.1\r\nHost : vault.example\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: user@vault.example\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: web.example vault.example\r\n\r\n",
            "GET  /x HTTP/1.1\r\nHost: web.example\r\n\r\n",
            "GET ftp://web.example/ HTTP/1.1\r\nHost: web.example\r\n\r\n",
            "GET http://x@web.example/ HTTP/1.1\r\nHost: web.example\r\n\r\n",
            "CONNECT web.example:80 HTTP/1.1\r\nHost: web.example\r\n\r\n",
            "GET vault.example:8200 HTTP/1.1\r\nHost: web.example\r\n\r\n",  // authority-form, which a proxy at the other end takes
            "GET / HTTP/2.0\r\nHost: web.example\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: web.example\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: web.example\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: web.example\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: web.example\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            "POST / HTTP/1.0\r\nHost: web.example\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            isDenied(follow([head]))
        }
        // A head that never ends within the limit is denied, not held for ever.
        isDenied(follow(["GET / HTTP/1.1\r\nHost: web.example\r\nX: " + String(repeating: "a", count: 48 * 1024)]), naming: "longer than")
        // A bare-LF head is held (nothing of it forwarded) until it is denied.
        #expect(follow(["GET / HTTP/1.1\nHost: vault.example\n\n"]) == .following(forwarded: ""))
    }

    @Test func everyLaterRequestIsCheckedAfterTheBodyBeforeIt() {
        let first = "GET /a HTTP/1.1\r\nHost: web.example\r\n\r\n"
        let sized = "POST /b HTTP/1.1\r\nHost: web.example\r\nContent-Length: 40\r\n\r\n" + "GET /x HTTP/1.1\r\nHost: vault.example\r\n\r\n"
        let chunked = "POST /c HTTP/1.1\r\nHost: web.example\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nGET \r\n0\r\n\r\n"
        let later = "GET /v1/secret HTTP/1.1\r\nHost: vault.example\r\n\r\n"
        isDenied(follow([first + later]), forwarded: first, naming: "hashicorp-vault")
        isDenied(follow([first, sized, chunked, later]), forwarded: first + sized + chunked, naming: "hashicorp-vault")
        isDenied(follow((first + sized + chunked + later).map { String($0) }), forwarded: first + sized + chunked, naming: "hashicorp-vault")
        // A chunked body that does not parse cannot be followed to the next head.
        isDenied(follow([first + "POST / HTTP/1.1\r\nHost: web.example\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]), forwarded: first + "POST / HTTP/1.1\r\nHost: web.example\r\nTransfer-Encoding: chunked\r\n\r\n", naming: "chunked")
    }

    @Test func bytesThatAreNoHTTPAreRelayedOnlyBeforeTheFirstRequestOrAfterAnUpgrade() {
        #expect(follow(["SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n"]) == .relayed(forwarded: "SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n"))
        #expect(follow(["PING\r\n"]) == .relayed(forwarded: "PING\r\n"))
        #expect(follow(["\u{0}\u{0}\u{0}\u{8}binary"]) == .relayed(forwarded: "\u{0}\u{0}\u{0}\u{8}binary"))
        #expect(follow(["GET"]) == .following(forwarded: ""), "too few bytes to tell")
        #expect(follow(["GET htt"]) == .following(forwarded: ""), "a line cut where it may still become absolute-form")
        #expect(follow(["HELO builder"]) == .following(forwarded: ""), "held until the line ends")
        #expect(follow(["HELO builder\r\n"]) == .relayed(forwarded: "HELO builder\r\n"))
        let git = "0032git-upload-pack /project.git\u{0}host=web.example\u{0}"
        #expect(follow([git]) == .relayed(forwarded: git), "a control character in the first line: no HTTP")
        // Leading empty lines (nginx skips bare CRs too) do not hide a request line.
        isDenied(follow(["\r\r\n\nGET / HTTP/1.1\r\nHost: vault.example\r\n\r\n"]), forwarded: "\r\r\n\n")
        isDenied(follow([" \tGET / HTTP/1.1\r\nHost: vault.example\r\n\r\n"]), forwarded: " \t")
        let first = "GET /a HTTP/1.1\r\nHost: web.example\r\n\r\n"
        isDenied(follow([first + "\u{0}binary"]), forwarded: first, naming: "not an HTTP request")
        isDenied(follow(["\u{0}binary"], afterRequests: true), naming: "not an HTTP request")
        // An upgrade: a WebSocket frame after it is relayed; a request line is still checked.
        let upgrade = "GET /ws HTTP/1.1\r\nHost: web.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        #expect(follow([upgrade, "\u{81}\u{85}mask hello"]) == .relayed(forwarded: upgrade + "\u{81}\u{85}mask hello"))
        isDenied(follow([upgrade, "GET / HTTP/1.1\r\nHost: vault.example\r\n\r\n"]), forwarded: upgrade)
    }

    /// A first line python's http.server splits on other whitespace (tab, CR, VT, FF, 0x1C-0x1F,
    /// 0x85, 0xA0) or whose target holds a control character is a request to it: denied, not relayed
    /// as bytes that are no HTTP (they were, and reached the service behind a lenient front-end).
    @Test func aRequestLineOnlyALenientServerReadsIsDenied() {
        let head = "Host: vault.example\r\n\r\n"
        for line in ["GET\t/v1/secret\tHTTP/1.1", "\u{0C}GET / HTTP/1.1", "\u{0B}GET /\u{1F}HTTP/1.1", "GET\r/ HTTP/1.1",
                     "GET / HTTP/1.1\u{0B}", "GET /\u{0}x HTTP/1.1", "post\t/ http/1.0", "GET\t/"] {
            isDenied(follow([line + "\r\n" + head]), naming: "lenient server")
            isDenied(follow((line + "\r\n" + head).map { String($0) }), naming: "lenient server")
        }
        for prefix: [UInt8] in [[0xA0], [0x85], [0x1C, 0x1D, 0x1E]] {
            isDenied(follow(bytes: [prefix + Array("GET / HTTP/1.1\r\n\(head)".utf8)]), naming: "lenient server")
            isDenied(follow(bytes: [Array("GET".utf8) + prefix + Array("/ HTTP/1.1\r\n\(head)".utf8)]), naming: "lenient server")
        }
        // After an upgrade the server did not grant, too.
        let upgrade = "GET /ws HTTP/1.1\r\nHost: web.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        isDenied(follow([upgrade, "GET\t/ HTTP/1.1\r\n" + head]), forwarded: upgrade, naming: "lenient server")
        // Held until the line ends once a method and a space began it; what python refuses is relayed.
        #expect(follow(["\u{0C}GET /v1"]) == .following(forwarded: ""))
        #expect(follow(["\u{0C}PING\r\n"]) == .relayed(forwarded: "\u{0C}PING\r\n"))
        #expect(follow(["HEAD\t/\r\n"]) == .relayed(forwarded: "HEAD\t/\r\n"), "HTTP/0.9 is GET only")
        #expect(follow(["SSH-2.0-x\tHTTP/1.1\r\n"]) == .relayed(forwarded: "SSH-2.0-x\tHTTP/1.1\r\n"))
        #expect(follow(bytes: [[0x16, 0x03, 0x01, 0x00, 0x05]]) == .relayed(forwarded: "\u{16}\u{3}\u{1}\u{0}\u{5}"))
        isDenied(follow(["\u{0C}GET / " + String(repeating: "a", count: 48 * 1024)]), naming: "too late")
    }

    /// A host that is the tunnel's only after Unicode normalisation (IDNA's dots, a Kelvin sign for
    /// `k`) is another name to a server, which routes it to its default virtual host: denied. ASCII
    /// case, a trailing dot and a port still do not matter.
    @Test func aHostThatIsTheTunnelsOnlyAfterNormalisationIsDenied() throws {
        for head in [
            "GET / HTTP/1.1\r\nHost: web\u{3002}example\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: web\u{FF0E}example:80\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: web\u{FF61}example.\r\n\r\n",
            "GET http://web\u{3002}example/ HTTP/1.1\r\nHost: web.example\r\n\r\n",
        ] {
            isDenied(follow([head]), naming: "Unicode normalisation")
        }
        let kelvin = try DecisionCoreTests().route("kms.example", 80, "192.0.2.4")
        var requests = TunnelRequests(route: kelvin, decider: decider, limits: ProxyLimits())
        let head = Array("GET / HTTP/1.1\r\nHost: \u{212A}ms.example\r\n\r\n".utf8)
        guard case .deny(let record) = head.withUnsafeBytes({ requests.next($0) }) else {
            Issue.record("a Kelvin sign for k passed")
            return
        }
        #expect(record.reason.contains("Unicode normalisation"), "\(record.reason)")
        let fine = "GET / HTTP/1.1\r\nHost: WEB.Example.:8080\r\n\r\n"
        #expect(follow([fine]) == .following(forwarded: fine))
    }

    /// `mode: audit` records a denial without enforcing it: the denied head goes on as if allowed
    /// and every later request is still decided; what cannot be followed is relayed.
    @Test func anOverlookedDenialKeepsFollowingTheRequests() {
        var requests = TunnelRequests(route: tunnel, decider: decider, limits: ProxyLimits())
        let stream = "GET /a HTTP/1.1\r\nHost: vault.example\r\nContent-Length: 3\r\n\r\nabc" + "GET /b HTTP/1.1\r\nHost: web.example\r\n\r\n"
            + "POST /c HTTP/1.1\r\nHost: other.example\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n" + "GET /d HTTP/1.0\r\n\r\n"
            + "\u{0}binary"
        var held = Array(stream.utf8)
        var forwarded: [UInt8] = []
        var reasons: [String] = []
        loop: while !held.isEmpty {
            let step = held.withUnsafeBytes { bytes in
                requests.next(bytes) { record in
                    reasons.append(record.reason)
                    return false  // mode: audit
                }
            }
            switch step {
            case .forward(let count):
                forwarded += held.prefix(count)
                held.removeFirst(count)
            case .relayRest:
                forwarded += held
                break loop
            case .needMore, .deny:
                Issue.record("\(step)")
                break loop
            }
        }
        #expect(String(decoding: forwarded, as: UTF8.self) == stream)
        #expect(reasons.count == 4, "\(reasons)")
        #expect(reasons.first?.contains("hashicorp-vault") == true && reasons.last?.contains("not an HTTP request") == true, "\(reasons)")
    }

    /// The NIO front's tunnel gate passes on only what is cleared, keeps following after the first
    /// request, and answers a denied first request with a `403`.
    @Test func theNIOTunnelGateFollowsEveryRequest() throws {
        var records: [DecisionRecord] = []
        func gate() -> FirstBytesGate {
            FirstBytesGate { [tunnel, decider] _ in
                .follow(TunnelRequests(route: tunnel, decider: decider, limits: ProxyLimits()), enforce: { records.append($0); return true })
            }
        }
        let first = "GET /a HTTP/1.1\r\nHost: web.example\r\nContent-Length: 3\r\n\r\nabc"
        let channel = try FirstBytesGateTests.channel(gate())
        try FirstBytesGateTests.send(channel, Array((first + "GET /b HTTP/1.1\r\nHo").utf8)[...])
        var passed: [UInt8] = []
        while let buffer = try channel.readInbound(as: ByteBuffer.self) { passed += buffer.readableBytesView }
        #expect(String(decoding: passed, as: UTF8.self) == first)
        try FirstBytesGateTests.send(channel, Array("st: vault.example\r\n\r\n".utf8)[...])
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil, "a response may be in flight: no 403, just closed")
        #expect(!channel.isActive)
        #expect(records.count == 1 && records.first?.service == "hashicorp-vault")

        let denied = try FirstBytesGateTests.channel(gate())
        try FirstBytesGateTests.send(denied, Array("GET / HTTP/1.1\r\nHost: vault.example\r\n\r\n".utf8)[...])
        let reply = try #require(try denied.readOutbound(as: ByteBuffer.self))
        let text = String(decoding: reply.readableBytesView, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 403 Forbidden\r\n") && text.contains("X-StepGuard-Decision: deny"), "\(text)")
        #expect(try denied.readInbound(as: ByteBuffer.self) == nil)
    }
}
