import NIOCore
import StepGuardAudit

/// Looks at the first bytes of a plain CONNECT tunnel (only when the policy names services): when
/// they are a TLS ClientHello without SNI, or whose SNI is not the CONNECT host (a service reached
/// by address or alias to bypass inspection, or a virtual host behind a shared address), the
/// tunnel is denied. Anything else passes through untouched and the inspector leaves the pipeline.
final class TunnelSNIInspector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let state: ProxyState
    private let route: Route
    private var buffered: ByteBuffer?
    private var done = false

    init(state: ProxyState, route: Route) {
        self.state = state
        self.route = route
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return context.fireChannelRead(data) }
        var incoming = unwrapInboundIn(data)
        if buffered == nil { buffered = incoming } else { buffered!.writeBuffer(&incoming) }
        switch buffered!.withUnsafeReadableBytes({ Self.inspect($0, route: route, state: state) }) {
        case .needMore: return
        case .pass: return release(context)
        case .deny(let reason, let subject):
            guard state.record(.service, allowed: false, rule: Self.rule, reason: reason, subject: subject) else { return release(context) }
            done = true
            buffered = nil
            context.close(promise: nil)
        }
    }

    static let rule = "built-in: SNI must equal the CONNECT host"

    /// What the first bytes of a plain tunnel decide.
    enum Verdict {
        /// Not enough bytes yet to tell.
        case needMore
        /// Not TLS, or a ClientHello naming the CONNECT host: relay the tunnel.
        case pass
        /// A ClientHello without SNI, naming another host, or that cannot be inspected: deny, recording this.
        case deny(reason: String, subject: [String: AuditValue])
    }

    /// Inspects what the client sent into a tunnel to `route` so far (the socket front and this
    /// handler both use it).
    static func inspect(_ bytes: UnsafeRawBufferPointer, route: Route, state: ProxyState) -> Verdict {
        // The whole ClientHello, however many records it spans (a name in a later record must not
        // slip through); up to OpenSSL's limit for a ClientHello, past which servers refuse it.
        let message: [UInt8]
        switch InterceptedSNIGuard.reassembledClientHello(bytes, maxLength: maxClientHello) {
        case .incomplete:
            guard bytes.count > maxBuffered else { return .needMore }
            // Only a client hiding its name in a flood of tiny records gets here: not inspected, not passed.
            let reason = "the TLS ClientHello in the tunnel to \(route.host.text):\(route.port) is spread over more than \(maxBuffered) bytes of records; it cannot be inspected"
            return .deny(reason: reason, subject: ["host": .string(route.host.text), "port": .int(Int(route.port)), "method": .string("CONNECT")])
        case .malformed: return .pass  // not TLS, or not a ClientHello a server would take
        case .complete(let complete): message = complete
        }
        // Read as BoringSSL reads it; what that refuses, as leniently as before (the first name).
        let name: String? = switch message.withUnsafeBytes({ InterceptedSNIGuard.serverName(inClientHelloBody: .init($0, from: 4, to: $0.count)) }) {
        case .serverName(let name): name
        default: serverName(inClientHello: message)
        }
        var subject: [String: AuditValue] = ["host": .string(route.host.text), "port": .int(Int(route.port)), "method": .string("CONNECT")]
        let target = "\(route.host.text):\(route.port)"
        // A server picks its virtual host by the SNI (or its default one when there is none): a
        // tunnel whose ClientHello does not name its own host could reach a service uninspected.
        guard let name else {
            return .deny(reason: "the TLS ClientHello in the tunnel to \(target) names no server (SNI); with services: in the policy, a TLS tunnel must name the host it was opened to", subject: subject)
        }
        subject["sni"] = .string(String(name.prefix(100)))
        guard let host = HostName.normalise(name) else {
            return .deny(reason: "the TLS SNI '\(name.prefix(100))' in the tunnel to \(target) is not a host name", subject: subject)
        }
        subject["sni"] = .string(host.text)
        if let service = state.service(for: host) {
            subject["service"] = .string(service.definition.name)
            let reason = "TLS SNI '\(host.text)' names the service \(service.definition.name), but the tunnel was opened to \(target); connect to the service by its name so its requests are inspected"
            return .deny(reason: reason, subject: subject)
        }
        guard host == route.host else {
            return .deny(reason: "TLS SNI '\(host.text)' differs from the tunnel's host \(target); with services: in the policy, a TLS tunnel must name the host it was opened to", subject: subject)
        }
        return .pass
    }

    private func release(_ context: ChannelHandlerContext) {
        done = true
        if let buffered {
            self.buffered = nil
            context.fireChannelRead(wrapInboundOut(buffered))
            context.fireChannelReadComplete()
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    /// The longest ClientHello body read (OpenSSL's `CLIENT_HELLO_MAX_LENGTH`); a longer one passes.
    static let maxClientHello = 131_396
    /// The most bytes of records buffered while a ClientHello is incomplete (real clients send
    /// it in one record or a few).
    static let maxBuffered = 256 * 1024

    /// The host_name of the first server_name extension of a ClientHello handshake message, read
    /// leniently: lengths are checked only against the message's end, never against each other,
    /// so that a name BoringSSL would refuse to read is still seen in a plain tunnel (whose server
    /// may read it).
    static func serverName(inClientHello message: [UInt8]) -> String? {
        message.withUnsafeBytes { bytes in
            var reader = InterceptedSNIGuard.FieldReader(bytes, from: 0, to: bytes.count)
            guard reader.number(1) == 1, reader.skip(3 + 2 + 32),
                  let sessionLength = reader.number(1), reader.skip(sessionLength),
                  let suitesLength = reader.number(2), reader.skip(suitesLength),
                  let compressionLength = reader.number(1), reader.skip(compressionLength),
                  let extensionsLength = reader.number(2) else { return nil }
            // Extensions start within the declared block; each one may run past it, to the message's end.
            let blockEnd = reader.remaining - min(extensionsLength, reader.remaining)
            while reader.remaining >= blockEnd + 4 {
                guard let type = reader.number(2), let length = reader.number(2) else { return nil }
                guard type == 0 else { guard reader.skip(length) else { return nil }; continue }
                guard reader.skip(2), reader.number(1) == 0, let nameLength = reader.number(2), let name = reader.field(nameLength) else { return nil }
                return name.string
            }
            return nil
        }
    }
}

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

    static var rule: String { TunnelSNIInspector.rule }

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
        let scan = buffered!.withUnsafeReadableBytes { Self.scanClientHello($0) }
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

    /// What the first bytes of a TLS connection say about its ClientHello.
    enum ClientHelloScan: Equatable {
        /// More bytes are needed.
        case incomplete
        /// Not a well-formed ClientHello (or not one this parser reads: SSLv2 format, alerts first).
        case malformed
        /// A complete, well-formed ClientHello; its server_name host name, if it has one.
        case serverName(String?)
    }

    /// Reads the ClientHello at the start of `bytes`, a TLS client's first bytes, from as many
    /// handshake records as it spans.
    static func scanClientHello(_ bytes: UnsafeRawBufferPointer) -> ClientHelloScan {
        // Most ClientHellos are one record: read that one in place.
        if bytes.count >= 9, bytes[0] == 0x16, bytes[1] == 3, bytes[5] == 1 {
            let length = Int(bytes[3]) << 8 | Int(bytes[4])
            let bodyLength = Int(bytes[6]) << 16 | Int(bytes[7]) << 8 | Int(bytes[8])
            if length <= 16384 + 2048, bodyLength <= 16384, 4 + bodyLength <= length, 5 + length <= bytes.count {
                return serverName(inClientHelloBody: FieldReader(bytes, from: 9, to: 9 + bodyLength))
            }
        }
        switch reassembledClientHello(bytes, maxLength: 16384) {
        case .incomplete: return .incomplete
        case .malformed: return .malformed
        case .complete(let message): return message.withUnsafeBytes { serverName(inClientHelloBody: FieldReader($0, from: 4, to: $0.count)) }
        }
    }

    /// A ClientHello handshake message gathered from the handshake records it spans.
    enum ReassembledClientHello {
        /// More bytes are needed.
        case incomplete
        /// Not handshake records starting with a ClientHello of at most the given length.
        case malformed
        /// The ClientHello message: its 4-byte header and body.
        case complete([UInt8])
    }

    /// Gathers the ClientHello at the start of `bytes` (a TLS client's first bytes) from as many
    /// handshake records as it spans; a body longer than `maxLength` is `.malformed`.
    static func reassembledClientHello(_ bytes: UnsafeRawBufferPointer, maxLength: Int) -> ReassembledClientHello {
        var message: [UInt8] = []
        var offset = 0
        while true {
            guard offset < bytes.count else { return .incomplete }
            guard bytes[offset] == 0x16 else { return .malformed }
            guard offset + 5 <= bytes.count else { return .incomplete }
            guard bytes[offset + 1] == 3 else { return .malformed }
            let length = Int(bytes[offset + 3]) << 8 | Int(bytes[offset + 4])
            guard length > 0, length <= 16384 + 2048 else { return .malformed }
            let start = offset + 5
            let available = min(length, bytes.count - start)
            message.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<start + available]))
            if message.count >= 4 {
                guard message[0] == 1 else { return .malformed }
                let bodyLength = Int(message[1]) << 16 | Int(message[2]) << 8 | Int(message[3])
                guard bodyLength <= maxLength else { return .malformed }
                if message.count >= 4 + bodyLength { return .complete(Array(message.prefix(4 + bodyLength))) }
            }
            guard available == length else { return .incomplete }
            offset = start + length
        }
    }

    /// The server name of a ClientHello body, parsed as BoringSSL parses it (the fields' framing,
    /// one server_name extension holding exactly one host_name of 1–255 bytes without NUL);
    /// `.malformed` for anything else.
    static func serverName(inClientHelloBody body: FieldReader) -> ClientHelloScan {
        var body = body
        guard body.skip(2 + 32),
              let sessionLength = body.number(1), sessionLength <= 32, body.skip(sessionLength),
              let suitesLength = body.number(2), suitesLength >= 2, suitesLength % 2 == 0, body.skip(suitesLength),
              let compressionLength = body.number(1), compressionLength >= 1, body.skip(compressionLength) else { return .malformed }
        guard !body.atEnd else { return .serverName(nil) }  // no extensions
        guard let extensionsLength = body.number(2), extensionsLength == body.remaining else { return .malformed }
        var name: String?
        while !body.atEnd {
            guard let type = body.number(2), let length = body.number(2), var data = body.field(length) else { return .malformed }
            guard type == 0 else { continue }
            guard name == nil,
                  let listLength = data.number(2), listLength == data.remaining,
                  data.number(1) == 0,
                  let nameLength = data.number(2), nameLength > 0, nameLength <= 255,
                  let host = data.field(nameLength), data.atEnd, !host.contains(0) else { return .malformed }
            name = host.string
        }
        return .serverName(name)
    }

    /// Big-endian fields of a byte range, read front to back.
    struct FieldReader {
        private let bytes: UnsafeRawBufferPointer
        private var index: Int
        private let end: Int

        init(_ bytes: UnsafeRawBufferPointer, from start: Int, to end: Int) {
            self.bytes = bytes
            self.index = start
            self.end = end
        }

        var atEnd: Bool { index == end }
        var remaining: Int { end - index }

        mutating func skip(_ count: Int) -> Bool {
            guard remaining >= count else { return false }
            index += count
            return true
        }

        mutating func number(_ width: Int) -> Int? {
            guard remaining >= width else { return nil }
            var value = 0
            for offset in index..<index + width { value = value << 8 | Int(bytes[offset]) }
            index += width
            return value
        }

        /// The next `count` bytes as a reader of their own.
        mutating func field(_ count: Int) -> FieldReader? {
            guard remaining >= count else { return nil }
            defer { index += count }
            return FieldReader(bytes, from: index, to: index + count)
        }

        func contains(_ byte: UInt8) -> Bool { bytes[index..<end].contains(byte) }
        var string: String { String(decoding: bytes[index..<end], as: UTF8.self) }
    }
}
