import StepGuardCore
/// Writes the reports' JSON (dictionaries, arrays, strings, integers, doubles, booleans) with
/// sorted keys, two-space indentation and unescaped slashes — the layout JSONSerialization's
/// `[.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]` gives, at a fraction of its cost
/// (it sorted keys through ICU collation: a fifth of a history scan with 600 findings).
enum JSONWriter {
    /// `value` as JSON text, ending in a newline.
    static func write(_ value: Any) -> String {
        var out = ""
        out.reserveCapacity(4096)
        append(value, indent: 0, to: &out)
        out += "\n"
        return out
    }

    private static func append(_ value: Any, indent: Int, to out: inout String) {
        switch value {
        case let string as String:
            appendString(string, to: &out)
        case let bool as Bool:
            out += bool ? "true" : "false"
        case let int as Int:
            out += String(int)
        case let double as Double:
            out += double.isFinite ? String(double) : "null"
        case let object as [String: Any]:
            if object.isEmpty { out += "{}"; return }
            out += "{\n"
            let pad = String(repeating: " ", count: indent + 2)
            for (n, key) in object.keys.sorted().enumerated() {
                out += pad
                appendString(key, to: &out)
                out += " : "
                append(object[key]!, indent: indent + 2, to: &out)
                out += n == object.count - 1 ? "\n" : ",\n"
            }
            out += String(repeating: " ", count: indent) + "}"
        case let array as [Any]:
            if array.isEmpty { out += "[]"; return }
            out += "[\n"
            let pad = String(repeating: " ", count: indent + 2)
            for (n, item) in array.enumerated() {
                out += pad
                append(item, indent: indent + 2, to: &out)
                out += n == array.count - 1 ? "\n" : ",\n"
            }
            out += String(repeating: " ", count: indent) + "]"
        default:
            out += "null"
        }
    }

    private static func appendString(_ string: String, to out: inout String) {
        out += JSONText.quoted(string)
    }
}
