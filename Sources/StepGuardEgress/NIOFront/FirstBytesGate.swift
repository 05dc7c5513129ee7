import NIOCore
import StepGuardAudit

/// Holds back the first bytes a client sends on a connection until a decision on them can be made,
/// then passes them on untouched and leaves the pipeline, or refuses the connection (writing a
/// reply first, if the decision gives one, and closing). A tunnel whose client speaks plain HTTP
/// keeps it in the pipeline: from then on it passes on only what ``TunnelRequests`` clears, request
/// by request, until that relays the rest. It only moves bytes; what decides is ``TunnelStart``,
/// ``TunnelRequests`` or ``ClientHello``, through the two gates below.
final class FirstBytesGate: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// What the bytes held so far decide.
    enum Verdict {
        /// Not enough bytes yet to tell.
        case needMore
        /// Pass everything on and leave the pipeline.
        case pass
        /// Write `reply` (nothing when empty) and close; nothing held reaches the next handler.
        case refuse(reply: [UInt8])
        /// Pass on only what `requests` clears, from the bytes held on; a denial it makes is
        /// refused when `enforce` says so (else the requests overlook it and go on).
        case follow(TunnelRequests, enforce: (DecisionRecord) -> Bool)
    }

    private let decide: (UnsafeRawBufferPointer) -> Verdict
    private var held: ByteBuffer?
    private var refused = false
    private var requests: TunnelRequests?
    private var enforce: ((DecisionRecord) -> Bool)?

    /// `decide` is asked with every byte held so far each time more arrive.
    init(decide: @escaping (UnsafeRawBufferPointer) -> Verdict) {
        self.decide = decide
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        var incoming = unwrapInboundIn(data)
        if held == nil { held = incoming } else { held!.writeBuffer(&incoming) }
        if requests != nil { return follow(context) }
        switch held!.withUnsafeReadableBytes(decide) {
        case .needMore: return
        case .pass: passRest(context)
        case .refuse(let reply): refuse(context, reply: reply)
        case .follow(let requests, let enforce):
            (self.requests, self.enforce) = (requests, enforce)
            follow(context)
        }
    }

    /// Passes on every byte held and leaves the pipeline.
    private func passRest(_ context: ChannelHandlerContext) {
        if let bytes = held, bytes.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(bytes)) }
        held = nil
        context.fireChannelReadComplete()
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    private func refuse(_ context: ChannelHandlerContext, reply: [UInt8]) {
        refused = true
        held = nil
        guard !reply.isEmpty else { return context.close(promise: nil) }
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(bytes: reply))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    /// Passes on what ``TunnelRequests`` clears of the bytes held; keeps the rest of an incomplete head.
    private func follow(_ context: ChannelHandlerContext) {
        var passed = false
        while var requests, var bytes = held, bytes.readableBytes > 0 {
            let step = bytes.withUnsafeReadableBytes { requests.next($0) { enforce?($0) ?? true } }
            self.requests = requests
            switch step {
            case .needMore:
                if passed { context.fireChannelReadComplete() }
                return
            case .forward(let count):
                let slice = bytes.readSlice(length: count)!
                held = bytes.readableBytes > 0 ? bytes : nil
                passed = true
                context.fireChannelRead(wrapInboundOut(slice))
            case .relayRest:
                return passRest(context)
            case .deny(let record):
                return refuse(context, reply: requests.denialReply(record))
            }
        }
        if passed { context.fireChannelReadComplete() }
    }
}

extension FirstBytesGate {
    /// In front of a plain CONNECT tunnel (only when the policy names services): ``TunnelStart``
    /// decides, then ``TunnelRequests`` each plain HTTP request; a denial the policy enforces
    /// closes the tunnel.
    static func tunnelStart(route: Route, state: ProxyState) -> FirstBytesGate {
        FirstBytesGate { bytes in
            switch TunnelStart.decide(bytes, route: route, decider: state.decider) {
            case .needMore: .needMore
            case .pass: .pass
            case .plain: .follow(TunnelRequests(route: route, decider: state.decider, limits: state.limits), enforce: state.enforce)
            case .deny(let record): state.enforce(record) ? .refuse(reply: []) : .pass
            }
        }
    }

    /// The most bytes read before an intercepted connection's ClientHello is complete: a ClientHello
    /// (BoringSSL's limit for a server that asks no client certificate, 16 KiB) in records of at most
    /// 16 KiB + 2 KiB.
    static let maxInterceptedClientHello = 5 * 8 + 4 + 16384 + 18432

    /// In front of the TLS server handler of an intercepted connection, so that its SNI is checked
    /// before the handshake starts (instead of a callback inside the handshake, which suspends it
    /// until a later event-loop tick): the ClientHello, reassembled from the records it spans, passes
    /// only when it names no server or names the CONNECT host `host` (normalised: the name the leaf
    /// certificate is issued for). A different name is denied with an audit event and a fatal
    /// `unrecognized_name` alert. A ClientHello it cannot parse as strictly as BoringSSL does gets
    /// `decode_error`: a name this parser did not see must never reach the handshake.
    static func interceptedSNI(host: String, trail: AuditTrail) -> FirstBytesGate {
        FirstBytesGate { bytes in
            switch ClientHello.scanClientHello(bytes) {
            case .incomplete:
                return bytes.count > maxInterceptedClientHello ? .refuse(reply: alert(50)) : .needMore
            case .malformed:
                return .refuse(reply: alert(50))  // decode_error
            case .serverName(let sni):
                // `host` is its own normal form (``ProxyState/leafContext(for:)`` checks), so an SNI
                // spelled exactly like it is equal to it without normalising it again.
                if let sni, sni != host, HostName.normalise(sni)?.text != host {
                    let shown = String(sni.prefix(100))
                    trail.record(AuditEvent(type: .service, decision: .deny,
                                            reason: "TLS SNI '\(shown)' differs from the CONNECT target \(host)",
                                            rule: TunnelStart.rule, subject: ["host": .string(host), "sni": .string(shown)]))
                    return .refuse(reply: alert(112))  // unrecognized_name
                }
                return .pass
            }
        }
    }

    /// A fatal TLS alert in a plaintext record (sent before any handshake).
    private static func alert(_ description: UInt8) -> [UInt8] { [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description] }
}
