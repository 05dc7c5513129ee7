import StepGuardCore
import StepGuardYAML

/// Walks a YAML node tree and collects diagnostics instead of stopping at the first problem.
final class PolicyReader {
    let file: String
    private(set) var diagnostics: [PolicyDiagnostic] = []

    init(file: String) { self.file = file }

    func location(_ node: Node) -> SourceLocation {
        let mark = node.mark
        return SourceLocation(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1)
    }

    func error(_ node: Node, _ message: String, expected: String? = nil) {
        diagnostics.append(PolicyDiagnostic(location: location(node), message: message, expected: expected))
    }

    func error(at location: SourceLocation, _ message: String, expected: String? = nil) {
        diagnostics.append(PolicyDiagnostic(location: location, message: message, expected: expected))
    }

    /// A mapping's entries by key, reporting a non-mapping value, non-string keys and unknown keys
    /// (with the nearest valid key as a suggestion).
    func mapping(_ node: Node, _ context: String, keys allowed: [String]) -> [String: (key: Node, value: Node)]? {
        guard case .mapping(let mapping) = node else {
            error(node, "\(context) must be a mapping, not \(kind(node))", expected: "keys: \(allowed.joined(separator: ", "))")
            return nil
        }
        var entries: [String: (key: Node, value: Node)] = [:]
        for (key, value) in mapping {
            guard case .scalar(let scalar) = key else {
                error(key, "\(context) has a key that is not a string")
                continue
            }
            guard allowed.contains(scalar.string) else {
                let hint = nearest(to: scalar.string, in: allowed).map { "; did you mean '\($0)'?" } ?? ""
                error(key, "unknown key '\(scalar.string)' in \(context)\(hint)", expected: "one of: \(allowed.joined(separator: ", "))")
                continue
            }
            entries[scalar.string] = (key, value)
        }
        return entries
    }

    /// A mapping with free-form string keys (claims, resolve, steps), in document order.
    func freeMapping(_ node: Node, _ context: String, expected: String) -> [(key: String, keyNode: Node, value: Node)] {
        guard case .mapping(let mapping) = node else {
            error(node, "\(context) must be a mapping, not \(kind(node))", expected: expected)
            return []
        }
        return mapping.compactMap { key, value in
            guard case .scalar(let scalar) = key, !scalar.string.isEmpty else {
                error(key, "\(context) has a key that is not a string", expected: expected)
                return nil
            }
            return (scalar.string, key, value)
        }
    }

    func require(_ entries: [String: (key: Node, value: Node)], _ key: String, in node: Node, _ context: String) -> Node? {
        if let entry = entries[key] { return entry.value }
        error(node, "\(context) is missing the required key '\(key)'")
        return nil
    }

    /// A non-null scalar as text.
    func string(_ node: Node, _ context: String, expected: @autoclosure () -> String = "a string") -> String? {
        guard case .scalar(let scalar) = node, !isNull(scalar) else {
            error(node, "\(context) must be a string, not \(kind(node))", expected: expected())
            return nil
        }
        return scalar.string
    }

    /// One string or a list of strings.
    func strings(_ node: Node, _ context: String, expected: String = "a string or a list of strings") -> [(String, Node)] {
        if case .sequence(let sequence) = node {
            return sequence.compactMap { item in string(item, "each entry of \(context)", expected: expected).map { ($0, item) } }
        }
        return string(node, context, expected: expected).map { [($0, node)] } ?? []
    }

    func choice<E: RawRepresentable & CaseIterable>(_ node: Node, _ context: String, as _: E.Type) -> E? where E.RawValue == String {
        // The options are listed only for an error: a policy is read before every step.
        func options() -> [String] { E.allCases.map { $0.rawValue } }
        guard let text = string(node, context, expected: "one of: \(options().joined(separator: ", "))") else { return nil }
        guard let value = E(rawValue: text) else {
            let options = options()
            let hint = nearest(to: text, in: options).map { "; did you mean '\($0)'?" } ?? ""
            error(node, "'\(text)' is not a valid \(context)\(hint)", expected: "one of: \(options.joined(separator: ", "))")
            return nil
        }
        return value
    }

    func bool(_ node: Node, _ context: String) -> Bool? {
        guard case .scalar(let scalar) = node, scalar.style == .plain, let value = Bool(scalar.string.lowercased()) else {
            error(node, "\(context) must be true or false", expected: "true or false")
            return nil
        }
        return value
    }

    func integer(_ node: Node, _ context: String, range: ClosedRange<Int>) -> Int? {
        guard case .scalar(let scalar) = node, scalar.style == .plain, let value = Int(scalar.string), range.contains(value) else {
            error(node, "\(context) must be a whole number from \(range.lowerBound) to \(range.upperBound)", expected: "a number such as \(range.lowerBound)")
            return nil
        }
        return value
    }

    func duration(_ node: Node, _ context: String) -> PolicyDuration? {
        guard let text = string(node, context, expected: "a duration such as 30s, 5m, 1h") else { return nil }
        return parse(node, context) { () throws(MatcherError) in try PolicyDuration(parsing: text) }
    }

    /// Runs a matcher constructor and turns its error into a diagnostic at `node`.
    func parse<T>(_ node: Node, _ context: String, _ build: () throws(MatcherError) -> T) -> T? {
        do {
            return try build()
        } catch {
            self.error(node, "bad \(context): \(error.problem)", expected: error.expected)
            return nil
        }
    }

    func kind(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar): isNull(scalar) ? "null" : "a scalar ('\(scalar.string)')"
        case .mapping: "a mapping"
        case .sequence: "a list"
        }
    }

    func isNull(_ scalar: Node.Scalar) -> Bool {
        scalar.style == .plain && ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }
}
