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
        let verdict = buffered!.withUnsafeReadableBytes { Self.scan($0) }
        guard case .serverName(let name) = verdict else {
            if case .other = verdict { release(context) }
            return
        }
        guard let host = HostName.normalise(name), let service = state.service(for: host) else { return release(context) }
        if state.recordServiceHiddenInTunnel(route: route, sni: host, service: service) {
            done = true
            buffered = nil
            context.close(promise: nil)
        } else {
            release(context)
        }
    }

    /// What the first bytes of a tunnel show.
    enum Scan {
        /// Not enough bytes yet to tell.
        case needMore
        /// A TLS ClientHello naming this server.
        case serverName(String)
        /// Anything else (not TLS, no SNI, malformed).
        case other
    }

    /// Looks for a complete first TLS record holding a ClientHello with a server name.
    static func scan(_ bytes: UnsafeRawBufferPointer) -> Scan {
        guard let first = bytes.first else { return .needMore }
        guard first == 0x16 else { return .other }
        guard bytes.count >= 5 else { return .needMore }
        let length = Int(bytes[3]) << 8 | Int(bytes[4])
        guard length <= 18432 else { return .other }
        guard bytes.count >= 5 + length else { return .needMore }
        return serverName(inClientHello: Array(bytes[5..<(5 + length)])).map { .serverName($0) } ?? .other
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
