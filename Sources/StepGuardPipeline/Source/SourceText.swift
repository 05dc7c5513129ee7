import FoundationEssentials
import StepGuardCore
import Glibc
import StepGuardPolicy
import StepGuardYAML

/// The original text of a workflow file, with the helpers that turn parser marks into exact
/// `file:line:col` locations and read `# stepguard: ignore[id]` comments.
struct SourceText {
    let path: String
    let text: String
    /// Lines without their `\n` (a `\r` stays), 1-based through ``line(_:)``.
    let lines: [String]

    init(path: String, text: String) {
        self.path = path
        self.text = text
        // Split on the scalar "\n": as Characters, "\r\n" is one grapheme and would not split.
        self.lines = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map { String(String.UnicodeScalarView($0)) }
    }

    func line(_ number: Int) -> String { number >= 1 && number <= lines.count ? lines[number - 1] : "" }

    func location(line: Int, column: Int) -> SourceLocation { SourceLocation(file: path, line: line, column: column) }

    func location(of node: Node) -> SourceLocation {
        guard let mark = node.mark else { return location(line: 1, column: 1) }
        return location(line: mark.line, column: mark.column)
    }

    /// The location of `needle` inside a single-line scalar `node`, or the node's own location.
    func location(of needle: String, in node: Node) -> SourceLocation {
        guard let mark = node.mark else { return location(line: 1, column: 1) }
        let extent = scalarLines(node)
        for number in extent {
            let scalars = Array(line(number).unicodeScalars)
            let start = number == mark.line ? max(0, mark.column - 1) : 0
            if let offset = Self.find(Array(needle.unicodeScalars), in: scalars, from: start) {
                return location(line: number, column: offset + 1)
            }
        }
        return location(of: node)
    }

    /// Source lines a scalar spans (its first line through the last more-indented or blank line).
    func scalarLines(_ node: Node) -> ClosedRange<Int> {
        guard let mark = node.mark else { return 1...1 }
        guard case let .scalar(scalar) = node, scalar.style == .literal || scalar.style == .folded else { return mark.line...mark.line }
        let owner = Self.indentation(line(mark.line))
        var last = mark.line
        var number = mark.line + 1
        while number <= lines.count {
            let text = line(number)
            if text.trimmingWhitespaceAndNewlines().isEmpty { number += 1; continue }
            if Self.indentation(text) <= owner { break }
            last = number
            number += 1
        }
        return mark.line...last
    }

    /// Physical lines of a scalar's content as written in the file, each with its 1-based line and the
    /// column of its first character: block scalars line by line, flow scalars as one line.
    func contentLines(of node: Node) -> [(text: String, line: Int, column: Int)] {
        guard case let .scalar(scalar) = node, let mark = node.mark else { return [] }
        switch scalar.style {
        case .literal, .folded:
            let range = scalarLines(node)
            guard range.count > 1 else { return [] }
            let body = Array(range.dropFirst())
            let indent = body.map { line($0) }.filter { !$0.trimmingWhitespace().isEmpty }.map(Self.indentation).min() ?? 0
            return body.map { number in
                let scalars = Array(line(number).unicodeScalars)
                let text = scalars.count > indent ? String(String.UnicodeScalarView(scalars[indent...])) : ""
                return (text, number, indent + 1)
            }
        case .singleQuoted, .doubleQuoted:
            return [(scalar.string, mark.line, mark.column + 1)]
        default:
            return [(scalar.string, mark.line, mark.column)]
        }
    }

    /// The ids named by `# stepguard: ignore[id, ...]` on `line` (`*` or `all` ignores every rule).
    func ignoredRules(onLine number: Int) -> Set<String> {
        let text = line(number)
        guard let marker = text.scalarRange(of: "stepguard: ignore[") ?? text.scalarRange(of: "stepguard:ignore[") else { return [] }
        guard text[..<marker.lowerBound].contains("#") else { return [] }
        let rest = text[marker.upperBound...]
        guard let close = rest.firstIndex(of: "]") else { return [] }
        return Set(rest[..<close].split(separator: ",").map { $0.trimmingWhitespace() })
    }

    /// Whether a finding is suppressed by an ignore comment on its line or on the comment-only line above.
    func isIgnored(_ finding: Finding) -> Bool {
        var ids = ignoredRules(onLine: finding.location.line)
        let above = line(finding.location.line - 1).trimmingWhitespace()
        if above.hasPrefix("#") { ids.formUnion(ignoredRules(onLine: finding.location.line - 1)) }
        return ids.contains(finding.rule.rawValue) || ids.contains("*") || ids.contains("all")
    }

    static func indentation(_ line: String) -> Int { line.unicodeScalars.prefix { $0 == " " }.count }

    static func find(_ needle: [Unicode.Scalar], in haystack: [Unicode.Scalar], from start: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count, start <= haystack.count - needle.count else { return nil }
        for index in start...(haystack.count - needle.count) where haystack[index] == needle[0] {
            if Array(haystack[index..<(index + needle.count)]) == needle { return index }
        }
        return nil
    }
}
