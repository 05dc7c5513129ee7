import FoundationEssentials
import StepGuardPolicy
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How stepguard looks names up, for the proxy's connections and for the step's resolver: through
/// the policy's `network.dns` server when it names one, else through the host's resolver
/// (getaddrinfo). One per session (``configure(upstream:)``); the proxy reads it in ``ProxyState/resolve(_:)``.
final class NameLookup: Sendable {
    /// What a lookup found.
    enum Outcome: Sendable, Equatable {
        /// The name exists; its addresses of the families asked for (none: it has none of them).
        case found([IPAddress])
        /// The name does not exist (NXDOMAIN).
        case nonexistent
        /// No answer (a server failure or timeout): the text says what happened.
        case failed(String)
    }

    /// The address families a lookup asks for.
    enum Families: Sendable { case v4, v6, both }

    /// `network.dns`, or nil for the host's resolver.
    let upstream: HostPort?
    /// Seconds an upstream exchange may take.
    let timeout: Double
    private let server = Mutex<DNSEndpoint?>(nil)

    init(upstream: HostPort?, timeout: Double = 2) {
        self.upstream = upstream
        self.timeout = timeout
    }

    // MARK: The session's lookup

    private static let current = Mutex(NameLookup(upstream: nil))

    /// Makes the proxy's own lookups use `upstream` (the policy's `network.dns`; nil: the host's
    /// resolver). Call once when a session starts, before it takes connections.
    static func configure(upstream: HostPort?) {
        current.withLock { $0 = NameLookup(upstream: upstream) }
    }

    /// The session's lookup (see ``configure(upstream:)``).
    static var session: NameLookup { current.withLock { $0 } }

    // MARK: Lookups

    /// The addresses of `name` for the proxy (blocking: call it on a resolver thread): every
    /// address, IPv4-mapped IPv6 unwrapped, duplicates removed. Throws the `502` that explains a failure.
    func addresses(of name: String) throws(ProxyFailure) -> [IPAddress] {
        if name == "invalid" || name.hasSuffix(".invalid") {
            throw ProxyFailure(status: .badGateway, reason: "cannot resolve \(name): names under .invalid never resolve (RFC 6761); not looked up")
        }
        switch lookup(name, families: .both) {
        case .found(let addresses) where !addresses.isEmpty: return addresses
        case .found: throw ProxyFailure(status: .badGateway, reason: "\(name) resolved to no address")
        case .nonexistent: throw ProxyFailure(status: .badGateway, reason: "cannot resolve \(name): the name does not exist\(via)")
        case .failed(let reason): throw ProxyFailure(status: .badGateway, reason: "cannot resolve \(name): \(reason)")
        }
    }

    private var via: String { upstream.map { " (asked network.dns \($0))" } ?? "" }

    /// Looks `name` up (blocking).
    func lookup(_ name: String, families: Families) -> Outcome {
        guard upstream != nil else { return Self.hostLookup(name, families: families) }
        guard let dnsName = DNSName(name) else { return .failed("'\(name.prefix(80))' is not a DNS name") }
        let types: [UInt16] = switch families {
        case .v4: [DNSType.a]
        case .v6: [DNSType.aaaa]
        case .both: [DNSType.a, DNSType.aaaa]
        }
        var addresses: [IPAddress] = []
        var nonexistent = false
        for type in types {
            let response: DNSResponse
            do {
                response = try upstreamServer().exchange(name: dnsName, type: type)
            } catch {
                return .failed(error.description)
            }
            switch response.code {
            case DNSRCode.noError.rawValue:
                for record in DNSCodec.records(answering: dnsName, in: response) {
                    if case .address(let address) = record.content, !addresses.contains(address.unmapped) { addresses.append(address.unmapped) }
                }
            case DNSRCode.nameError.rawValue:
                nonexistent = true
                if addresses.isEmpty { return .nonexistent }  // the name does not exist for any type: no second query
            default:
                return .failed("the DNS server \(upstream!) answered with response code \(response.code)")
            }
        }
        return nonexistent && addresses.isEmpty ? .nonexistent : .found(addresses)
    }

    /// The server asked for SRV records and by ``lookup(_:families:)``: `network.dns`, else the
    /// host's first `nameserver` in /etc/resolv.conf (getaddrinfo cannot ask for SRV records).
    func upstreamServer() throws(DNSUpstreamError) -> DNSUpstream {
        if let known = server.withLock({ $0 }) { return DNSUpstream(server: known, timeout: timeout) }
        let endpoint: DNSEndpoint
        if let upstream {
            if let address = IPAddress(upstream.host) {
                endpoint = DNSEndpoint(address: address.unmapped, port: upstream.port)
            } else {
                guard case .found(let addresses) = Self.hostLookup(upstream.host, families: .both), let first = addresses.first else {
                    throw DNSUpstreamError(description: "cannot resolve network.dns server \(upstream) with the host's resolver")
                }
                endpoint = DNSEndpoint(address: first, port: upstream.port)
            }
        } else {
            guard let address = Self.hostNameServer() else {
                throw DNSUpstreamError(description: "/etc/resolv.conf names no nameserver; set network.dns")
            }
            endpoint = DNSEndpoint(address: address, port: 53)
        }
        server.withLock { $0 = endpoint }
        return DNSUpstream(server: endpoint, timeout: timeout)
    }

    /// The first `nameserver` of the host's /etc/resolv.conf.
    static func hostNameServer(configuration path: String = "/etc/resolv.conf") -> IPAddress? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        for line in text.split(whereSeparator: \.isNewline) {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if fields.count >= 2, fields[0] == "nameserver", let address = IPAddress(String(fields[1]).split(separator: "%").first.map(String.init) ?? "") {
                return address.unmapped
            }
        }
        return nil
    }

    /// getaddrinfo's `EAI_NODATA` and `EAI_ADDRFAMILY` (glibc, behind _GNU_SOURCE): the name exists without such addresses.
    private static let nameWithoutAddresses: Set<Int32> = [-5, -9]

    /// getaddrinfo, every address (IPv4-mapped IPv6 unwrapped), in the resolver's order.
    static func hostLookup(_ name: String, families: Families) -> Outcome {
        var hints = addrinfo()
        hints.ai_family = switch families {
        case .v4: AF_INET
        case .v6: AF_INET6
        case .both: AF_UNSPEC
        }
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(name, nil, &hints, &result)
        if status == EAI_NONAME { return .nonexistent }
        if nameWithoutAddresses.contains(status) { return .found([]) }
        guard status == 0, let first = result else { return .failed(String(cString: gai_strerror(status))) }
        defer { freeaddrinfo(first) }
        var addresses: [IPAddress] = []
        var node: UnsafeMutablePointer<addrinfo>? = first
        while let current = node {
            if let socketAddress = current.pointee.ai_addr, let endpoint = DNSEndpoint(socketAddress: UnsafeRawPointer(socketAddress)),
               !addresses.contains(endpoint.address.unmapped) {
                addresses.append(endpoint.address.unmapped)
            }
            node = current.pointee.ai_next
        }
        return .found(addresses)
    }
}
