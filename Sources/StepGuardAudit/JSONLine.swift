import StepGuardCore
import FoundationEssentials
import Glibc

/// A minimal JSON writer that keeps keys in the order given, so audit lines read
/// `time, type, decision, reason, …` left to right.
struct JSONLine {
    private var fields: [String] = []

    mutating func add(_ key: String, _ value: AuditValue) {
        fields.append("\(JSONText.quoted(key)):\(Self.encode(value))")
    }

    mutating func add(_ key: String, _ value: String) { add(key, .string(value)) }

    var text: String { "{" + fields.joined(separator: ",") + "}" }

    static func encode(_ value: AuditValue) -> String {
        switch value {
        case .string(let text): JSONText.quoted(text)
        case .int(let number): String(number)
        case .bool(let flag): flag ? "true" : "false"
        }
    }
}

extension AuditEvent {
    /// ISO 8601 UTC with milliseconds.
    static func timestamp(_ date: Date) -> String {
        Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(date)
    }

    /// The event as one JSON object: `time`, `type`, `decision`, `reason`, context, `rule`, then the
    /// subject's keys in alphabetical order.
    public func jsonLine(context: [(String, AuditValue)] = []) -> String {
        var line = JSONLine()
        line.add("time", Self.timestamp(time))
        line.add("type", type.rawValue)
        line.add("decision", decision.rawValue)
        line.add("reason", reason)
        for (key, value) in context { line.add(key, value) }
        if let rule { line.add("rule", rule) }
        for key in subject.keys.sorted() where !["time", "type", "decision", "reason", "rule"].contains(key) {
            line.add(key, subject[key]!)
        }
        return line.text
    }
}
