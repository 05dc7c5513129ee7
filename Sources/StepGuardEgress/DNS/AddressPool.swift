import StepGuardPolicy

/// The private addresses the step's resolver answers with, each standing for one name for the
/// life of the session: IPv4 from 198.18.0.0/15 (RFC 2544's benchmarking range) and IPv6 from the
/// ULA fd73:6764:6e73::/64 (`sgdns`). Both exist only inside the step's network namespace, where
/// every address is local and a connection to one reaches stepguard, which decides it on the name.
/// A name gets one number: its IPv4 and IPv6 addresses carry the same.
struct AddressPool: Sendable {
    /// 198.18.0.0, the first address of the IPv4 pool (a /15).
    static let base4: UInt32 = 0xC612_0000
    /// fd73:6764:6e73:0, the IPv6 pool's /64 prefix.
    static let prefix6: [UInt8] = [0xFD, 0x73, 0x67, 0x64, 0x6E, 0x73, 0, 0]
    /// Numbers 1 … capacity (the IPv4 range without its first and last address).
    let capacity: Int
    private var numbers: [String: UInt32] = [:]
    private var names: [String] = [""]

    init(capacity: Int = (1 << 17) - 2) { self.capacity = min(capacity, (1 << 17) - 2) }

    /// The addresses of `name`, given a number the first time; nil when the pool is exhausted.
    mutating func addresses(for name: String) -> (v4: IPAddress, v6: IPAddress)? {
        if let number = numbers[name] { return Self.addresses(number) }
        guard names.count <= capacity else { return nil }
        let number = UInt32(names.count)
        numbers[name] = number
        names.append(name)
        return Self.addresses(number)
    }

    /// The name `address` stands for, if it is a pool address given out.
    func name(for address: IPAddress) -> String? {
        let address = address.unmapped
        let number: UInt32
        switch address {
        case .v4(let value) where value >> 17 == Self.base4 >> 17:
            number = value - Self.base4
        case .v6(let bytes) where Array(bytes[0..<8]) == Self.prefix6 && bytes[8..<12].allSatisfy({ $0 == 0 }):
            number = bytes[12..<16].reduce(0) { $0 << 8 | UInt32($1) }
        default:
            return nil
        }
        return number > 0 && Int(number) < names.count ? names[Int(number)] : nil
    }

    /// Whether `address` lies in either pool range (given out or not).
    static func contains(_ address: IPAddress) -> Bool {
        switch address.unmapped {
        case .v4(let value): value >> 17 == base4 >> 17
        case .v6(let bytes): Array(bytes[0..<8]) == prefix6
        }
    }

    static func addresses(_ number: UInt32) -> (v4: IPAddress, v6: IPAddress) {
        (.v4(base4 + number), .v6(prefix6 + [0, 0, 0, 0] + withUnsafeBytes(of: number.bigEndian) { Array($0) }))
    }

}
