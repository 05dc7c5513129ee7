/// The host a captured connection to a bare address names in its first bytes: the SNI of a TLS
/// ClientHello, or the `Host` of a plain HTTP request head. A connection the policy denies by
/// address is decided again by that name (TLS by its SNI, HTTP by its Host, as a CONNECT to the
/// name would be), and then goes to where the name resolves — never to the address the client chose.
enum CapturedName {
    enum Outcome: Equatable {
        /// Not enough bytes yet to tell.
        case needMore
        /// The host named, normalised (a name, not an address).
        case named(HostName.Normalised)
        /// Neither a ClientHello with a server name nor an HTTP head with a host name.
        case unnamed
    }

    /// Whether clients speak first on `port` by the protocols' conventions (TLS and HTTP ports), so
    /// that waiting for their first bytes cannot stall a protocol whose server speaks first.
    static func clientSpeaksFirst(port: UInt16) -> Bool {
        [80, 443, 8080, 8443].contains(port)
    }

    /// Whether clients on `port` speak plain HTTP by convention: a captured connection there is
    /// read request by request and sent over pooled upstream connections when its first bytes are
    /// a request the socket front serves (otherwise it is relayed as it came).
    static func carriesPlainHTTP(port: UInt16) -> Bool {
        port == 80 || port == 8080
    }

    /// How long a captured connection on a plain-HTTP port waits for its client's first request
    /// before it is relayed as a tunnel anyway (a server that greets first, a client that is slow
    /// to speak), in nanoseconds. Either way the connection goes to the same decided destination:
    /// the wait changes how it is carried, never where.
    static let firstRequestWait: UInt64 = 200_000_000

    /// The most bytes read while waiting for a ClientHello or a request head.
    static let maxBuffered = 16 * 1024

    static func find(in bytes: UnsafeRawBufferPointer, maxFields: Int) -> Outcome {
        switch ClientHello.reassembledClientHello(bytes, maxLength: TunnelStart.maxClientHello) {
        case .complete(let message):
            return named(ClientHello.requestedServerName(message))
        case .incomplete:
            return bytes.count > maxBuffered ? .unnamed : .needMore
        case .malformed:
            break  // not TLS: perhaps HTTP
        }
        switch RawHead.parse(bytes, maxFields: maxFields) {
        case .incomplete: return bytes.count > maxBuffered ? .unnamed : .needMore
        case .invalid: return .unnamed
        case .complete(let head):
            let hosts = head.fields.filter { bytes.equalsIgnoringCase($0.name, "host") }
            guard hosts.count == 1, let split = RequestTarget.splitAuthority(bytes.string(hosts[0].value), defaultPort: 80) else { return .unnamed }
            return named(split.host)
        }
    }

    private static func named(_ text: String?) -> Outcome {
        guard let text, let host = HostName.normalise(text), case .name = host else { return .unnamed }
        return .named(host)
    }
}
