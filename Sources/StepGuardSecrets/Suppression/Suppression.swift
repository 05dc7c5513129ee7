import FoundationEssentials
import StepGuardCore
import Glibc
import StepGuardYAML

/// `.stepguard-ignore.yaml`: findings accepted on purpose, by fingerprint (rule + path + hash of
/// the secret, so entries survive line moves), each with a reason and an optional expiry date.
///
/// ```yaml
/// ignore:
///   - fingerprint: "aws-access-key-id:tests/fixtures/creds.txt:1f2e3d4c5b6a7988"
///     reason: fake key used by the parser tests
///     expires: 2027-01-31      # optional; the finding comes back after this day
/// ```
public struct IgnoreFile: Sendable {
    /// One accepted finding.
    public struct Entry: Sendable, Equatable {
        public var fingerprint: String
        public var reason: String
        /// Last day (UTC, `YYYY-MM-DD`) on which the entry applies.
        public var expires: String?
    }

    /// The entries in file order.
    public var entries: [Entry]
    /// Where the file was read from (for messages).
    public var source: String

    private struct Raw: Decodable {
        struct RawEntry: Decodable { var fingerprint: String?; var reason: String?; var expires: String? }
        var ignore: [RawEntry]?
    }

    /// Parses an ignore file; errors name the file and the entry.
    public init(yaml text: String, source: String) throws {
        self.source = source
        let raw: Raw
        do {
            raw = try YAMLDecoder().decode(Raw.self, from: text)
        } catch {
            throw SecretsError(.invalidConfig, "\(source): not a valid ignore file: \(SecretRuleSet.describe(error)); expected `ignore:` with a list of {fingerprint, reason, expires}")
        }
        entries = try (raw.ignore ?? []).enumerated().map { index, e in
            guard let fingerprint = e.fingerprint, !fingerprint.isEmpty else {
                throw SecretsError(.invalidConfig, "\(source): ignore[\(index)] has no `fingerprint`; copy it from the `fingerprint` of a finding (stepguard scan --format json)")
            }
            guard let reason = e.reason, !reason.trimmingWhitespace().isEmpty else {
                throw SecretsError(.invalidConfig, "\(source): ignore[\(index)] (\(fingerprint)) has no `reason`; say why this finding is acceptable")
            }
            if let expires = e.expires, Self.parseDay(expires) == nil {
                throw SecretsError(.invalidConfig, "\(source): ignore[\(index)] has expires `\(expires)`; write a date as YYYY-MM-DD")
            }
            return Entry(fingerprint: fingerprint, reason: reason, expires: e.expires)
        }
    }

    /// Loads `path`; nil when the file does not exist.
    public static func load(path: String) throws -> IgnoreFile? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SecretsError(.unreadable, "\(path): cannot read the ignore file; check its permissions")
        }
        return try IgnoreFile(yaml: String(decoding: data, as: UTF8.self), source: path)
    }

    static func parseDay(_ text: String) -> Int? {
        let parts = text.split(separator: "-").compactMap { Int($0) }
        guard parts.count == 3, (1...12).contains(parts[1]), (1...31).contains(parts[2]) else { return nil }
        return parts[0] * 10000 + parts[1] * 100 + parts[2]
    }

    /// `now`'s date in UTC as YYYYMMDD. By the C library's `gmtime_r`: named time zones need ICU,
    /// which the binary does not link (`TimeZone(identifier: "UTC")` is nil without it).
    static func today(_ now: Date) -> Int {
        var seconds = time_t(now.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        guard gmtime_r(&seconds, &parts) != nil else { return Int.max }  // unrepresentable: every entry counts as expired
        return Int(parts.tm_year + 1900) * 10000 + Int(parts.tm_mon + 1) * 100 + Int(parts.tm_mday)
    }

    /// Removes the findings this file accepts (unless their entry expired) from `report`.
    public func apply(to report: inout ScanReport, now: Date = Date()) {
        let day = Self.today(now)
        var active = Set<String>()
        for e in entries {
            if let expires = e.expires, let last = Self.parseDay(expires), last < day {
                report.expiredIgnores.append("\(source): entry \(e.fingerprint) expired on \(expires) (reason was: \(e.reason)); the finding is reported again")
            } else {
                active.insert(e.fingerprint)
            }
        }
        let before = report.findings.count
        report.findings.removeAll { active.contains($0.fingerprint) }
        report.suppressed += before - report.findings.count
    }
}

/// A previous JSON report: only findings whose fingerprint is not in it are reported.
public struct Baseline: Sendable {
    /// Fingerprints of the known findings.
    public var fingerprints: Set<String>

    /// Reads a report written by `stepguard scan --format json`.
    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SecretsError(.unreadable, "\(path): cannot read the baseline; pass a report written by `stepguard scan --format json`")
        }
        let object: JSONValue
        do {
            object = try StrictJSON.parse(Array(data))
        } catch {
            throw SecretsError(.invalidConfig, "\(path): the baseline is not JSON (\(error)); pass a report written by `stepguard scan --format json`")
        }
        let findings: [JSONValue]
        if let list = object.objectValue?["findings"]?.arrayValue {
            findings = list
        } else if let list = object.arrayValue {
            findings = list
        } else {
            throw SecretsError(.invalidConfig, "\(path): the baseline has no `findings` list; pass a report written by `stepguard scan --format json`")
        }
        fingerprints = Set(findings.compactMap { $0.objectValue?["fingerprint"]?.stringValue })
    }

    /// Removes known findings from `report`.
    public func apply(to report: inout ScanReport) {
        let before = report.findings.count
        report.findings.removeAll { fingerprints.contains($0.fingerprint) }
        report.suppressed += before - report.findings.count
    }
}
