import StepGuardPolicy

/// A workflow file that cannot be checked or wrapped: what happened, where, and what to do.
///
/// Checks fail closed: a file that cannot be read or parsed is an error, never "clean".
public struct PipelineError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kinds of problem; the set may grow, so it is not public.
    enum Kind: Sendable, Equatable {
        /// The file or directory cannot be read.
        case unreadable
        /// The file is not valid YAML.
        case invalidYAML
        /// The file is YAML but neither a GitHub Actions workflow nor a GitLab CI file.
        case notAWorkflow
        /// A directory holds no workflow file.
        case noWorkflows
        /// `wrap` cannot rewrite this construct without touching other bytes.
        case unsupported
    }

    let kind: Kind
    /// Where the problem is (file:line:col; line 1, column 1 when it concerns the whole file).
    public let location: SourceLocation
    /// What happened.
    public let message: String
    /// What to do about it.
    public let remedy: String

    init(_ kind: Kind, at location: SourceLocation, _ message: String, remedy: String) {
        self.kind = kind
        self.location = location
        self.message = message
        self.remedy = remedy
    }

    /// True when the error is about unreadable or invalid input, false for other errors (no workflow found…).
    public var isInvalidInput: Bool { kind == .unreadable || kind == .invalidYAML || kind == .notAWorkflow }

    public var description: String { "\(location): error: \(message); \(remedy)" }
}
