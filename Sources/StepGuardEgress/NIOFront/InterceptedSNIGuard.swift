import NIOCore
import StepGuardAudit

/// Stands in front of the TLS server handler of an intercepted connection and checks its SNI
/// before the handshake starts (instead of a callback inside the handshake, which suspends it until
/// a later event-loop tick): it reads the ClientHello, reassembled from the handshake records it
/// spans, and passes the bytes on untouched, then leaves the pipeline, only when the ClientHello
/// names no server or names the CONNECT host. A different name is denied with an audit event and a
/// fatal `unrecognized_name` alert. A ClientHello it cannot parse as strictly as BoringSSL does
/// closes the connection: a name this parser did not see must never reach the handshake.
final class InterceptedSNIGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    static var rule: String { TunnelStart.rule }

    /// The most bytes read before the ClientHello is complete: a ClientHello (BoringSSL's limit for
    /// a server that asks no client certificate, 16 KiB) in records of at most 16 KiB + 2 KiB.
    static let maxBuffered = 5 * 8 + 4 + 16384 + 18432

    private let host: String
    private let trail: AuditTrail
    private var buffered: ByteBuffer?
    private var closed = false

    /// `host`: the CONNECT host (normalised), the name the leaf certificate is issued for.
    init(host: String, trail: AuditTrail) {
        self.host = host
        self.trail = trail
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closed else { return }
        var incoming = unwrapInboundIn(data)
        if buffered == nil { buffered = incoming } else { buffered!.writeBuffer(&incoming) }
        let scan = buffered!.withUnsafeReadableBytes { ClientHello.scanClientHello($0) }
        switch scan {
        case .incomplete:
            if buffered!.readableBytes > Self.maxBuffered { deny(context, alert: 50) }  // decode_error
        case .malformed:
            deny(context, alert: 50)
        case .serverName(let sni):
            // `host` is its own normal form (``ProxyState/leafContext(for:)`` checks), so an SNI
            // spelled exactly like it is equal to it without normalising it again.
            if let sni, sni != host, HostName.normalise(sni)?.text != host {
                trail.record(AuditEvent(type: .service, decision: .deny,
                                        reason: "TLS SNI '\(sni.prefix(100))' differs from the CONNECT target \(host)",
                                        rule: Self.rule, subject: ["host": .string(host), "sni": .string(String(sni.prefix(100)))]))
                return deny(context, alert: 112)  // unrecognized_name
            }
            let bytes = buffered!
            buffered = nil
            closed = true
            context.fireChannelRead(wrapInboundOut(bytes))
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }

    /// Sends a fatal alert (before the handshake, in a plaintext record) and closes.
    private func deny(_ context: ChannelHandlerContext, alert: UInt8) {
        closed = true
        buffered = nil
        let record: [UInt8] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, alert]
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(bytes: record))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}
