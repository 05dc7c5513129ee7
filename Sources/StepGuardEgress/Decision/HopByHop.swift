/// ASCII helpers for header names, which compare case-insensitively.
enum ASCII {
    /// ASCII case-insensitive equality of `name` with `lower`, which is lower case; no allocation.
    static func equalsIgnoringCase(_ name: String, _ lower: String) -> Bool {
        name.utf8.elementsEqual(lower.utf8) { ($0 >= 65 && $0 <= 90 ? $0 + 32 : $0) == $1 }
    }
}

/// Header fields that concern one connection only (RFC 9110 §7.6.1) and are not forwarded.
enum HopByHop {
    /// Whether the field named by `range` of `bytes` is hop-by-hop, or named in `listed` (lower
    /// case, from Connection): the socket front's check.
    static func drops(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, listed: [String]) -> Bool {
        if lengths.contains(range.count), names.contains(where: { bytes.equalsIgnoringCase(range, $0) }) { return true }
        guard !listed.isEmpty else { return false }
        return listed.contains { bytes.equalsIgnoringCase(range, $0) }
    }

    /// Whether `name` is hop-by-hop: the NIO pipeline's check.
    static func isHopByHop(_ name: String) -> Bool {
        lengths.contains(name.utf8.count) && names.contains { ASCII.equalsIgnoringCase(name, $0) }
    }

    /// The fields of `fields` to forward: without hop-by-hop fields and those the Connection field
    /// names; nil when there are none to drop (most requests), so the caller keeps what it has.
    static func forwarded<Fields: Sequence>(_ fields: Fields) -> [(name: String, value: String)]? where Fields.Element == (name: String, value: String) {
        var listed: [String] = []
        var found = false
        for (name, value) in fields where isHopByHop(name) {
            found = true
            if ASCII.equalsIgnoringCase(name, "connection") {
                for token in value.utf8.split(separator: UInt8(ascii: ",")) {
                    let trimmed = token.drop { $0 == 32 || $0 == 9 }.reversed().drop { $0 == 32 || $0 == 9 }.reversed()
                    if !trimmed.isEmpty { listed.append(String(decoding: trimmed, as: UTF8.self).lowercased()) }
                }
            }
        }
        guard found else { return nil }
        return fields.filter { field in !isHopByHop(field.name) && !listed.contains { ASCII.equalsIgnoringCase(field.name, $0) } }
    }

    /// Lower case.
    static let names = ["connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate",
                        "te", "trailer", "upgrade", "expect"]
    private static let lengths = Set(names.map(\.utf8.count))
}

/// Which requests the proxy sends again after a pooled upstream connection turns out closed before
/// any response: only bodiless requests whose method is safe (RFC 9110 §9.2.2), which cannot have
/// had an effect the client did not ask for twice.
enum RequestRetry {
    /// Whether a bodiless request with `method` may be sent again.
    static func allowed(method: String) -> Bool { method == "GET" || method == "HEAD" || method == "OPTIONS" }
}
