/// One problem found in a policy: where, what is wrong, and what is expected instead.
public struct PolicyDiagnostic: Sendable, Equatable, CustomStringConvertible {
    public let location: SourceLocation
    /// What is wrong, e.g. "unknown key 'egres' in policy; did you mean 'egress'?".
    public let message: String
    /// What would be accepted, e.g. "one of: enforce, audit".
    public let expected: String?

    public init(location: SourceLocation, message: String, expected: String? = nil) {
        self.location = location
        self.message = message
        self.expected = expected
    }

    public var description: String {
        "\(location): error: \(message)" + (expected.map { " (expected \($0))" } ?? "")
    }
}

/// A policy that cannot be used: every problem found, each with its location.
public struct PolicyError: Error, Sendable, Equatable, CustomStringConvertible {
    public let diagnostics: [PolicyDiagnostic]

    public init(_ diagnostics: [PolicyDiagnostic]) { self.diagnostics = diagnostics }

    public init(file: String, message: String, expected: String? = nil) {
        self.diagnostics = [PolicyDiagnostic(location: SourceLocation(file: file, line: 1, column: 1), message: message, expected: expected)]
    }

    public var description: String {
        diagnostics.map(\.description).joined(separator: "\n")
    }
}
