import StepGuardCore
/// The fields of a `multipart/form-data` request body (RFC 7578), read strictly enough to find
/// every field a server would see; nil when the body is not well-formed multipart with the
/// boundary its Content-Type names.
enum MultipartForm {
    /// One part: its field name, whether it is a file upload, and its content.
    struct Field {
        let name: String
        let isFile: Bool
        let value: [UInt8]
    }

    /// The boundary parameter of a `multipart/…` Content-Type value.
    static func boundary(inContentType value: String) -> String? {
        for parameter in value.split(separator: ";").dropFirst() {
            let parts = parameter.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, parts[0].trimmingWhitespace().lowercased() == "boundary" else { continue }
            var boundary = parts[1].trimmingWhitespace()
            if boundary.count >= 2, boundary.hasPrefix("\""), boundary.hasSuffix("\"") { boundary = String(boundary.dropFirst().dropLast()) }
            return boundary.isEmpty || boundary.utf8.count > 70 ? nil : boundary
        }
        return nil
    }

    /// The fields of `body`, delimited by `boundary`.
    static func fields(_ body: [UInt8], boundary: String) -> [Field]? {
        let delimiter = Array("--\(boundary)".utf8)
        let separator = Array("\r\n--\(boundary)".utf8)
        guard body.starts(with: delimiter) else { return nil }
        var index = delimiter.count
        var fields: [Field] = []
        while true {
            // After a delimiter: `--` ends the body, CRLF starts a part.
            if body[index...].starts(with: Array("--".utf8)) { return fields }
            guard body[index...].starts(with: Array("\r\n".utf8)) else { return nil }
            index += 2
            guard let headerEnd = find(Array("\r\n\r\n".utf8), in: body, from: index) else { return nil }
            let headers = String(decoding: body[index..<headerEnd], as: UTF8.self)
            guard let disposition = headers.split(separator: "\r\n").first(where: { $0.lowercased().hasPrefix("content-disposition:") }),
                  let name = parameter("name", in: disposition) else { return nil }
            let contentStart = headerEnd + 4
            guard let contentEnd = find(separator, in: body, from: contentStart) else { return nil }
            fields.append(Field(name: name, isFile: parameter("filename", in: disposition) != nil, value: Array(body[contentStart..<contentEnd])))
            index = contentEnd + separator.count
        }
    }

    /// The value of `name="…"` (or unquoted) in a Content-Disposition header line.
    private static func parameter(_ name: String, in line: Substring) -> String? {
        for item in line.split(separator: ";").dropFirst() {
            let parts = item.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, parts[0].trimmingWhitespace().lowercased() == name else { continue }
            var value = parts[1].trimmingWhitespace()
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
            return value
        }
        return nil
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard needle.count <= haystack.count - start else { return nil }
        var index = start
        while index + needle.count <= haystack.count {
            if haystack[index] == needle[0], haystack[index..<index + needle.count].elementsEqual(needle) { return index }
            index += 1
        }
        return nil
    }
}
