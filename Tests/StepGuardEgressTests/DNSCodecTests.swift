import StepGuardPolicy
import Testing
@testable import StepGuardEgress

/// The step's resolver's DNS codec (issue #18): queries in, answers out, upstream responses read;
/// hostile messages give FORMERR or are dropped, never a crash.
@Suite struct DNSCodecTests {
    func name(_ text: String) throws -> DNSName { try #require(DNSName(text)) }

    /// A query as a stub resolver sends it, with `additional` bytes after the question.
    func rawQuery(id: UInt16 = 0x1234, flags: UInt16 = 0x0100, counts: [UInt16] = [1, 0, 0, 0], body: [UInt8]) -> [UInt8] {
        var bytes = [UInt8(id >> 8), UInt8(id & 0xFF), UInt8(flags >> 8), UInt8(flags & 0xFF)]
        for count in counts { bytes += [UInt8(count >> 8), UInt8(count & 0xFF)] }
        return bytes + body
    }

    func question(_ text: String, type: UInt16 = DNSType.a) throws -> [UInt8] {
        try name(text).wire + [UInt8(type >> 8), UInt8(type & 0xFF), 0, 1]
    }

    @Test func aQueryAndItsAnswerRoundTrip() throws {
        let query = DNSCodec.query(id: 0xBEEF, name: try name("Registry.NPMjs.org."), type: DNSType.aaaa)
        guard case .query(let read) = DNSCodec.readQuery(query) else { Issue.record("not read as a query"); return }
        #expect(read.id == 0xBEEF && read.type == DNSType.aaaa && read.qclass == DNSType.internet && read.recursionDesired)
        #expect(read.name.hostText == "registry.npmjs.org", "compared without case")
        #expect(read.edns && read.udpLimit == DNSCodec.maxUDPPayload)
        let address = try #require(IPAddress("fd73:6764:6e73::1"))
        let answer = DNSCodec.answer(read, code: .noError, answers: [.address(address, ttl: 5)])
        let response = try DNSCodec.readResponse(answer)
        #expect(response.id == 0xBEEF && response.code == 0 && !response.truncated)
        #expect(response.question?.name.labels.first == Array("Registry".utf8), "the question is echoed as asked (0x20 case checks)")
        #expect(response.answers == [DNSRecord(owner: read.name, type: DNSType.aaaa, ttl: 5, content: .address(address))])
        // The answer's owner is a pointer to the question: 2 bytes, not the name again.
        #expect(answer.count == 12 + read.name.wireLength + 4 + (2 + 10 + 16) + 11)
        #expect(answer[2] & 0x80 != 0 && answer[3] & 0x0F == 0 && answer[11] == 1, "QR set, NOERROR, one OPT record")
    }

    @Test func aQueryWithoutEDNSGetsNoOPTAndThe512ByteLimit() throws {
        guard case .query(let read) = DNSCodec.readQuery(rawQuery(body: try question("example.org"))) else { Issue.record("not read"); return }
        #expect(!read.edns && read.udpLimit == 512)
        let answer = DNSCodec.answer(read, code: .nameError)
        #expect(answer[11] == 0 && answer[3] & 0x0F == 3)
        // An EDNS0 OPT with a large payload size is taken, capped at 1232.
        let opt: [UInt8] = [0, 0, 41, 0x10, 0x00, 0, 0, 0x80, 0, 0, 4, 0, 10, 0, 0]
        guard case .query(let withOPT) = DNSCodec.readQuery(rawQuery(counts: [1, 0, 0, 1], body: try question("example.org") + opt)) else {
            Issue.record("OPT with an option not tolerated"); return
        }
        #expect(withOPT.edns && withOPT.udpLimit == 1232)
    }

    @Test func anAnswerTooLargeForUDPIsTruncatedWithTC() throws {
        guard case .query(let read) = DNSCodec.readQuery(rawQuery(body: try question("example.org", type: DNSType.srv))) else { Issue.record("not read"); return }
        let target = try name(String(repeating: "t", count: 60) + ".example.org")
        let answers = (0..<10).map { DNSAnswer.service(priority: 0, weight: UInt16($0), port: 443, target: target, ttl: 5) }
        let small = DNSCodec.answer(read, code: .noError, answers: answers, limit: read.udpLimit)
        #expect(small.count <= 512 && small[2] & 0x02 != 0 && small[7] == 0, "TC set, no records")
        let full = DNSCodec.answer(read, code: .noError, answers: answers, limit: 65535)
        #expect(full[2] & 0x02 == 0 && full[7] == 10)
        let response = try DNSCodec.readResponse(full)
        #expect(response.answers.count == 10)
        #expect(response.answers.last?.content == .service(priority: 0, weight: 9, port: 443, target: target))
    }

    @Test func hostileQueriesGetFormErrOrAreDropped() throws {
        let id: UInt16 = 0x4242
        let hostile: [(String, [UInt8])] = [
            ("a pointer to itself", rawQuery(id: id, body: [0xC0, 12, 0, 1, 0, 1])),
            ("a pointer forward", rawQuery(id: id, body: [0xC0, 14, 0, 1, 0, 1, 3] + Array("abc".utf8) + [0])),
            ("two labels pointing at each other", rawQuery(id: id, body: [1, UInt8(ascii: "a"), 0xC0, 14, 0xC0, 12])),
            ("a label running past the end", rawQuery(id: id, body: [40] + Array("short".utf8))),
            ("a name without its root", rawQuery(id: id, body: [3] + Array("abc".utf8))),
            ("a name over 255 bytes", rawQuery(id: id, body: Array((0..<5).map { _ in [63] + [UInt8](repeating: 0x61, count: 63) }.joined()) + [0, 0, 1, 0, 1])),
            ("a label over 63 bytes", rawQuery(id: id, body: [64] + [UInt8](repeating: 0x61, count: 64) + [0, 0, 1, 0, 1])),
            ("a reserved label type", rawQuery(id: id, body: [0x41, 0, 0, 1, 0, 1])),
            ("a question count beyond the packet", rawQuery(id: id, counts: [3, 0, 0, 0], body: try question("example.org"))),
            ("an answer in a query", rawQuery(id: id, counts: [1, 1, 0, 0], body: try question("example.org"))),
            ("additional records beyond the packet", rawQuery(id: id, counts: [1, 0, 0, 5], body: try question("example.org"))),
            ("an additional record that is not OPT", rawQuery(id: id, counts: [1, 0, 0, 1], body: try question("example.org") + (try question("x.org")) + [0, 0, 0, 0, 0, 0])),
            ("no question", rawQuery(id: id, counts: [0, 0, 0, 0], body: [])),
            ("a type cut short", rawQuery(id: id, body: try name("example.org").wire + [0])),
            ("bytes after the question", rawQuery(id: id, body: try question("example.org") + [0xFF])),
        ]
        for (what, bytes) in hostile {
            guard case .unanswerable(let answeredID, let code) = DNSCodec.readQuery(bytes) else { Issue.record("\(what): read as a query"); continue }
            #expect(answeredID == id && code == .formatError, "\(what)")
            let answer = DNSCodec.bareAnswer(id: answeredID, code: code)
            #expect(answer.count == 12 && answer[3] & 0x0F == 1, "\(what)")
        }
        for (what, bytes) in [("a short header", [UInt8](repeating: 0, count: 11)), ("a response", rawQuery(flags: 0x8180, body: try question("example.org")))] {
            guard case .drop = DNSCodec.readQuery(bytes) else { Issue.record("\(what): not dropped"); continue }
        }
        guard case .unanswerable(_, .notImplemented) = DNSCodec.readQuery(rawQuery(flags: 0x2800, body: try question("example.org"))) else {
            Issue.record("an UPDATE (opcode 5) was not refused as not implemented"); return
        }
    }

    @Test func hostileResponsesAreErrorsNotCrashes() throws {
        guard case .query(let query) = DNSCodec.readQuery(DNSCodec.query(id: 7, name: try name("a.example"), type: DNSType.a)) else { Issue.record("not read"); return }
        var response = DNSCodec.answer(query, code: .noError, answers: [.address(.v4(0xC612_0001), ttl: 5)])
        #expect(try DNSCodec.readResponse(response).answers.count == 1)
        response[response.count - 11 - 16 + 1] = 0xFF  // the answer's owner pointer (before the OPT record) aimed forward
        #expect(throws: DNSParseError.badPointer) { try DNSCodec.readResponse(response) }
        response[response.count - 11 - 16 + 1] = 12
        response.removeLast(11 + 3)  // cut inside the address
        #expect(throws: DNSParseError.truncated) { try DNSCodec.readResponse(response) }
        var generator = SystemRandomNumberGenerator()
        let seed = DNSCodec.query(id: 1, name: try name("www.example.org"), type: DNSType.a)
        for round in 0..<20_000 {
            var bytes = round % 2 == 0 ? seed : Array(seed.prefix(Int.random(in: 0...seed.count, using: &generator)))
            for _ in 0..<Int.random(in: 1...4, using: &generator) where !bytes.isEmpty {
                bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            }
            _ = DNSCodec.readQuery(bytes)
            _ = try? DNSCodec.readResponse(bytes)
        }
    }

    @Test func aliasesAreFollowedToTheAddressesTheyLeadTo() throws {
        // A response by hand: www.example.org CNAME edge.cdn.example, edge.cdn.example A 192.0.2.7, other.example A 192.0.2.9.
        let www = try name("www.example.org")
        var bytes: [UInt8] = [0, 9, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0] + www.wire + [0, 1, 0, 1]
        let edge = try name("edge.cdn.example").wire
        bytes += [0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, UInt8(edge.count)] + edge
        let edgeOffset = UInt8(bytes.count - edge.count)
        bytes += [0xC0, edgeOffset, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]
        bytes += try name("other.example").wire + [0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 9]
        let response = try DNSCodec.readResponse(bytes)
        let records = DNSCodec.records(answering: www, in: response)
        #expect(records.map(\.content) == [.address(.v4(0xC000_0207))])
    }
}
