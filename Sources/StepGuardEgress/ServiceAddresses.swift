import FoundationEssentials
import Glibc
import NIOCore
import NIOPosix
import StepGuardPolicy
import Synchronization

/// Where the services named in `services:` are reached, so that a connection to one of them by
/// its address, or by another name that leads to that address, is refused instead of passing as
/// plain egress that nothing inspects.
///
/// - A `network.resolve` entry whose name is a service host makes its target `address:port` the
///   service's: exactly that socket address (loopback stand-ins share an address, not a port).
/// - A service host that is a plain name (not a glob) without a `network.resolve` entry is looked
///   up when the session starts, and every address it resolves to later is added: those addresses
///   are the service's on every port (another port of the same host reaches the same server).
final class ServiceAddresses: Sendable {
    /// One address of a service; `port` nil: every port of the address.
    struct Entry: Sendable, Hashable {
        let address: IPAddress
        let port: UInt16?
        let service: String
    }

    private let entries: Mutex<Set<Entry>>
    private let overridden: Set<String>
    /// Services one of whose hosts `network.resolve` maps (every service on a host they share).
    let placed: Set<String>

    /// The addresses `network.resolve` gives the hosts of `services`.
    init(services: [BoundService], resolveOverrides: [HostPort: HostPort]) {
        var entries = Set<Entry>()
        var overridden = Set<String>()
        var placed = Set<String>()
        for (from, to) in resolveOverrides {
            // Every service on the host: with two sharing it, the second's names must not be looked up either.
            for service in services where service.matches(host: from.host) {
                overridden.insert(from.host)
                placed.insert(service.definition.name)
                if let address = IPAddress(anySpelling: to.host) {
                    entries.insert(Entry(address: address.unmapped, port: to.port, service: service.definition.name))
                }
            }
        }
        self.entries = Mutex(entries)
        self.overridden = overridden
        self.placed = placed
    }

    /// The plain service host names (no glob) looked up when the run starts. A service the policy
    /// places with `network.resolve` (a mirror, an air-gapped or a test deployment) is where the
    /// policy says: its other catalog hosts (Fulcio's staging name beside the one mapped) are not
    /// looked up, only learned when a request routes to them — and nothing that the policy pins is
    /// sent to a resolver at start.
    static func namesToResolve(_ services: [BoundService], placed: Set<String>) -> [(name: String, service: String)] {
        var names: [(String, String)] = []
        for service in services where !placed.contains(service.definition.name) {
            for host in service.hosts where !host.pattern.contains("*") && !host.pattern.contains("?") {
                if !names.contains(where: { $0.0 == host.pattern }) { names.append((host.pattern, service.definition.name)) }
            }
        }
        return names
    }

    /// Looks up every plain service host name on `pool` and adds its addresses (every port). A name
    /// that does not resolve now adds nothing; its addresses are added when a request routes to it.
    /// Nil when there is nothing to look up (the caller then need not wait at all).
    func resolve(_ services: [BoundService], on pool: NIOThreadPool, eventLoop: EventLoop) -> EventLoopFuture<Void>? {
        let names = Self.namesToResolve(services, placed: placed)
        guard !names.isEmpty else { return nil }
        let lookups = names.map { name, service in
            pool.runIfActive(eventLoop: eventLoop) { [self] in
                if let addresses = try? ProxyState.resolve(name) { learn(addresses, port: nil, service: service) }
            }.recover { _ in }
        }
        return EventLoopFuture.andAllComplete(lookups, on: eventLoop)
    }

    /// Adds `addresses` as addresses of `service` (on `port`, or on every port when nil).
    func learn(_ addresses: [IPAddress], port: UInt16?, service: String) {
        entries.withLock { entries in
            for address in addresses { entries.insert(Entry(address: address.unmapped, port: port, service: service)) }
        }
    }

    /// Adds the addresses of `route`, a route to a host of `service`, unless `network.resolve` chose them.
    func learn(_ route: Route, service: String) {
        guard !overridden.contains(route.host.text) else { return }
        learn(route.addresses, port: nil, service: service)
    }

    /// The service at one of `route`'s addresses (every one was checked; any may be connected to), on
    /// the port it connects to, if any.
    /// (The address connected to is one of `route.addresses`; only its port may differ, by
    /// `network.resolve`. The proxy asks for every request: nothing is parsed or allocated here.)
    func service(at route: Route) -> String? {
        let connectPort = route.connectAddress.port.map { UInt16(clamping: $0) }
        return entries.withLock { entries in
            entries.first { entry in
                (entry.port == nil || entry.port == connectPort) && route.addresses.contains { $0.unmapped == entry.address }
            }?.service
        }
    }
}
