import FoundationEssentials
import Glibc

/// JSON string literals, shared by the audit log, the identity report and the doctor.
public enum JSONText {
    /// `text` as a JSON string literal. Control characters, C1 controls and the line and paragraph
    /// separators are escaped, so one value never breaks a JSON line or a terminal.
    public static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where c.value < 0x20 || (0x7f...0x9f).contains(c.value) || c.value == 0x2028 || c.value == 0x2029:
                out += "\\u" + Hex.padded(c.value, width: 4)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
