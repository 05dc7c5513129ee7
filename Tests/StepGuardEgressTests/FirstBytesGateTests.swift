import NIOCore
import NIOEmbedded
import StepGuardAudit
import Testing
@testable import StepGuardEgress

/// The handler that holds a connection's first bytes until they are decided, driven without
/// sockets through NIO's `EmbeddedChannel`.
@Suite struct FirstBytesGateTests {
    /// A channel with `gate` in its pipeline, connected (in memory: nothing is sent anywhere).
    static func channel(_ gate: FirstBytesGate) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(handler: gate)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        return channel
    }

    static func send(_ channel: EmbeddedChannel, _ bytes: ArraySlice<UInt8>) throws {
        try channel.writeInbound(channel.allocator.buffer(bytes: bytes))
    }

    static func hello(naming name: String) -> [UInt8] {
        InterceptedSNIGuardTests.records(InterceptedSNIGuardTests.clientHelloBody(
            extensions: [InterceptedSNIGuardTests.serverNameExtension(name)]), fragment: 40)
    }

    @Test func aClientHelloNamingTheHostPassesWholeAndInOrderOnlyOnceComplete() throws {
        let trail = try Egress.trail()
        let gate = FirstBytesGate.interceptedSNI(host: "builds.example.test", trail: trail)
        let channel = try Self.channel(gate)
        let hello = Self.hello(naming: "Builds.Example.TEST.")
        let cut = hello.count / 2
        try Self.send(channel, hello[..<cut])
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil, "nothing passes before the ClientHello is complete")
        try Self.send(channel, hello[cut...])
        let passed = try #require(try channel.readInbound(as: ByteBuffer.self))
        #expect(Array(passed.readableBytesView) == hello)
        #expect(throws: ChannelPipelineError.notFound) { try channel.pipeline.syncOperations.context(handler: gate) }
        try Self.send(channel, [1, 2, 3])  // the gate is gone: later bytes reach the next handler directly
        #expect(try channel.readInbound(as: ByteBuffer.self).map { Array($0.readableBytesView) } == [1, 2, 3])
        #expect(trail.recorded.isEmpty)
        #expect(channel.isActive)
    }

    @Test func anotherNameIsRefusedWithAnAlertAndAnAuditEventAndNothingPasses() throws {
        let trail = try Egress.trail()
        let channel = try Self.channel(FirstBytesGate.interceptedSNI(host: "builds.example.test", trail: trail))
        try Self.send(channel, Self.hello(naming: "vault.example.test")[...])
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        let alert = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(Array(alert.readableBytesView) == [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 112])
        #expect(!channel.isActive)
        let event = try #require(trail.recorded.first)
        #expect(event.decision == .deny && event.type == .service)
        #expect(event.reason.contains("vault.example.test"))
    }

    @Test func unparseableOrEndlessClientHellosGetADecodeError() throws {
        let garbage = try Self.channel(FirstBytesGate.interceptedSNI(host: "h.test", trail: try Egress.trail()))
        try Self.send(garbage, [0x16, 0x03, 0x01, 0x00, 0x05, 0x02, 0, 0, 1, 0])  // a record whose handshake is not a ClientHello
        #expect(try garbage.readOutbound(as: ByteBuffer.self).map { Array($0.readableBytesView) } == [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 50])
        #expect(!garbage.isActive)

        // A ClientHello that claims more than the limit and never ends.
        let endless = try Self.channel(FirstBytesGate.interceptedSNI(host: "h.test", trail: try Egress.trail()))
        let header: [UInt8] = [0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0xFF, 0xFF, 0xFF]
        try Self.send(endless, header[...])
        var sent = header.count
        while endless.isActive && sent <= FirstBytesGate.maxInterceptedClientHello + 16384 {
            let chunk = [UInt8](repeating: 0, count: 4096)
            try Self.send(endless, chunk[...])
            sent += chunk.count
        }
        #expect(!endless.isActive, "closed after \(sent) bytes")
        #expect(sent <= FirstBytesGate.maxInterceptedClientHello + 4096)
        #expect(try endless.readInbound(as: ByteBuffer.self) == nil)
    }

    @Test func aRefusalWithoutAReplyClosesAndPassesNothing() throws {
        var asked = 0
        let gate = FirstBytesGate { bytes in
            asked += 1
            return bytes.count < 4 ? .needMore : .refuse(reply: [])
        }
        let channel = try Self.channel(gate)
        try Self.send(channel, [1, 2])
        try Self.send(channel, [3, 4])
        #expect(asked == 2, "asked again with everything held")
        #expect(!channel.isActive)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
    }
}
