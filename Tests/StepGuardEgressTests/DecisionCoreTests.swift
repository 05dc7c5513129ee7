import Foundation
import NIOCore
import StepGuardPolicy
import Testing
@testable import StepGuardEgress

/// The egress decision core (Decision/) on plain values: no socket, no event loop, no clock but
/// the one each test passes in. The fronts only move bytes and ask these.
@Suite struct DecisionCoreTests {
    func decider(_ yaml: String) throws -> EgressDecider {
        let policy = try Egress.policy("version: 1\n" + yaml)
        return EgressDecider(egress: policy.egress, services: try ServiceCatalog.builtIn.bind(policy.services), resolveOverrides: policy.network.resolve)
    }

    /// `services:` naming Vault at vault.example, any credential allowed.
    static let vaultService = """
    services:
      - service: hashicorp-vault
        hosts: [vault.example]
        allow: { credential: any }
    """

    func route(_ host: String, _ port: UInt16, _ address: String) throws -> Route {
        let normalised = try #require(HostName.normalise(host))
        let ip = try #require(IPAddress(address))
        return Route(host: normalised, port: port, addresses: [ip], connectAddress: try SocketAddress(ipAddress: address, port: Int(port)))
    }

    // MARK: Request targets

    /// A captured connection to a bare address names its host in its first bytes: TLS by its SNI,
    /// HTTP by its one Host; anything else, or an address, names none.
    @Test func capturedConnectionsNameTheirHostByTheirSNIOrHost() {
        func find(_ bytes: [UInt8]) -> CapturedName.Outcome { bytes.withUnsafeBytes { CapturedName.find(in: $0, maxFields: 100) } }
        let hello = InterceptedSNIGuardTests.records(InterceptedSNIGuardTests.clientHelloBody(
            extensions: [InterceptedSNIGuardTests.serverNameExtension("Builds.Example.TEST.")]), fragment: 60)
        #expect(find(hello) == .named(.name("builds.example.test")))
        #expect(find(Array(hello.prefix(70))) == .needMore, "a ClientHello spread over records is read whole")
        let noName = InterceptedSNIGuardTests.records(InterceptedSNIGuardTests.clientHelloBody(extensions: [(10, [0, 2, 0, 29])]))
        #expect(find(noName) == .unnamed)
        let byAddress = InterceptedSNIGuardTests.records(InterceptedSNIGuardTests.clientHelloBody(
            extensions: [InterceptedSNIGuardTests.serverNameExtension("192.0.2.7")]))
        #expect(find(byAddress) == .unnamed, "an address in the SNI names no host")
        #expect(find(Array("GET /x HTTP/1.1\r\nHost: mirror.example.test:8080\r\nAccept: */*\r\n\r\n".utf8)) == .named(.name("mirror.example.test")))
        #expect(find(Array("GET /x HTTP/1.1\r\nHost: mirror.example.test\r\n".utf8)) == .needMore)
        #expect(find(Array("GET /x HTTP/1.1\r\nHost: a.example.test\r\nHost: b.example.test\r\n\r\n".utf8)) == .unnamed, "two Hosts name none")
        #expect(find(Array("GET /x HTTP/1.1\r\n\r\n".utf8)) == .unnamed)
        #expect(find(Array("SSH-2.0-OpenSSH_9.2\r\n".utf8)) == .needMore, "not yet a head")
        #expect(find([UInt8](repeating: 0x41, count: CapturedName.maxBuffered + 1)) == .unnamed, "bounded")
        #expect(CapturedName.clientSpeaksFirst(port: 443) && !CapturedName.clientSpeaksFirst(port: 22))
    }

    @Test func absoluteFormTargetsAreParsedOrRefusedWithTheirReason() throws {
        let target = try RequestTarget.absolute("http://Example.COM:8080/a/b?token=x#frag")
        #expect(target.host.text == "example.com" && target.port == 8080)
        #expect(target.originForm == "/a/b?token=x" && target.path == "/a/b" && target.authority == "Example.COM:8080")
        #expect(try RequestTarget.absolute("http://example.com?q=1").originForm == "/?q=1")
        for (uri, reason) in [("https://example.com/", "through CONNECT"), ("/relative", "forward proxy"),
                              ("http://user:pw@example.com/", "user information"), ("http://exa mple.com/", "not a valid host")] {
            #expect(throws: ProxyFailure.self, "\(uri)") { try RequestTarget.absolute(uri) }
            do { _ = try RequestTarget.absolute(uri) } catch {
                #expect(error.status == .badRequest && error.reason.contains(reason) && error.rule == "built-in: request target", "\(uri)")
            }
        }
    }

    @Test func connectTargetsNeedAPort() throws {
        #expect(try RequestTarget.connect("[::1]:443").host.text == "::1")
        #expect(RequestTarget.splitAuthority("example.com", defaultPort: nil) == nil)
        #expect(RequestTarget.splitAuthority("a:b:443", defaultPort: nil) == nil)
        #expect(RequestTarget.splitAuthority("example.com:0", defaultPort: nil) == nil)
        #expect(RequestTarget.splitAuthority("example.com:+443", defaultPort: nil) == nil)
        #expect(throws: ProxyFailure.self) { try RequestTarget.connect("example.com") }
    }

    @Test func anInterceptedRequestMustNameItsConnectTargetInEveryHost() throws {
        let vault = try route("vault.example", 8200, "192.0.2.5")
        #expect(try RequestTarget.intercepted("/v1/secret", hostFields: ["VAULT.example:8200"], route: vault).authority == "vault.example:8200")
        #expect(try RequestTarget.intercepted("https://vault.example:8200/v1/x", hostFields: ["vault.example:8200"], route: vault).path == "/v1/x")
        for (uri, hosts) in [("/v1/x", ["evil.example:8200"]), ("/v1/x", []), ("/v1/x", ["vault.example:8200", "evil.example:8200"]),
                             ("https://evil.example:8200/v1/x", ["vault.example:8200"])] {
            do {
                _ = try RequestTarget.intercepted(uri, hostFields: hosts, route: vault)
                Issue.record("accepted \(uri) with Host \(hosts)")
            } catch {
                #expect(error.status == .forbidden && error.decision == "deny" && error.rule == RequestTarget.hostRule)
            }
        }
    }

    // MARK: Framing

    @Test func framingThatTwoParsersCouldReadDifferentlyIsRefused() {
        let limits = ProxyLimits()
        let cases: [([(name: String, value: String)], String?)] = [
            ([("Host", "a"), ("Content-Length", "3")], nil),
            ([("Transfer-Encoding", "gzip, chunked")], nil),
            ([("Content-Length", "3"), ("transfer-encoding", "chunked")], "both Content-Length and Transfer-Encoding"),
            ([("Content-Length", "3"), ("Content-Length", "4")], "conflicting Content-Length"),
            ([("Content-Length", "3, 3")], nil),
            ([("Transfer-Encoding", "chunked, gzip")], "must end with chunked"),
            (Array(repeating: ("X-A", "1"), count: limits.maxHeaderCount + 1), "header fields"),
            ([("X-Big", String(repeating: "a", count: limits.maxHeaderBytes))], "bytes"),
        ]
        for (fields, expected) in cases {
            let refusal = RequestFraming.refusal(fields, limits: limits)
            if let expected {
                #expect(refusal?.reason.contains(expected) == true, "\(fields.prefix(2))")
            } else {
                #expect(refusal == nil, "\(fields)")
            }
        }
    }

    @Test func hopByHopFieldsAndThoseConnectionNamesAreNotForwarded() throws {
        let plain: [(name: String, value: String)] = [("Host", "a"), ("Accept", "*/*")]
        #expect(HopByHop.forwarded(plain) == nil, "nothing to drop: no copy")
        let fields: [(name: String, value: String)] = [("Connection", "close, X-Secret"), ("x-secret", "1"), ("Keep-Alive", "5"), ("Accept", "*/*")]
        #expect(try #require(HopByHop.forwarded(fields)).map(\.name) == ["Accept"])
        #expect(RequestRetry.allowed(method: "GET") && !RequestRetry.allowed(method: "POST"))
    }

    // MARK: Connections

    @Test func aConnectionDecisionCarriesItsActionAndRecord() throws {
        let decider = try decider("egress: { default: deny, allow: [allowed.example] }\n" + Self.vaultService)
        // Documentation addresses (RFC 5737): values only, nothing connects to them.
        let allowed = try route("allowed.example", 443, "192.0.2.1")
        let tunnel = decider.decide(allowed, .connect)
        guard case .tunnel = tunnel.action else { Issue.record("\(tunnel.action)"); return }
        #expect(tunnel.record?.allowed == true && tunnel.record?.type == .egress && tunnel.record?.subject["method"] == .string("CONNECT"))

        let denied = decider.decide(try route("other.example", 80, "192.0.2.2"), .request(method: "GET", path: "/x"))
        #expect(denied.record?.allowed == false && denied.record?.rule == "egress.default: deny")
        #expect(denied.record?.denial.status == .forbidden && denied.record?.subject["path"] == .string("/x"))

        let vault = try route("vault.example", 8200, "192.0.2.3")
        guard case .intercept(let service, let name) = decider.decide(vault, .connect).action else { Issue.record("not intercepted"); return }
        #expect(service.definition.name == "hashicorp-vault" && name == "vault.example")
        let plain = decider.decide(vault, .request(method: "GET", path: "/v1/x"))
        guard case .inspect = plain.action else { Issue.record("\(plain.action)"); return }
        #expect(plain.record == nil, "each request to a service is decided, and recorded, on its own")
    }

    @Test func aServiceAddressReachedByAnotherNameIsRefusedEvenWhenRemembered() throws {
        let decider = try decider("egress: { default: allow }\n" + Self.vaultService)
        let alias = try route("alias.example", 8200, "192.0.2.3")
        let remembered = decider.verdict(for: alias)
        #expect(remembered.allowed, "nothing learned yet")
        _ = decider.decide(try route("vault.example", 8200, "192.0.2.3"), .connect)  // learns the service's address
        let again = decider.decide(alias, .connect, remembered: remembered)
        #expect(again.record?.allowed == false && again.record?.rule == EgressDecider.serviceAddressRule)
    }

    @Test func namesDeniedWhateverTheyResolveToAreRecordedWithoutAddresses() throws {
        let decider = try decider("egress: { default: deny, allow: [github.com] }")
        let host = try #require(HostName.normalise("exfil.attacker.test"))
        let record = try #require(decider.decideBeforeResolving(host: host, port: 443, .connect))
        #expect(!record.allowed && record.addresses.isEmpty && record.subject["address"] == .string(""))
        #expect(decider.decideBeforeResolving(host: try #require(HostName.normalise("github.com")), port: 443, .connect) == nil)
    }

    @Test func aTunnelWhoseClientHelloNamesAnotherHostIsDenied() throws {
        let decider = try decider("egress: { default: allow }\n" + Self.vaultService)
        let tunnel = try route("cdn.example", 443, "192.0.2.4")
        func decide(_ sni: String?) -> TunnelStart.Verdict {
            let body = InterceptedSNIGuardTests.clientHelloBody(extensions: sni.map { [InterceptedSNIGuardTests.serverNameExtension($0)] } ?? [])
            return InterceptedSNIGuardTests.records(body).withUnsafeBytes { TunnelStart.decide($0, route: tunnel, decider: decider) }
        }
        guard case .pass = decide("cdn.example") else { Issue.record("own name denied"); return }
        for (sni, reason) in [("vault.example", "names the service hashicorp-vault"), ("other.example", "differs"), (nil, "names no server")] {
            guard case .deny(let record) = decide(sni) else { Issue.record("\(sni ?? "no SNI") passed"); continue }
            #expect(record.reason.contains(reason) && record.rule == TunnelStart.rule && record.type == .service)
        }
        guard case .needMore = [UInt8]([0x16, 0x03]).withUnsafeBytes({ TunnelStart.decide($0, route: tunnel, decider: decider) }) else {
            Issue.record("decided on two bytes"); return
        }
        guard case .plain = [UInt8]("GET / HTTP/1.1\r\n\r\n".utf8).withUnsafeBytes({ TunnelStart.decide($0, route: tunnel, decider: decider) }) else {
            Issue.record("plain bytes not handed to TunnelRequests"); return
        }
    }

    // MARK: Answers and the pool

    @Test func answersRenderThemselves() throws {
        let answer = ProxyFailure(status: .headersTooLarge, reason: "too \"big\"", decision: "error", rule: "built-in: header limits").answer(close: true)
        let wire = answer.wireBytes
        #expect(wire.hasPrefix("HTTP/1.1 431 Request Header Fields Too Large\r\n"))
        #expect(wire.contains("X-StepGuard-Decision: error\r\n") && wire.contains("Connection: close\r\n"))
        let body = try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any]
        #expect(body?["reason"] as? String == "too \"big\"" && body?["status"] as? Int == 431)
        #expect(ProxyAnswer(.forbidden, decision: "deny", rule: "r", reason: "x", close: false).body.contains("do not retry"))
    }

    @Test func theIdlePoolKeepsYoungConnectionsPerKeyAndSweepsOldOnes() {
        var pool = IdlePool<Int>()
        var closed: [Int] = []
        let kept = (0..<IdlePool<Int>.maxIdlePerKey).map { pool.put($0, key: "a", now: 0) }
        #expect(kept.allSatisfy { $0 })
        let overflow = pool.put(99, key: "a", now: 0)
        #expect(!overflow, "full: the caller closes it")
        let young = pool.put(7, key: "b", now: 1_000_000_000)
        #expect(young)
        let first = pool.take("a", now: 10, usable: { _ in true }, close: { closed.append($0) })
        #expect(first == IdlePool<Int>.maxIdlePerKey - 1, "most recent first")
        let top = IdlePool<Int>.maxIdlePerKey - 1
        let usable = pool.take("a", now: 10, usable: { $0 % 4 == 0 }, close: { closed.append($0) })
        #expect(usable == top - 3)
        #expect(closed == [top - 1, top - 2], "the unusable ones met on the way are closed")
        closed = []
        pool.sweep(now: IdlePool<Int>.maxIdleAge, close: { closed.append($0) })
        #expect(closed.count == IdlePool<Int>.maxIdlePerKey - 4 && pool.count == 1, "only b is young enough")
        let removed = pool.remove { $0 == 7 }
        #expect(removed == 7 && pool.count == 0)
        let none = pool.take("b", now: 0, usable: { _ in true }, close: { _ in })
        #expect(none == nil)
    }
}
