import Synchronization

/// The places a scan could not search completely: a rule's regex hit one of PCRE2's limits
/// (backtracking, depth, heap) on a file, so matches of that rule after that point may be missed.
/// A scan with any entry is incomplete and must not be reported as clean.
///
/// Shared by the worker threads of one ``SecretScanner``.
public final class IncompleteScanLog: Sendable {
    /// One rule that gave up on one file.
    public struct Entry: Sendable, Equatable {
        /// The rule whose regex gave up.
        public var ruleID: String
        /// The file (`-` for stdin; empty for a history blob, scanned once before its paths are known).
        public var path: String
        /// PCRE2's reason, e.g. `match limit exceeded`.
        public var reason: String
    }

    private let entries = Mutex<[Entry]>([])

    public init() {}

    func record(rule: String, path: String, reason: String) {
        entries.withLock { $0.append(Entry(ruleID: rule, path: path, reason: reason)) }
    }

    /// Every entry so far, sorted by path then rule.
    public var all: [Entry] {
        entries.withLock { $0 }.sorted { ($0.path, $0.ruleID) < ($1.path, $1.ruleID) }
    }

    /// An error naming each rule and file (the first 20), or nil when the scan was complete.
    public func error() -> SecretsError? {
        let all = all
        guard !all.isEmpty else { return nil }
        // History scans each blob once, before its paths are known: such an entry has no path.
        var lines = all.prefix(20).map { "rule `\($0.ruleID)` gave up on \($0.path.isEmpty ? "a blob of the history" : $0.path) (PCRE2: \($0.reason))" }
        if all.count > 20 { lines.append("… and \(all.count - 20) more") }
        return SecretsError(.incompleteScan, "the scan is incomplete: " + lines.joined(separator: "; ")
            + "; secrets there may be missed. Simplify the rule's regex (bound its repeats, avoid nested quantifiers) or split the file")
    }
}
