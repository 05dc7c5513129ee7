import NIOCore
import StepGuardAudit

/// Looks at the first bytes of a plain CONNECT tunnel: when they are a TLS ClientHello whose SNI
/// names a service the policy intercepts (a tunnel opened by address or alias to bypass inspection),
/// the tunnel is denied. Anything else passes through untouched and the inspector leaves the pipeline.
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
        let bytes = buffered!.readableBytesView
        guard let first = bytes.first else { return }
        guard first == 0x16 else { return release(context) }
        guard bytes.count >= 5 else { return }
        let length = Int(bytes[bytes.startIndex + 3]) << 8 | Int(bytes[bytes.startIndex + 4])
        guard length <= 18432 else { return release(context) }
        guard bytes.count >= 5 + length else { return }
        let record = Array(bytes[(bytes.startIndex + 5)..<(bytes.startIndex + 5 + length)])
        guard let name = Self.serverName(inClientHello: record), let host = HostName.normalise(name), let service = state.service(for: host) else {
            return release(context)
        }
        let reason = "TLS SNI '\(host.text)' names the service \(service.definition.name), but the tunnel was opened to \(route.host.text):\(route.port); connect to the service by its name so its requests are inspected"
        let blocked = state.record(.service, allowed: false, rule: "built-in: SNI must equal the CONNECT host", reason: reason,
                                   subject: ["host": .string(route.host.text), "port": .int(Int(route.port)), "sni": .string(host.text),
                                             "service": .string(service.definition.name), "method": .string("CONNECT")])
        if blocked {
            done = true
            buffered = nil
            context.close(promise: nil)
        } else {
            release(context)
        }
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

    /// The host_name of the server_name extension of a TLS handshake record holding a ClientHello.
    static func serverName(inClientHello record: [UInt8]) -> String? {
        var index = 0
        func take(_ count: Int) -> ArraySlice<UInt8>? {
            guard count >= 0, index + count <= record.count else { return nil }
            defer { index += count }
            return record[index..<index + count]
        }
        func number(_ count: Int) -> Int? { take(count)?.reduce(0) { $0 << 8 | Int($1) } }
        guard number(1) == 1, number(3) != nil, take(2) != nil, take(32) != nil,
              let sessionLength = number(1), take(sessionLength) != nil,
              let suitesLength = number(2), take(suitesLength) != nil,
              let compressionLength = number(1), take(compressionLength) != nil,
              let extensionsLength = number(2) else { return nil }
        let end = min(record.count, index + extensionsLength)
        while index + 4 <= end {
            guard let type = number(2), let length = number(2) else { return nil }
            guard type == 0 else { guard take(length) != nil else { return nil }; continue }
            guard number(2) != nil, number(1) == 0, let nameLength = number(2), let name = take(nameLength) else { return nil }
            return String(decoding: name, as: UTF8.self)
        }
        return nil
    }
}
