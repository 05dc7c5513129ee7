import StepGuardPolicy

/// The record types and response codes the step's resolver speaks (RFC 1035, 3596, 2782, 6891, 9460).
enum DNSType {
    static let a: UInt16 = 1
    static let cname: UInt16 = 5
    static let aaaa: UInt16 = 28
    static let srv: UInt16 = 33
    static let opt: UInt16 = 41
    static let https: UInt16 = 65
    /// The class IN.
    static let internet: UInt16 = 1

    /// The query types answered; every other type is refused.
    static let answered: Set<UInt16> = [a, aaaa, cname, https, srv]
}

/// A DNS response code (the header's RCODE).
enum DNSRCode: UInt8, Sendable {
    case noError = 0, formatError = 1, serverFailure = 2, nameError = 3, notImplemented = 4, refused = 5
}

/// A DNS name as it travels: its labels, bytes as received (RFC 4343: compared without case).
struct DNSName: Sendable, Hashable {
    /// The labels, without the root.
    let labels: [[UInt8]]

    /// The longest name on the wire (RFC 1035 §2.3.4), length bytes and the root included.
    static let maxWireLength = 255

    /// `labels` when they make a name of at most 255 bytes with labels of 1–63 bytes.
    init?(labels: [[UInt8]]) {
        guard labels.allSatisfy({ !$0.isEmpty && $0.count <= 63 }), labels.reduce(1, { $0 + 1 + $1.count }) <= Self.maxWireLength else { return nil }
        self.labels = labels
    }

    /// The name `text` (dotted, a trailing dot allowed).
    init?(_ text: String) {
        var text = Substring(text)
        if text.hasSuffix(".") { text = text.dropLast() }
        guard !text.isEmpty else { return nil }
        self.init(labels: text.split(separator: ".", omittingEmptySubsequences: false).map { Array($0.utf8) })
    }

    /// The lower-cased dotted name for policy decisions, or nil when a label holds a byte other than
    /// an ASCII letter, digit, `-` or `_` (no host name does: such a query is refused, not looked up).
    var hostText: String? {
        var text = ""
        text.reserveCapacity(wireLength)
        for (index, label) in labels.enumerated() {
            if index > 0 { text.append(".") }
            for byte in label {
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"):
                    text.unicodeScalars.append(Unicode.Scalar(byte))
                case UInt8(ascii: "A")...UInt8(ascii: "Z"):
                    text.unicodeScalars.append(Unicode.Scalar(byte + 32))
                default:
                    return nil
                }
            }
        }
        return labels.isEmpty ? nil : text
    }

    var wireLength: Int { labels.reduce(1) { $0 + 1 + $1.count } }

    /// The uncompressed wire form.
    var wire: [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(wireLength)
        for label in labels { bytes.append(UInt8(label.count)); bytes += label }
        bytes.append(0)
        return bytes
    }
}

/// Why a message could not be read.
enum DNSParseError: Error, Equatable {
    /// The message ends inside a field.
    case truncated
    /// A compression pointer points forward or at itself (loops), or a label type is reserved.
    case badPointer
    /// A name longer than 255 bytes.
    case nameTooLong
    /// Something else the message must not hold (the text says what).
    case malformed(String)
}

/// Reads big-endian fields and names of one DNS message, bounds-checked.
struct DNSReader {
    let bytes: [UInt8]
    var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func u8() throws(DNSParseError) -> UInt8 {
        guard offset < bytes.count else { throw .truncated }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func u16() throws(DNSParseError) -> UInt16 {
        guard offset + 2 <= bytes.count else { throw .truncated }
        defer { offset += 2 }
        return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    mutating func u32() throws(DNSParseError) -> UInt32 {
        UInt32(try u16()) << 16 | UInt32(try u16())
    }

    mutating func take(_ count: Int) throws(DNSParseError) -> [UInt8] {
        guard count >= 0, offset + count <= bytes.count else { throw .truncated }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    /// A name at the current offset, following compression pointers (RFC 1035 §4.1.4). A pointer
    /// must point before the label that holds it, so every jump goes backwards and a loop is impossible.
    mutating func name() throws(DNSParseError) -> DNSName {
        var labels: [[UInt8]] = []
        var wireLength = 1
        var position = offset
        var jumped = false
        var lowestStart = offset
        while true {
            guard position < bytes.count else { throw .truncated }
            let length = Int(bytes[position])
            switch length & 0xC0 {
            case 0x00:
                if length == 0 {
                    if !jumped { offset = position + 1 }
                    guard let name = DNSName(labels: labels) else { throw .nameTooLong }
                    return name
                }
                guard position + 1 + length <= bytes.count else { throw .truncated }
                wireLength += 1 + length
                guard wireLength <= DNSName.maxWireLength else { throw .nameTooLong }
                labels.append(Array(bytes[position + 1...position + length]))
                position += 1 + length
            case 0xC0:
                guard position + 2 <= bytes.count else { throw .truncated }
                let target = (length & 0x3F) << 8 | Int(bytes[position + 1])
                guard target < lowestStart else { throw .badPointer }
                if !jumped { offset = position + 2 }
                jumped = true
                lowestStart = target
                position = target
            default:
                throw .badPointer
            }
        }
    }
}

/// One question from the step, as its query asked it.
struct DNSQuery: Sendable {
    let id: UInt16
    let recursionDesired: Bool
    /// Whether the client sent EDNS0 (an OPT record): the answer carries one too.
    let edns: Bool
    /// The most bytes the client takes over UDP (512, or its EDNS0 payload size).
    let udpLimit: Int
    let name: DNSName
    let type: UInt16
    let qclass: UInt16
}

/// What a datagram or TCP message from the step is.
enum DNSIncoming: Sendable {
    case query(DNSQuery)
    /// Unreadable, but with a header to answer: FORMERR (or NOTIMP for an opcode other than QUERY).
    case unanswerable(id: UInt16, code: DNSRCode)
    /// Not a query at all (too short for a header, or a response): dropped without a word.
    case drop
}

/// A record of the answer section the resolver writes: its owner is the question's name.
struct DNSAnswer: Sendable, Equatable {
    let type: UInt16
    let ttl: UInt32
    let data: [UInt8]

    /// An A or AAAA record for `address`.
    static func address(_ address: IPAddress, ttl: UInt32) -> DNSAnswer {
        switch address {
        case .v4(let value): DNSAnswer(type: DNSType.a, ttl: ttl, data: withUnsafeBytes(of: value.bigEndian) { Array($0) })
        case .v6(let bytes): DNSAnswer(type: DNSType.aaaa, ttl: ttl, data: bytes)
        }
    }

    /// An SRV record pointing at `target`.
    static func service(priority: UInt16, weight: UInt16, port: UInt16, target: DNSName, ttl: UInt32) -> DNSAnswer {
        var data: [UInt8] = []
        for field in [priority, weight, port] { data += [UInt8(field >> 8), UInt8(field & 0xFF)] }
        return DNSAnswer(type: DNSType.srv, ttl: ttl, data: data + target.wire)
    }
}

/// A record read from an upstream server's answer section.
struct DNSRecord: Sendable, Equatable {
    enum Content: Sendable, Equatable {
        case address(IPAddress)
        case alias(DNSName)
        case service(priority: UInt16, weight: UInt16, port: UInt16, target: DNSName)
        case other
    }
    let owner: DNSName
    let type: UInt16
    let ttl: UInt32
    let content: Content
}

/// An upstream server's response to one of the resolver's queries.
struct DNSResponse: Sendable {
    let id: UInt16
    let code: UInt8
    let truncated: Bool
    let question: (name: DNSName, type: UInt16)?
    let answers: [DNSRecord]
}

/// The strict codec of the step's resolver: queries in, answers out (and the few upstream
/// responses it reads). Every count and length is checked against the message; anything it cannot
/// read is a ``DNSParseError``, never a crash.
enum DNSCodec {
    static let headerLength = 12
    /// The largest UDP answer sent to a client that advertises more (RFC 9715's safe size).
    static let maxUDPPayload = 1232

    // MARK: Queries from the step

    /// Reads a query from the step.
    static func readQuery(_ bytes: [UInt8]) -> DNSIncoming {
        guard bytes.count >= headerLength else { return .drop }
        let id = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
        let flags = UInt16(bytes[2]) << 8 | UInt16(bytes[3])
        guard flags & 0x8000 == 0 else { return .drop }  // a response: never answered (no reflection loops)
        guard (flags >> 11) & 0xF == 0 else { return .unanswerable(id: id, code: .notImplemented) }
        do throws(DNSParseError) {
            var reader = DNSReader(bytes)
            reader.offset = 4
            let (questions, answers, authorities, additionals) = (try reader.u16(), try reader.u16(), try reader.u16(), try reader.u16())
            guard questions == 1, answers == 0, authorities == 0, additionals <= 1 else { throw .malformed("a query holds one question and at most an OPT record") }
            let name = try reader.name()
            let (type, qclass) = (try reader.u16(), try reader.u16())
            var edns = false
            var udpLimit = 512
            if additionals == 1 {
                let owner = try reader.name()
                guard owner.labels.isEmpty, try reader.u16() == DNSType.opt else { throw .malformed("the additional record of a query must be OPT") }
                udpLimit = min(max(512, Int(try reader.u16())), maxUDPPayload)
                _ = try reader.u32()
                _ = try reader.take(Int(try reader.u16()))
                edns = true
            }
            guard reader.offset == bytes.count else { throw .malformed("bytes after the query") }
            return .query(DNSQuery(id: id, recursionDesired: flags & 0x0100 != 0, edns: edns, udpLimit: udpLimit, name: name, type: type, qclass: qclass))
        } catch {
            return .unanswerable(id: id, code: .formatError)
        }
    }

    /// The answer to `query`: `code`, with `answers` owned by the question's name (written as a
    /// pointer to it). When the answer exceeds `limit` bytes, it goes without its records and with TC set.
    static func answer(_ query: DNSQuery, code: DNSRCode, answers: [DNSAnswer] = [], limit: Int = 65535) -> [UInt8] {
        var message = header(id: query.id, recursionDesired: query.recursionDesired, code: code, questions: 1, answers: answers.count,
                             additionals: query.edns ? 1 : 0)
        message += query.name.wire
        message += [UInt8(query.type >> 8), UInt8(query.type & 0xFF), UInt8(query.qclass >> 8), UInt8(query.qclass & 0xFF)]
        let questionEnd = message.count
        for answer in answers {
            message += [0xC0, UInt8(headerLength)]  // the question's name
            message += [UInt8(answer.type >> 8), UInt8(answer.type & 0xFF), 0, UInt8(DNSType.internet)]
            message += withUnsafeBytes(of: answer.ttl.bigEndian) { Array($0) }
            message += [UInt8(answer.data.count >> 8), UInt8(answer.data.count & 0xFF)]
            message += answer.data
        }
        let opt: [UInt8] = query.edns ? [0, 0, UInt8(DNSType.opt), UInt8(maxUDPPayload >> 8), UInt8(maxUDPPayload & 0xFF), 0, 0, 0, 0, 0, 0] : []
        if message.count + opt.count > limit {
            message.removeSubrange(questionEnd...)
            message[2] |= 0x02  // TC: ask again over TCP
            message[6] = 0
            message[7] = 0
        }
        return message + opt
    }

    /// A header-only answer (no question) with `code`: FORMERR and NOTIMP for unreadable queries.
    static func bareAnswer(id: UInt16, code: DNSRCode) -> [UInt8] {
        header(id: id, recursionDesired: false, code: code, questions: 0, answers: 0, additionals: 0)
    }

    private static func header(id: UInt16, recursionDesired: Bool, code: DNSRCode, questions: Int, answers: Int, additionals: Int) -> [UInt8] {
        // QR, opcode QUERY, RD as asked, RA (the resolver recurses), the code.
        let flags: UInt16 = 0x8000 | (recursionDesired ? 0x0100 : 0) | 0x0080 | UInt16(code.rawValue)
        return [UInt8(id >> 8), UInt8(id & 0xFF), UInt8(flags >> 8), UInt8(flags & 0xFF),
                0, UInt8(questions), UInt8(answers >> 8), UInt8(answers & 0xFF), 0, 0, 0, UInt8(additionals)]
    }

    // MARK: Queries to an upstream server, and its responses

    /// A query for `name` and `type`, recursion desired, with EDNS0 (payload 1232).
    static func query(id: UInt16, name: DNSName, type: UInt16) -> [UInt8] {
        var message: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]
        message += name.wire
        message += [UInt8(type >> 8), UInt8(type & 0xFF), 0, UInt8(DNSType.internet)]
        message += [0, 0, UInt8(DNSType.opt), UInt8(maxUDPPayload >> 8), UInt8(maxUDPPayload & 0xFF), 0, 0, 0, 0, 0, 0]
        return message
    }

    /// Reads an upstream response: header, question, answer section (the rest is not needed).
    static func readResponse(_ bytes: [UInt8]) throws(DNSParseError) -> DNSResponse {
        var reader = DNSReader(bytes)
        let id = try reader.u16()
        let flags = try reader.u16()
        guard flags & 0x8000 != 0 else { throw .malformed("not a response") }
        let (questions, answers) = (try reader.u16(), try reader.u16())
        _ = try reader.u32()
        let truncated = flags & 0x0200 != 0
        guard questions <= 1 else { throw .malformed("\(questions) questions") }
        var question: (DNSName, UInt16)?
        if questions == 1 {
            let name = try reader.name()
            question = (name, try reader.u16())
            _ = try reader.u16()
        }
        var records: [DNSRecord] = []
        do throws(DNSParseError) {
            for _ in 0..<answers {
                let owner = try reader.name()
                let (type, _, ttl, length) = (try reader.u16(), try reader.u16(), try reader.u32(), Int(try reader.u16()))
                let end = reader.offset + length
                guard end <= bytes.count else { throw .truncated }
                let content: DNSRecord.Content
                switch type {
                case DNSType.a where length == 4:
                    let data = try reader.take(4)
                    content = .address(.v4(data.reduce(0) { $0 << 8 | UInt32($1) }))
                case DNSType.aaaa where length == 16:
                    content = .address(.v6(try reader.take(16)))
                case DNSType.cname:
                    content = .alias(try reader.name())
                case DNSType.srv:
                    let (priority, weight, port) = (try reader.u16(), try reader.u16(), try reader.u16())
                    content = .service(priority: priority, weight: weight, port: port, target: try reader.name())
                default:
                    content = .other
                }
                guard reader.offset <= end else { throw .malformed("a record's data is longer than its length") }
                reader.offset = end
                records.append(DNSRecord(owner: owner, type: type, ttl: ttl, content: content))
            }
        } catch .truncated where truncated {
            // A truncated response may end inside its answers: what was read stands, TC says the rest.
        }
        return DNSResponse(id: id, code: UInt8(flags & 0xF), truncated: truncated, question: question, answers: records)
    }

    /// The records of `response` that answer `name`: those owned by it or by the aliases (CNAME) it
    /// leads to, in order; at most 16 aliases are followed.
    static func records(answering name: DNSName, in response: DNSResponse) -> [DNSRecord] {
        var owners: Set<String> = [name.hostText ?? ""]
        var found: [DNSRecord] = []
        for _ in 0..<16 {
            var grew = false
            for record in response.answers where owners.contains(record.owner.hostText ?? "\u{0}") {
                if case .alias(let target) = record.content, let text = target.hostText, !owners.contains(text) {
                    owners.insert(text)
                    grew = true
                }
            }
            if !grew { break }
        }
        for record in response.answers where owners.contains(record.owner.hostText ?? "\u{0}") {
            if case .alias = record.content { continue }
            found.append(record)
        }
        return found
    }
}
