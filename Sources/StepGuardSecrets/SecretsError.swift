/// An error raised while loading rules or scanning for secrets.
///
/// Each error says what happened, where, and what to do about it.
public struct SecretsError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What kind of failure this is; the set may grow.
    public enum Kind: String, Sendable, Equatable {
        /// A rules file could not be read or parsed.
        case invalidRules
        /// A regular expression in a rule does not compile.
        case invalidRegex
        /// A file or directory could not be read.
        case unreadable
        /// A git operation (libgit2) failed.
        case git
        /// The ignore file or the baseline is malformed.
        case invalidConfig
        /// An internal engine failure (vectorscan, PCRE2).
        case engine
        /// A rule could not search a whole file (a PCRE2 limit): the scan is incomplete.
        case incompleteScan
    }

    /// The kind of failure.
    public let kind: Kind
    /// A full, human-readable message: what, where, what to do.
    public let message: String

    /// Creates an error of `kind` with a complete message.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
