import FoundationEssentials
import Glibc
import StepGuardAudit
import StepGuardCore
import StepGuardPolicy
import Synchronization

/// The isolated step's DNS resolver (issue #18). Inside the step's network namespace every query
/// reaches it (`/etc/resolv.conf` names 127.0.0.53, and every address is local); it answers
/// from the policy, never forwarding what the policy denies:
///
/// - Query types other than A, AAAA, CNAME, HTTPS and SRV: REFUSED.
/// - A name the policy denies (``EgressDecider/decideName(_:)``): NXDOMAIN and one `deny` event per
///   name, a violation like a denied CONNECT; nothing about the name leaves stepguard. In
///   `mode: audit` the name is resolved and answered, and the deny is recorded.
/// - Any other name: looked up (`network.resolve`, then `network.dns`, else the host's resolver);
///   nonexistent is NXDOMAIN; an existing name is answered with addresses from the session's
///   ``AddressPool``, which stand for the name (``name(for:)``) so that a connection to one is
///   decided on the name. AAAA only when the name has IPv6 addresses, so that the step takes the
///   same address families as it would without stepguard. CNAME and HTTPS: NODATA (the alias
///   chain and service bindings stay hidden: the pool address is the whole answer). SRV: relayed.
/// - Results are cached (bounded); answers carry a short TTL since a pool address never changes.
///
/// Its sockets are served on its own threads (one epoll loop, a few lookup threads, a thread per
/// TCP connection), not on the proxy's event loops. See StepResolver+Sockets.swift.
final class StepResolver: CaptureResolver {
    /// Sizes and times (the defaults suit CI steps; tests shorten them).
    struct Limits: Sendable {
        /// TTL of the answers (a pool address never changes; short so that nothing outlives the session).
        var answerTTL: UInt32 = 5
        /// How long a found name stays cached (nanoseconds).
        var positiveCache: UInt64 = 300 * 1_000_000_000
        /// How long NXDOMAIN and NODATA stay cached (nanoseconds).
        var negativeCache: UInt64 = 30 * 1_000_000_000
        /// Most cached answers.
        var cacheEntries = 8192
        /// Most names the address pool gives addresses to.
        var poolCapacity = (1 << 17) - 2
        /// Seconds an upstream DNS exchange may take.
        var upstreamTimeout = 2.0
        /// Threads that look names up (getaddrinfo blocks).
        var lookupThreads = 4
        /// Most queries waiting for a lookup thread; beyond, SERVFAIL.
        var pendingLookups = 1024
        /// Most DNS-over-TCP connections at once.
        var tcpConnections = 64
        /// Seconds a DNS-over-TCP connection may stay idle.
        var tcpIdleSeconds = 10
        /// Most denied names recorded one by one; beyond, one more event says so and later ones are
        /// refused without a record (a step inventing names cannot grow the audit log without bound).
        var recordedDeniedNames = 4096
        /// How often (nanoseconds) a dropped-UDP destination is reported at most.
        var dropReportInterval: UInt64 = 60 * 1_000_000_000
        /// Most dropped-UDP destinations reported one by one per ``dropReportInterval``; beyond,
        /// one event says so (and one more, a violation, for the first that TCP would be denied
        /// too): a step sending to ever new ports or addresses cannot grow the audit log without bound.
        var dropReportDestinations = 256

        init() {}
    }

    let decider: EgressDecider
    /// The names `network.resolve` maps (at any port), with the addresses they map to.
    let overrides: [String: [IPAddress]]
    let resolveOverrides: [HostPort: HostPort]
    let lookup: NameLookup
    let trail: AuditTrail
    let auditOnly: Bool
    /// Records a decision and applies `on_violation`; true when the action must be blocked.
    let enforce: @Sendable (DecisionRecord) -> Bool
    let limits: Limits
    let pool: Mutex<AddressPool>
    private let cache: Mutex<AnswerCache>
    private let recordedNames = Mutex<Set<String>>([])
    /// The machine's own names (its host name, with and without its domain), answered with loopback.
    let ownNames: Set<String>
    private let dropReports = Mutex(DropReports())
    /// The sockets' threads (StepResolver+Sockets.swift).
    let io: ResolverIO

    /// A resolver for the session of `state` (its decisions, `network.resolve`, audit trail, mode
    /// and `on_violation`), looking names up through `dns` (the policy's `network.dns`; nil: the host's resolver).
    convenience init(state: ProxyState, dns: HostPort?, limits: Limits = Limits()) throws(EgressError) {
        try self.init(decider: state.decider, resolveOverrides: state.resolveOverrides, dns: dns, trail: state.trail, auditOnly: state.auditOnly,
                      limits: limits, enforce: { state.enforce($0) })
    }

    init(decider: EgressDecider, resolveOverrides: [HostPort: HostPort], dns: HostPort?, trail: AuditTrail, auditOnly: Bool,
         limits: Limits = Limits(), enforce: @escaping @Sendable (DecisionRecord) -> Bool) throws(EgressError) {
        self.decider = decider
        self.resolveOverrides = resolveOverrides
        var overrides: [String: [IPAddress]] = [:]
        for (from, to) in resolveOverrides {
            guard let address = IPAddress(to.host)?.unmapped else { continue }
            if !overrides[from.host, default: []].contains(address) { overrides[from.host, default: []].append(address) }
        }
        self.overrides = overrides
        self.lookup = NameLookup(upstream: dns, timeout: limits.upstreamTimeout)
        self.trail = trail
        self.auditOnly = auditOnly
        self.enforce = enforce
        self.limits = limits
        self.pool = Mutex(AddressPool(capacity: limits.poolCapacity))
        self.cache = Mutex(AnswerCache(capacity: limits.cacheEntries))
        self.io = try ResolverIO(limits: limits)
        self.ownNames = Self.machineNames()
    }

    /// The host name (the step shares stepguard's UTS namespace), as nss-myhostname answers it.
    static func machineNames() -> Set<String> {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return [] }
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard case .name(let name)? = HostName.normalise(text) else { return [] }
        return [name, String(name.prefix { $0 != "." })]
    }

    /// Names answered with loopback, locally: `localhost` and its subdomains (RFC 6761) and the
    /// machine's own name. No query leaves and no event is recorded: a runtime asking for its own
    /// host name (Java's `InetAddress.getLocalHost()`, when /etc/hosts lacks it) is not a step
    /// reaching out, and a denied answer would stop the build.
    func isLoopbackName(_ name: String) -> Bool {
        name == "localhost" || name.hasSuffix(".localhost") || ownNames.contains(name)
    }

    /// The name a pool address stands for (an address this resolver answered with), else nil.
    func name(for address: IPAddress) -> String? {
        pool.withLock { $0.name(for: address) }
    }

    // MARK: Answering

    /// What to do with a message from the step.
    enum Step: Sendable {
        case reply([UInt8])
        case drop
        /// The name needs a lookup (blocking): ``resolve(_:name:overTCP:)`` answers it.
        case lookup(DNSQuery, name: String)
    }

    /// Everything that needs no lookup: unreadable queries, refused types, cached answers and
    /// denied names. Fast; safe on any thread.
    func prepare(_ message: [UInt8], overTCP: Bool) -> Step {
        let query: DNSQuery
        switch DNSCodec.readQuery(message) {
        case .drop: return .drop
        case .unanswerable(let id, let code): return .reply(DNSCodec.bareAnswer(id: id, code: code))
        case .query(let read): query = read
        }
        let limit = overTCP ? 65535 : query.udpLimit
        guard query.qclass == DNSType.internet, DNSType.answered.contains(query.type), let text = query.name.hostText,
              case .name(let name)? = HostName.normalise(text) else {
            return .reply(DNSCodec.answer(query, code: .refused, limit: limit))
        }
        if isLoopbackName(name) {
            let loopback: [DNSAnswer] = switch query.type {
            case DNSType.a: [.address(.v4(0x7F00_0001), ttl: limits.answerTTL)]
            case DNSType.aaaa: [.address(.v6([UInt8](repeating: 0, count: 15) + [1]), ttl: limits.answerTTL)]
            default: []
            }
            return .reply(DNSCodec.answer(query, code: .noError, answers: loopback, limit: limit))
        }
        let now = EpollLoop.monotonicNow()
        if let cached = cache.withLock({ $0.answer(name: name, type: query.type, now: now) }) {
            return .reply(DNSCodec.answer(query, code: cached.code, answers: cached.answers, limit: limit))
        }
        if let denial = decider.decideName(name), block(name, denial, type: query.type) {
            cache.withLock { $0.store(name: name, type: query.type, CachedAnswer(code: .nameError, answers: [], expires: now + limits.negativeCache)) }
            return .reply(DNSCodec.answer(query, code: .nameError, limit: limit))
        }
        return .lookup(query, name: name)
    }

    /// Records the denial of `name` (once per name) and says whether its query is refused (not in `mode: audit`).
    private func block(_ name: String, _ verdict: EgressVerdict, type: UInt16) -> Bool {
        let (first, full) = recordedNames.withLock { names -> (Bool, Bool) in
            guard names.count < limits.recordedDeniedNames else { return (false, false) }
            let inserted = names.insert(name).inserted
            return (inserted, inserted && names.count == limits.recordedDeniedNames)
        }
        guard first else { return !auditOnly }
        let shown = Self.shown(name)
        let record = DecisionRecord(.egress, allowed: false, rule: verdict.rule,
                                    reason: "DNS query for " + verdict.reason.replacingAll(name, with: shown),
                                    host: .name(shown), port: 53, addresses: [], method: "DNS", path: "", service: nil,
                                    details: ["query_type": .string(Self.typeName(type))])
        let blocked = enforce(record)
        if full {
            trail.record(AuditEvent(type: .egress, decision: .deny, reason: "the step asked for \(limits.recordedDeniedNames) denied names; further denied names are refused without an event each",
                                    rule: verdict.rule, subject: ["method": .string("DNS"), "port": .int(53)]))
        }
        return blocked
    }

    /// `name` for output: a label long enough to carry data (`<hex of a secret>.attacker.example`)
    /// is redacted to a prefix and a hash.
    static func shown(_ name: String) -> String {
        name.split(separator: ".", omittingEmptySubsequences: false)
            .map { $0.count > 24 ? redact(String($0)) : String($0) }.joined(separator: ".")
    }

    static func typeName(_ type: UInt16) -> String {
        [DNSType.a: "A", DNSType.aaaa: "AAAA", DNSType.cname: "CNAME", DNSType.https: "HTTPS", DNSType.srv: "SRV"][type] ?? String(type)
    }

    /// The answer to `query` for `name` after a lookup (blocking: call it on a lookup thread).
    func resolve(_ query: DNSQuery, name: String, overTCP: Bool) -> [UInt8] {
        let answer = lookUp(name, type: query.type)
        return DNSCodec.answer(query, code: answer.code, answers: answer.answers, limit: overTCP ? 65535 : query.udpLimit)
    }

    /// Looks `name` up for a query of `type` and caches what it learns.
    private func lookUp(_ name: String, type: UInt16) -> CachedAnswer {
        let now = EpollLoop.monotonicNow()
        if type == DNSType.srv { return cached(name, type, services(name), now: now) }
        let families: NameLookup.Families = type == DNSType.a ? .v4 : type == DNSType.aaaa ? .v6 : .both
        // The host's resolver answers both families at once: both are cached.
        let outcome = overrides[name].map { NameLookup.Outcome.found($0) } ?? lookup.lookup(name, families: lookup.upstream == nil ? .both : families)
        if lookup.upstream == nil || overrides[name] != nil {
            for other in [DNSType.a, DNSType.aaaa, DNSType.cname, DNSType.https] where other != type {
                _ = cached(name, other, addressAnswer(name, type: other, outcome), now: now)
            }
        }
        return cached(name, type, addressAnswer(name, type: type, outcome), now: now)
    }

    /// The answer to an A, AAAA, CNAME or HTTPS query from what a lookup found.
    private func addressAnswer(_ name: String, type: UInt16, _ outcome: NameLookup.Outcome) -> (DNSRCode, [DNSAnswer]) {
        switch outcome {
        case .nonexistent: return (.nameError, [])
        case .failed: return (.serverFailure, [])
        case .found(let addresses):
            let wantsV4 = type == DNSType.a
            guard type == DNSType.a || type == DNSType.aaaa,
                  addresses.contains(where: { if case .v4 = $0 { wantsV4 } else { !wantsV4 } }) else { return (.noError, []) }
            guard let pair = pool.withLock({ $0.addresses(for: name) }) else { return (.serverFailure, []) }
            return (.noError, [.address(wantsV4 ? pair.v4 : pair.v6, ttl: limits.answerTTL)])
        }
    }

    /// The SRV records of `name`, relayed from the upstream server (their targets are names the
    /// step then resolves through this resolver); additional records are not relayed.
    private func services(_ name: String) -> (DNSRCode, [DNSAnswer]) {
        guard let dnsName = DNSName(name) else { return (.serverFailure, []) }
        do {
            let response = try lookup.upstreamServer().exchange(name: dnsName, type: DNSType.srv)
            switch response.code {
            case DNSRCode.noError.rawValue:
                return (.noError, DNSCodec.records(answering: dnsName, in: response).compactMap { record in
                    guard case .service(let priority, let weight, let port, let target) = record.content else { return nil }
                    return .service(priority: priority, weight: weight, port: port, target: target, ttl: min(record.ttl, limits.answerTTL))
                })
            case DNSRCode.nameError.rawValue: return (.nameError, [])
            default: return (.serverFailure, [])
            }
        } catch {
            return (.serverFailure, [])
        }
    }

    /// Caches `answer` (not a failure: that is asked again) and returns it.
    private func cached(_ name: String, _ type: UInt16, _ answer: (DNSRCode, [DNSAnswer]), now: UInt64) -> CachedAnswer {
        let (code, answers) = answer
        let lifetime = code == .serverFailure ? 0 : answers.isEmpty ? limits.negativeCache : limits.positiveCache
        let entry = CachedAnswer(code: code, answers: answers, expires: now + lifetime)
        if lifetime > 0 { cache.withLock { $0.store(name: name, type: type, entry) } }
        return entry
    }

    // MARK: Dropped UDP

    /// Reports a UDP datagram to `address`:`port` that no socket takes (UDP other than DNS is not
    /// relayed): one `deny` event per destination per ``Limits/dropReportInterval``, a violation
    /// only when a TCP connection there would be denied too (a QUIC attempt to an allowed host
    /// falls back to TCP and is no violation). Loopback destinations and DNS are not reported.
    /// Past ``Limits/dropReportDestinations`` destinations in an interval, one event says so and
    /// one more (a violation) names the first destination TCP would be denied too, per interval.
    func reportDroppedDatagram(to address: IPAddress, port: UInt16, now: UInt64) {
        let address = address.unmapped
        guard port != 53, !address.isLoopback else { return }
        let report = dropReports.withLock { $0.admit("\(address)|\(port)", now: now, limits: limits) }
        guard report != .none else { return }
        let host: HostName.Normalised = name(for: address).map { .name($0) } ?? .address(address)
        let violation = tcpWouldBeDenied(host, port: port, address: address)
        var reason = "a UDP datagram to \(host.text):\(port) (\(address)) was dropped: stepguard relays no UDP but DNS (QUIC clients fall back to TCP); "
            + (violation ? "TCP to this destination is denied too" : "TCP to this destination is allowed, so this is not a violation")
        if report == .overflow {
            let first = dropReports.withLock { $0.firstOverflow(violation: violation, now: now, limits: limits) }
            guard first else { return }
            reason += "; the step sent UDP to more than \(limits.dropReportDestinations) destinations within \(limits.dropReportInterval / 1_000_000_000) s: "
                + "further dropped datagrams\(violation ? " to destinations TCP would be denied too" : "") are not recorded one by one until then"
        }
        let record = DecisionRecord(
            .egress, allowed: false, rule: "built-in: UDP is not relayed", reason: reason,
            host: host, port: port, addresses: [address], method: "UDP", path: "", service: nil, details: ["violation": .bool(violation)])
        if violation {
            _ = enforce(record)
        } else {
            trail.record(AuditEvent(type: record.type, decision: .deny, reason: record.reason, rule: record.rule, subject: record.subject))
        }
    }

    /// Whether a TCP connection to `host`:`port` would be denied, decided as the proxy decides one
    /// (a name before any lookup, or through its `network.resolve` entry; an address by itself).
    private func tcpWouldBeDenied(_ host: HostName.Normalised, port: UInt16, address: IPAddress) -> Bool {
        switch host {
        case .name(let name):
            if let target = resolveOverrides[HostPort(host: name, port: port)], let targetAddress = IPAddress(target.host),
               let socketAddress = try? ProxyState.socketAddress(targetAddress, port: target.port) {
                let route = Route(host: host, port: port, addresses: [targetAddress], connectAddress: socketAddress, fromPolicy: true)
                return !decider.verdict(for: route).allowed
            }
            return decider.decideBeforeResolving(host: host, port: port, .connect) != nil
        case .address:
            guard let socketAddress = try? ProxyState.socketAddress(address, port: port) else { return true }
            return !decider.verdict(for: Route(host: host, port: port, addresses: [address], connectAddress: socketAddress)).allowed
        }
    }
}

/// Which dropped-UDP destinations were reported, and when (monotonic nanoseconds), bounded by
/// ``StepResolver/Limits/dropReportDestinations``.
struct DropReports: Sendable {
    enum Report: Equatable { case none, each, overflow }
    private var reported: [String: UInt64] = [:]
    private var pruned: UInt64 = 0
    /// When the last event of a destination past the bound was recorded: any, and a violation.
    private var overflow: UInt64?
    private var violatingOverflow: UInt64?

    private static func recent(_ time: UInt64?, _ now: UInt64, _ limits: StepResolver.Limits) -> Bool {
        guard let time else { return false }
        return now < time || now - time < limits.dropReportInterval
    }

    /// Whether a datagram to `key` is reported one by one (`.each`, remembered), not at all (its
    /// destination was reported within the interval), or is past the bound (`.overflow`).
    mutating func admit(_ key: String, now: UInt64, limits: StepResolver.Limits) -> Report {
        if Self.recent(reported[key], now, limits) { return .none }
        // Forgetting expired destinations costs a pass over all: at most once a second.
        if reported.count >= limits.dropReportDestinations, now < pruned || now - pruned >= 1_000_000_000 {
            reported = reported.filter { Self.recent($0.value, now, limits) }
            pruned = now
        }
        guard reported.count < limits.dropReportDestinations else {
            // Past the bound nothing is remembered: only whether the interval's summaries were recorded.
            return Self.recent(overflow, now, limits) && Self.recent(violatingOverflow, now, limits) ? .none : .overflow
        }
        reported[key] = now
        return .each
    }

    /// Whether a datagram past the bound is the interval's first (or, a violation, its first violation): recorded then.
    mutating func firstOverflow(violation: Bool, now: UInt64, limits: StepResolver.Limits) -> Bool {
        if violation, !Self.recent(violatingOverflow, now, limits) {
            violatingOverflow = now
            overflow = now
            return true
        }
        guard !Self.recent(overflow, now, limits) else { return false }
        overflow = now
        return true
    }
}

/// A cached answer: its code and records, and when it expires (monotonic nanoseconds).
struct CachedAnswer: Sendable {
    let code: DNSRCode
    let answers: [DNSAnswer]
    let expires: UInt64
}

/// The resolver's bounded cache, by name and query type.
struct AnswerCache: Sendable {
    private struct Key: Hashable {
        let name: String
        let type: UInt16
    }
    let capacity: Int
    private var entries: [Key: CachedAnswer] = [:]

    init(capacity: Int) { self.capacity = capacity }

    func answer(name: String, type: UInt16, now: UInt64) -> CachedAnswer? {
        guard let entry = entries[Key(name: name, type: type)], entry.expires > now else { return nil }
        return entry
    }

    /// Stores `entry`; when full, drops the expired entries, and everything if none has expired.
    mutating func store(name: String, type: UInt16, _ entry: CachedAnswer) {
        if entries.count >= capacity {
            let now = EpollLoop.monotonicNow()
            entries = entries.filter { $0.value.expires > now }
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
        }
        entries[Key(name: name, type: type)] = entry
    }

    var count: Int { entries.count }
}

extension EgressDecider {
    /// The decision on a DNS query for `name` (normalised): nil when the name may be resolved
    /// (``EgressPolicy/decideName(_:)``, and a name a service in `services:` names is allowed
    /// unless a deny rule or a protected destination names it), else the denial.
    func decideName(_ name: String) -> EgressVerdict? {
        guard let verdict = egress.decideName(name) else { return nil }
        if verdict.rule == EgressPolicy.defaultDenyRule, service(for: .name(name)) != nil { return nil }
        return verdict
    }
}
