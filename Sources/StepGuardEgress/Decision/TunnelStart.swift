import StepGuardAudit

/// The decision on the first bytes of a plain CONNECT tunnel, when the policy names services:
/// when they are a TLS ClientHello without SNI, or whose SNI is not the CONNECT host (a service
/// reached by address or alias to bypass inspection, or a virtual host behind a shared address),
/// the tunnel is denied. Bytes that are not TLS are followed by ``TunnelRequests`` (each plain
/// HTTP request must name the tunnel's host, as the SNI must), which relays them untouched when
/// they are no HTTP either. Both fronts ask it.
enum TunnelStart {
    static let rule = "built-in: SNI must equal the CONNECT host"

    /// The longest ClientHello body read (OpenSSL's `CLIENT_HELLO_MAX_LENGTH`); a longer one passes.
    static let maxClientHello = 131_396
    /// The most bytes of records buffered while a ClientHello is incomplete (real clients send
    /// it in one record or a few).
    static let maxBuffered = 256 * 1024


    /// What the first bytes of a plain tunnel decide.
    enum Verdict {
        /// Not enough bytes yet to tell.
        case needMore
        /// A ClientHello naming the CONNECT host: relay the tunnel.
        case pass
        /// Not TLS: hand the client's bytes to ``TunnelRequests``, which checks each plain HTTP request.
        case plain
        /// A ClientHello without SNI, naming another host, or that cannot be inspected: deny, recording this.
        case deny(DecisionRecord)
    }

    /// Decides on what the client sent into a tunnel to `route` so far.
    static func decide(_ bytes: UnsafeRawBufferPointer, route: Route, decider: EgressDecider) -> Verdict {
        // The whole ClientHello, however many records it spans (a name in a later record must not
        // slip through); up to OpenSSL's limit for a ClientHello, past which servers refuse it.
        let message: [UInt8]
        switch ClientHello.reassembledClientHello(bytes, maxLength: maxClientHello) {
        case .incomplete:
            guard bytes.count > maxBuffered else { return .needMore }
            // Only a client hiding its name in a flood of tiny records gets here: not inspected, not passed.
            let reason = "the TLS ClientHello in the tunnel to \(route.hostAndPort) is spread over more than \(maxBuffered) bytes of records; it cannot be inspected"
            return deny(reason, route)
        case .malformed: return .plain  // not TLS, or not a ClientHello a server would take: perhaps plain HTTP
        case .complete(let complete): message = complete
        }
        let name = ClientHello.requestedServerName(message)
        let target = route.hostAndPort
        // A server picks its virtual host by the SNI (or its default one when there is none): a
        // tunnel whose ClientHello does not name its own host could reach a service uninspected.
        guard let name else {
            return deny("the TLS ClientHello in the tunnel to \(target) names no server (SNI); with services: in the policy, a TLS tunnel must name the host it was opened to", route)
        }
        guard let host = HostName.normalise(name) else {
            return deny("the TLS SNI '\(name.prefix(100))' in the tunnel to \(target) is not a host name", route, sni: String(name.prefix(100)))
        }
        if let service = decider.service(for: host) {
            let reason = "TLS SNI '\(host.text)' names the service \(service.definition.name), but the tunnel was opened to \(target); connect to the service by its name so its requests are inspected"
            return deny(reason, route, sni: host.text, service: service)
        }
        guard host == route.host else {
            return deny("TLS SNI '\(host.text)' differs from the tunnel's host \(target); with services: in the policy, a TLS tunnel must name the host it was opened to", route, sni: host.text)
        }
        return .pass
    }

    private static func deny(_ reason: String, _ route: Route, sni: String? = nil, service: BoundService? = nil) -> Verdict {
        .deny(DecisionRecord(.service, allowed: false, rule: rule, reason: reason, route: route, method: "CONNECT", path: "", service: service,
                             details: sni.map { ["sni": .string($0)] } ?? [:]))
    }
}
