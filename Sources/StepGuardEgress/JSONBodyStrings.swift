import StepGuardCore

/// The string values of a JSON request body that may carry credentials, read with Identity's
/// strict parser (RFC 8259 in UTF-8 and nothing else: no trailing bytes, no lone surrogates, no
/// duplicate key, nesting at most ``StrictJSON/maxDepth`` deep). Keys that differ only in case are
/// refused too: servers disagree on which one counts (Go's decoder matches struct fields ignoring
/// case). What is refused cannot be inspected, so a credential rule that needs the body denies it.
enum JSONBodyStrings {
    /// Why a body is not read.
    struct Failure: Error, Sendable {
        let reason: String
    }

    /// Every string value in `bytes` with its path: object keys joined by `.`, array elements as `[i]`
    /// (`credentials.oidcIdentityToken`, `tokens[0]`), in path order.
    static func strings(in bytes: [UInt8]) throws(Failure) -> [(path: String, value: String)] {
        let document: JSONValue
        do { document = try StrictJSON.parse(bytes) } catch { throw Failure(reason: error.description) }
        var found: [(String, String)] = []
        try collect(document, path: "", into: &found)
        return found
    }

    private static func collect(_ value: JSONValue, path: String, into found: inout [(String, String)]) throws(Failure) {
        switch value {
        case .string(let text):
            found.append((path, text))
        case .array(let elements):
            for (index, element) in elements.enumerated() { try collect(element, path: "\(path)[\(index)]", into: &found) }
        case .object(let members):
            let keys = members.keys.sorted()
            guard Set(keys.map { $0.lowercased() }).count == keys.count else {
                throw Failure(reason: "an object has two keys that differ only in case (\(path.isEmpty ? "at the top" : "in \(path)"))")
            }
            for key in keys { try collect(members[key]!, path: path.isEmpty ? key : "\(path).\(key)", into: &found) }
        case .null, .bool, .number:
            break
        }
    }
}
