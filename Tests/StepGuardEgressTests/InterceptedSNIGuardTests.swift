import Foundation
import StepGuardTestSupport
import Testing
@testable import StepGuardEgress

/// The ClientHello reader in front of the TLS handler of intercepted connections: it must see the
/// server name BoringSSL would see, whatever the record framing, and refuse what it cannot read.
@Suite struct InterceptedSNIGuardTests {
    /// A ClientHello body (without the handshake header) with `extensions` (type, data), or no
    /// extensions block at all when nil.
    static func clientHelloBody(extensions: [(UInt16, [UInt8])]?) -> [UInt8] {
        var body: [UInt8] = [0x03, 0x03] + [UInt8](repeating: 7, count: 32)
        body += [32] + [UInt8](repeating: 9, count: 32)  // session id
        body += [0x00, 0x04, 0x13, 0x01, 0x13, 0x02]  // two cipher suites
        body += [0x01, 0x00]  // null compression
        if let extensions {
            var block: [UInt8] = []
            for (type, data) in extensions { block += be16(Int(type)) + be16(data.count) + data }
            body += be16(block.count) + block
        }
        return body
    }

    static func serverNameExtension(_ name: String) -> (UInt16, [UInt8]) {
        let host = Array(name.utf8)
        let entry: [UInt8] = [0] + be16(host.count) + host
        return (0, be16(entry.count) + entry)
    }

    static func be16(_ value: Int) -> [UInt8] { [UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)] }

    /// The handshake message in records carrying at most `fragment` bytes each.
    static func records(_ body: [UInt8], fragment: Int = 16384) -> [UInt8] {
        let message: [UInt8] = [1, UInt8(body.count >> 16), UInt8(body.count >> 8 & 0xFF), UInt8(body.count & 0xFF)] + body
        var bytes: [UInt8] = []
        var start = 0
        while start < message.count {
            let piece = message[start..<min(message.count, start + fragment)]
            bytes += [0x16, 0x03, 0x01] + be16(piece.count) + piece
            start += fragment
        }
        return bytes
    }

    static func scan(_ bytes: [UInt8]) -> ClientHello.ClientHelloScan {
        bytes.withUnsafeBytes { ClientHello.scanClientHello($0) }
    }

    static let typical = clientHelloBody(extensions: [(10, [0, 2, 0, 29]), serverNameExtension("vault.example.test"), (43, [2, 3, 4])])

    @Test func theServerNameIsReadFromOneRecordOrFromManySmallOnes() {
        #expect(Self.scan(Self.records(Self.typical)) == .serverName("vault.example.test"))
        for fragment in [1, 3, 40, 100] {
            #expect(Self.scan(Self.records(Self.typical, fragment: fragment)) == .serverName("vault.example.test"), "fragments of \(fragment)")
        }
    }

    @Test func everyPrefixIsIncompleteAndTrailingBytesDoNotMatter() {
        let bytes = Self.records(Self.typical, fragment: 50)
        for count in 0..<bytes.count {
            #expect(Self.scan(Array(bytes.prefix(count))) == .incomplete, "\(count) bytes")
        }
        // The client's next records (or garbage) after the ClientHello are the TLS library's business.
        #expect(Self.scan(bytes + [0x14, 0x03, 0x03, 0x00, 0x01, 0x01, 0xFF]) == .serverName("vault.example.test"))
    }

    @Test func noExtensionsOrNoServerNameIsNoName() {
        #expect(Self.scan(Self.records(Self.clientHelloBody(extensions: nil))) == .serverName(nil))
        #expect(Self.scan(Self.records(Self.clientHelloBody(extensions: []))) == .serverName(nil))
        #expect(Self.scan(Self.records(Self.clientHelloBody(extensions: [(10, [0, 2, 0, 29])]))) == .serverName(nil))
    }

    @Test func whatBoringSSLRefusesOrCouldReadDifferentlyIsMalformed() {
        let sni = Self.serverNameExtension("vault.example.test")
        let other = Self.serverNameExtension("evil.example")
        let twoNames: [UInt8] = [0] + Self.be16(18) + Array("vault.example.test".utf8) + [0] + Self.be16(12) + Array("evil.example".utf8)
        var cases: [String: [UInt8]] = [
            "two server_name extensions": Self.records(Self.clientHelloBody(extensions: [sni, other])),
            "two names in one extension": Self.records(Self.clientHelloBody(extensions: [(0, Self.be16(twoNames.count) + twoNames)])),
            "a name type other than host_name": Self.records(Self.clientHelloBody(extensions: [(0, Self.be16(15) + [1] + Self.be16(12) + Array("evil.example".utf8))])),
            "an empty name": Self.records(Self.clientHelloBody(extensions: [(0, Self.be16(3) + [0, 0, 0])])),
            "a NUL in the name": Self.records(Self.clientHelloBody(extensions: [Self.serverNameExtension("vault.example.test\u{0}.evil.example")])),
            "a name longer than 255 bytes": Self.records(Self.clientHelloBody(extensions: [Self.serverNameExtension(String(repeating: "a", count: 256))])),
            "an extension longer than the block": Self.records(Self.clientHelloBody(extensions: nil) + Self.be16(8) + [0, 10, 0, 9, 0, 2, 0, 29]),
            "not a handshake record": [0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5],
            "not a ClientHello": [0x16, 0x03, 0x01, 0x00, 0x04, 2, 0, 0, 0],
            "an empty record": [0x16, 0x03, 0x01, 0x00, 0x00],
            "an SSLv2 ClientHello": [0x80, 0x2E, 0x01, 0x03, 0x01],
            "a ClientHello over 16 KiB": [0x16, 0x03, 0x01, 0x00, 0x04, 1, 0x00, 0x40, 0x01],
        ]
        var body = Self.typical
        body.append(0)  // one byte after the extensions block
        cases["bytes after the extensions"] = Self.records(body)
        for (name, bytes) in cases {
            #expect(Self.scan(bytes) == .malformed, "\(name)")
        }
    }

    @Test func aClientHelloOver16KiBIsRefusedBeforeInterceptionButReadForTunnels() {
        let padded = Self.clientHelloBody(extensions: [(21, [UInt8](repeating: 0, count: 20000)), Self.serverNameExtension("fulcio.sigstore.dev")])
        let bytes = Self.records(padded)
        #expect(Self.scan(bytes) == .malformed)
        let reassembled = bytes.withUnsafeBytes { ClientHello.reassembledClientHello($0, maxLength: TunnelStart.maxClientHello) }
        guard case .complete(let message) = reassembled else { Issue.record("\(reassembled)"); return }
        #expect(message.count == 4 + padded.count)
        #expect(ClientHello.lenientServerName(message) == "fulcio.sigstore.dev")
    }

    /// What the strict reader refuses, the tunnel inspector still reads leniently: the first name,
    /// even in an extension that runs past its block, or a block that runs past the message.
    @Test func theTunnelsLenientReaderSeesTheFirstNameWhereverItCanBeRead() {
        func message(_ body: [UInt8]) -> [UInt8] { [1, UInt8(body.count >> 16), UInt8(body.count >> 8 & 0xFF), UInt8(body.count & 0xFF)] + body }
        let name = Array("fulcio.sigstore.dev".utf8)
        let entry: [UInt8] = [0] + Self.be16(name.count) + name
        let twoNames = entry + [0] + Self.be16(12) + Array("evil.example".utf8)
        let base = Self.clientHelloBody(extensions: nil)
        let lenient: [String: [UInt8]] = [
            "two names in one extension": Self.clientHelloBody(extensions: [(10, [0, 2, 0, 29]), (0, Self.be16(twoNames.count) + twoNames)]),
            "an extension longer than its block": base + Self.be16(4) + [0, 0] + Self.be16(2 + entry.count) + Self.be16(entry.count) + entry,
            "a block longer than the message": base + Self.be16(500) + [0, 0] + Self.be16(2 + entry.count) + Self.be16(entry.count) + entry,
            "a list length that disagrees": base + Self.be16(4 + 2 + entry.count) + [0, 0] + Self.be16(2 + entry.count) + Self.be16(99) + entry,
            "bytes after the extensions": Self.clientHelloBody(extensions: [Self.serverNameExtension("fulcio.sigstore.dev")]) + [0],
        ]
        for (name, body) in lenient {
            #expect(Self.scan(Self.records(body)) == .malformed, "\(name): the strict reader must refuse it")
            #expect(ClientHello.lenientServerName(message(body)) == "fulcio.sigstore.dev", "\(name)")
        }
        // Nothing to read: no extension starts within the block, or a name runs past the message's end.
        let unreadable: [String: [UInt8]] = [
            "the name after the block": base + Self.be16(3) + [0, 10, 0, 0, 0] + Self.be16(entry.count + 2) + Self.be16(entry.count) + entry,
            "a name cut short": base + Self.be16(4 + 2 + entry.count) + [0, 0] + Self.be16(2 + entry.count) + Self.be16(entry.count) + entry.dropLast(3),
            "not a ClientHello": [2, 0, 0, 4, 1, 2, 3, 4],
        ]
        for (name, bytes) in unreadable {
            let whole = name == "not a ClientHello" ? bytes : message(bytes)
            #expect(ClientHello.lenientServerName(whole) == nil, "\(name)")
        }
    }

    /// A ClientHello made by a real client library (Python's ssl, OpenSSL underneath).
    @Test func aRealClientHelloNamesItsServer() throws {
        let script = """
        import ssl, sys
        \(PythonTLS.clientHello(serverName: "fulcio.sigstore.dev"))
        sys.stdout.write(hello.hex())
        """
        let result = try ProgramRun.start("/usr/bin/env", ["python3", "-c", script], environment: TestEnvironment.base).wait(timeout: 20)
        var bytes: [UInt8] = []
        var hex = Substring(result.stdout)
        while hex.count >= 2, let byte = UInt8(hex.prefix(2), radix: 16) {
            bytes.append(byte)
            hex = hex.dropFirst(2)
        }
        #expect(bytes.count > 100, "\(result.stderr)")
        #expect(Self.scan(bytes) == .serverName("fulcio.sigstore.dev"))
    }
}
