import CLinuxIO
import StepGuardPolicy
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What transparent capture asks of the step's resolver: the name behind an address it answered
/// with, and DNS over TCP to port 53 of any address.
protocol CaptureResolver: AnyObject, Sendable {
    /// The name `address` stands for, when the resolver answered a query for that name with it.
    func name(for address: IPAddress) -> String?
    /// Serves a DNS-over-TCP connection (the resolver owns `fd` from now on).
    func serveTCP(connection fd: Int32)
    /// Stops answering and closes the sockets it was given.
    func stop()
}

/// The resolver of a session's captured step, set once the step's namespace exists.
final class CaptureLink: Sendable {
    private let resolver = Mutex<(any CaptureResolver)?>(nil)

    func attach(_ resolver: any CaptureResolver) { self.resolver.withLock { $0 = resolver } }

    var current: (any CaptureResolver)? { resolver.withLock { $0 } }

    /// The host a captured connection to `address` is decided as: the name the step resolved
    /// through stepguard's resolver to get that address, or the address itself. Nil for an address
    /// of the resolver's pool that stands for no name (it must not be decided, or reached, as an address).
    func host(for address: IPAddress) -> HostName.Normalised? {
        // The resolver keeps names as it normalised them to decide the query: not normalised again here.
        if let name = current?.name(for: address) { return .name(name) }
        return AddressPool.contains(address) ? nil : .address(address.unmapped)
    }
}

/// Where a redirected connection was going (SO_ORIGINAL_DST), or nil when it was not redirected.
func originalDestination(of fd: Int32) -> DNSEndpoint? {
    var original = sockaddr_storage()
    guard sg_original_destination(fd, &original) == 0 else { return nil }
    return withUnsafeBytes(of: &original) { DNSEndpoint(socketAddress: $0.baseAddress!) }
}

/// Makes closing `fd` send a TCP reset (SO_LINGER 0): a refused captured connection ends at once.
func resetOnClose(_ fd: Int32) {
    var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
}

/// Closes `fd` with a TCP reset.
func resetConnection(_ fd: Int32) {
    resetOnClose(fd)
    Glibc.close(fd)
}

/// `host:port` as a CONNECT names it (an IPv6 address in brackets).
func captureAuthority(_ host: HostName.Normalised, port: UInt16) -> String {
    if case .address(.v6) = host { return "[\(host.text)]:\(port)" }
    return "\(host.text):\(port)"
}

extension FrontLoop {
    /// A connection accepted on a capture listener: decided like a CONNECT to where it was going;
    /// DNS over TCP goes to the resolver; one that was not redirected (the step connected to the
    /// listener itself) is reset.
    func acceptCaptured(_ client: Int32) {
        guard let original = originalDestination(of: client) else { return resetConnection(client) }
        if original.port == 53 {
            guard let resolver = state.capture.current else { return resetConnection(client) }
            return resolver.serveTCP(connection: client)
        }
        guard let host = state.capture.host(for: original.address) else { return resetConnection(client) }
        state.openConnections.add(1, ordering: .relaxed)
        ClientConnection(loop: self, fd: client).startCaptured(host: host, port: original.port)
    }
}
