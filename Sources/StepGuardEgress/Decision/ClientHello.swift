/// TLS ClientHello parsing for the SNI checks, free of I/O: what the first bytes of a TLS client
/// say about the server it names, read strictly (as BoringSSL reads it, for intercepted
/// connections) or leniently (as any server might, for plain tunnels).
enum ClientHello {
    /// The server name a whole ClientHello message (`reassembledClientHello`) asks for: read as
    /// BoringSSL reads it; what that refuses, as leniently as before (the first name). Nil: none.
    static func requestedServerName(_ message: [UInt8]) -> String? {
        switch message.withUnsafeBytes({ serverName(inClientHelloBody: .init($0, from: 4, to: $0.count)) }) {
        case .serverName(let name): name
        default: lenientServerName(message)
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

    /// The host_name of the first server_name extension of a ClientHello handshake message, read
    /// leniently: lengths are checked only against the message's end, never against each other,
    /// so that a name BoringSSL would refuse to read is still seen in a plain tunnel (whose server
    /// may read it).
    static func lenientServerName(_ message: [UInt8]) -> String? {
        message.withUnsafeBytes { bytes in
            var reader = FieldReader(bytes, from: 0, to: bytes.count)
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
