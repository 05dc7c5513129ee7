import StepGuardPolicy
#if canImport(Glibc)
import Glibc
#endif

/// An IP address and port as a socket address (`sockaddr_in` or `sockaddr_in6`).
struct DNSEndpoint: Sendable, Hashable, CustomStringConvertible {
    let address: IPAddress
    let port: UInt16

    var family: Int32 { if case .v4 = address { AF_INET } else { AF_INET6 } }

    /// Calls `body` with the socket address and its length.
    func withSocketAddress<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        var storage = sockaddr_storage()
        return withUnsafeMutablePointer(to: &storage) { pointer in
            let length = Self.write(address, port: port, into: UnsafeMutableRawPointer(pointer))
            return pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }

    /// Writes the socket address of `address`:`port` at `pointer` (room for a `sockaddr_storage`); returns its length.
    static func write(_ address: IPAddress, port: UInt16, into pointer: UnsafeMutableRawPointer) -> socklen_t {
        switch address {
        case .v4(let value):
            var socketAddress = sockaddr_in()
            socketAddress.sin_family = sa_family_t(AF_INET)
            socketAddress.sin_port = port.bigEndian
            socketAddress.sin_addr.s_addr = value.bigEndian
            pointer.storeBytes(of: socketAddress, as: sockaddr_in.self)
            return socklen_t(MemoryLayout<sockaddr_in>.size)
        case .v6(let bytes):
            var socketAddress = sockaddr_in6()
            socketAddress.sin6_family = sa_family_t(AF_INET6)
            socketAddress.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &socketAddress.sin6_addr) { $0.copyBytes(from: bytes) }
            pointer.storeBytes(of: socketAddress, as: sockaddr_in6.self)
            return socklen_t(MemoryLayout<sockaddr_in6>.size)
        }
    }

    /// The endpoint a `sockaddr_in`/`sockaddr_in6` at `pointer` names; nil for another family.
    init?(socketAddress pointer: UnsafeRawPointer) {
        let family = pointer.load(as: sockaddr.self).sa_family
        if family == sa_family_t(AF_INET) {
            let socketAddress = pointer.loadUnaligned(as: sockaddr_in.self)
            self.init(address: .v4(UInt32(bigEndian: socketAddress.sin_addr.s_addr)), port: UInt16(bigEndian: socketAddress.sin_port))
        } else if family == sa_family_t(AF_INET6) {
            let socketAddress = pointer.loadUnaligned(as: sockaddr_in6.self)
            let bytes = withUnsafeBytes(of: socketAddress.sin6_addr) { Array($0) }
            self.init(address: .v6(bytes), port: UInt16(bigEndian: socketAddress.sin6_port))
        } else {
            return nil
        }
    }

    init(address: IPAddress, port: UInt16) {
        self.address = address
        self.port = port
    }

    var description: String { HostPort(host: address.description, port: port).description }
}
