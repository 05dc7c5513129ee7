import StepGuardCore
import FoundationEssentials
import Glibc

/// Output formats of `stepguard scan`.
public enum ReportFormat: String, Sendable, CaseIterable {
    case text, json, sarif, junit, github
}

/// Renders a ``ScanReport``. Secrets only ever appear through ``redact(_:mode:)``.
///
/// Text, SARIF, GitHub and JUnit list one entry per secret (``SecretGroup``: same rule, same value)
/// with every location; JSON keeps one entry per location and names its group.
public struct Reporter: Sendable {
    public var format: ReportFormat
    public var redaction: RedactionMode
    /// Colour (text format on a terminal).
    public var color: Bool
    /// Tool version written in SARIF.
    public var version = "0.1.0"
    /// Results of `--verify` by group key (``SecretGroup/key``); nil when not asked for.
    public var verification: [String: VerificationResult]?

    public init(format: ReportFormat, redaction: RedactionMode = .partial, color: Bool = false) {
        self.format = format
        self.redaction = redaction
        self.color = color
    }

    /// The report in the chosen format.
    public func render(_ report: ScanReport, rules: [SecretRule]) -> String {
        switch format {
        case .text: return text(report)
        case .json: return json(report)
        case .sarif: return sarif(report, rules: rules)
        case .junit: return junit(report)
        case .github: return github(report)
        }
    }

    /// One-line summary for stderr: what was scanned, found, skipped and suppressed.
    public static func summary(_ report: ScanReport) -> String {
        let secrets = report.secretGroups.count, locations = report.findings.count
        var parts = ["\(secrets) secret\(secrets == 1 ? "" : "s") found"
                        + (locations == secrets ? "" : " (\(locations) locations)"),
                     "\(report.scannedFiles) file\(report.scannedFiles == 1 ? "" : "s") (\(report.scannedBytes) bytes) scanned"]
        if report.commits > 0 { parts.append("\(report.commits) commits") }
        var skipped: [String] = []
        if report.skippedBinary > 0 { skipped.append("\(report.skippedBinary) binary") }
        if report.skippedLarge > 0 { skipped.append("\(report.skippedLarge) over the size limit (raise it with --max-file-size)") }
        if report.skippedSymlinks > 0 { skipped.append("\(report.skippedSymlinks) symlinks leading outside the tree") }
        if report.skippedAllowedPaths > 0 { skipped.append("\(report.skippedAllowedPaths) allow-listed paths") }
        if !skipped.isEmpty { parts.append("skipped " + skipped.joined(separator: ", ")) }
        if report.suppressed > 0 { parts.append("\(report.suppressed) suppressed") }
        return "stepguard scan: " + parts.joined(separator: "; ")
    }

    /// The verification of `group` (nil without `--verify`).
    func verified(_ group: SecretGroup) -> VerificationResult? {
        guard let verification else { return nil }
        return verification[group.key] ?? VerificationResult(.unknown, "not verified")
    }

    /// `path:line:col` of a location, with its commit in history mode.
    static func place(_ f: Finding) -> String {
        "\(f.path.isEmpty ? "-" : f.path):\(f.line):\(f.column)" + (f.commit.map { " in commit \($0.prefix(12))" } ?? "")
    }

    /// The other locations of `group`, for one-line messages (at most 10, then a count).
    static func otherPlaces(_ group: SecretGroup) -> String {
        let others = group.locations.dropFirst()
        guard !others.isEmpty else { return "" }
        let shown = others.prefix(10).map(place).joined(separator: ", ")
        return "; also at \(shown)" + (others.count > 10 ? " and \(others.count - 10) more" : "")
    }

    func text(_ report: ScanReport) -> String {
        let red = color ? "\u{1B}[31m" : "", bold = color ? "\u{1B}[1m" : "", reset = color ? "\u{1B}[0m" : ""
        var out = ""
        for group in report.secretGroups {
            let f = group.first
            let count = group.locations.count
            out += "\(bold)\(f.path):\(f.line):\(f.column)\(reset): \(red)\(f.ruleID)\(reset) \(f.description) [\(f.severity.rawValue), \(f.lifetime.rawValue)] secret=\(redact(f.secret, mode: redaction))"
                + (count > 1 ? " (\(count) locations)" : "") + "\n"
            if let commit = f.commit {
                out += "    commit \(commit) by \(f.author ?? "") <\(f.email ?? "")> on \(f.date ?? "")\n"
            }
            out += "    fingerprint: \(f.fingerprint)\n"
            for other in group.locations.dropFirst() {
                out += "    also at \(Self.place(other))" + (other.fingerprint == f.fingerprint ? "" : ", fingerprint: \(other.fingerprint)") + "\n"
            }
            if let v = verified(group) {
                out += "    verified: \(v.status.rawValue) — \(v.detail)\n"
            }
        }
        return out
    }

    func findingObject(_ f: Finding) -> [String: Any] {
        let key = SecretGroup.key(of: f)
        var o: [String: Any] = [
            "group": key,
            "rule_id": f.ruleID, "description": f.description, "severity": f.severity.rawValue,
            "lifetime": f.lifetime.rawValue, "path": f.path, "line": f.line, "column": f.column,
            "end_line": f.endLine, "secret": redact(f.secret, mode: redaction), "fingerprint": f.fingerprint,
        ]
        if let c = f.commit { o["commit"] = c }
        if let a = f.author { o["author"] = a }
        if let e = f.email { o["email"] = e }
        if let d = f.date { o["date"] = d }
        if let verification {
            let v = verification[key] ?? VerificationResult(.unknown, "not verified")
            o["verification"] = ["status": v.status.rawValue, "detail": v.detail]
        }
        return o
    }

    func serialize(_ object: Any) -> String {
        JSONWriter.write(object)
    }

    func json(_ report: ScanReport) -> String {
        serialize([
            "version": 1,
            "tool": "stepguard",
            "findings": report.findings.map(findingObject),
            "summary": [
                "findings": report.findings.count, "secrets": report.secretGroups.count, "suppressed": report.suppressed,
                "scanned_files": report.scannedFiles, "scanned_bytes": report.scannedBytes,
                "skipped_binary": report.skippedBinary, "skipped_large": report.skippedLarge,
                "skipped_symlinks": report.skippedSymlinks, "commits": report.commits,
                "expired_ignores": report.expiredIgnores,
            ] as [String: Any],
        ] as [String: Any])
    }

    static func sarifLevel(_ s: SecretSeverity) -> String {
        switch s {
        case .critical, .high: return "error"
        case .medium: return "warning"
        case .low: return "note"
        }
    }

    static func securitySeverity(_ s: SecretSeverity) -> String {
        switch s {
        case .critical: return "9.5"
        case .high: return "8.0"
        case .medium: return "5.5"
        case .low: return "3.0"
        }
    }

    func sarif(_ report: ScanReport, rules: [SecretRule]) -> String {
        let used = Set(report.findings.map(\.ruleID))
        let driverRules = rules.filter { used.contains($0.id) }
        let index = Dictionary(uniqueKeysWithValues: driverRules.enumerated().map { ($1.id, $0) })
        let sarifRules: [[String: Any]] = driverRules.map { r in
            [
                "id": r.id,
                "name": r.id.split(separator: "-").map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined(),
                "shortDescription": ["text": r.description],
                "fullDescription": ["text": "\(r.description) (\(r.lifetime.rawValue) credential)"],
                "help": ["text": "Revoke and rotate the credential, remove it from the file (and from history), and load it from a secret store at run time."],
                "defaultConfiguration": ["level": Self.sarifLevel(r.severity)],
                "properties": ["tags": ["security", "secret"], "security-severity": Self.securitySeverity(r.severity)] as [String: Any],
            ]
        }
        let results: [[String: Any]] = report.secretGroups.map { group in
            let f = group.first
            let v = verified(group)
            var text = "\(f.description): \(redact(f.secret, mode: redaction))"
            if group.locations.count > 1 { text += " in \(group.locations.count) locations" + Self.otherPlaces(group) }
            if let v { text += ". Verified \(v.status.rawValue): \(v.detail)" }
            var result: [String: Any] = [
                "ruleId": f.ruleID,
                "level": Self.sarifLevel(f.severity),
                "message": ["text": text],
                "locations": group.locations.map { l in
                    [
                        "physicalLocation": [
                            "artifactLocation": ["uri": l.path.isEmpty ? "-" : l.path],
                            "region": ["startLine": l.line, "startColumn": l.column, "endLine": max(l.line, l.endLine)],
                        ] as [String: Any],
                    ]
                },
                "partialFingerprints": ["stepguardFingerprint/v1": f.fingerprint],
            ]
            if let i = index[f.ruleID] { result["ruleIndex"] = i }
            var properties: [String: Any] = ["group": group.key, "fingerprints": Self.unique(group.locations.map(\.fingerprint))]
            if let c = f.commit {
                properties.merge(["commit": c, "author": f.author ?? "", "email": f.email ?? "", "date": f.date ?? ""]) { a, _ in a }
                properties["commits"] = Self.unique(group.locations.compactMap(\.commit))
            }
            if let v { properties["verification"] = v.status.rawValue; properties["verificationDetail"] = v.detail }
            result["properties"] = properties
            return result
        }
        return serialize([
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [[
                "tool": ["driver": ["name": "stepguard", "informationUri": "https://github.com/stepguard/stepguard", "version": version, "rules": sarifRules] as [String: Any]],
                "results": results,
            ] as [String: Any]],
        ] as [String: Any])
    }

    static func xml(_ s: String) -> String {
        s.replacingAll("&", with: "&amp;").replacingAll("<", with: "&lt;")
            .replacingAll(">", with: "&gt;").replacingAll("\"", with: "&quot;")
    }

    func junit(_ report: ScanReport) -> String {
        let groups = report.secretGroups
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        let tests = max(1, groups.count)
        out += "<testsuites name=\"stepguard scan\" tests=\"\(tests)\" failures=\"\(groups.count)\">\n"
        out += "  <testsuite name=\"secrets\" tests=\"\(tests)\" failures=\"\(groups.count)\" errors=\"0\" skipped=\"0\">\n"
        if groups.isEmpty {
            out += "    <testcase classname=\"stepguard.secrets\" name=\"no secrets found\"/>\n"
        }
        for group in groups {
            let f = group.first
            let x = Self.xml
            let v = verified(group).map { " verified \($0.status.rawValue): \($0.detail)" } ?? ""
            out += "    <testcase classname=\"\(x(f.path))\" name=\"\(x(f.ruleID)) at \(x(f.path)):\(f.line)\">\n"
            out += "      <failure type=\"\(x(f.ruleID))\" message=\"\(x(f.description))\">\(x(f.path)):\(f.line):\(f.column) \(x(redact(f.secret, mode: redaction)))\(f.commit.map { " commit \($0)" } ?? "") fingerprint \(x(f.fingerprint))\(x(Self.otherPlaces(group)))\(x(v))</failure>\n"
            out += "    </testcase>\n"
        }
        out += "  </testsuite>\n</testsuites>\n"
        return out
    }

    /// `items` without repeats, in first-seen order.
    static func unique(_ items: [String]) -> [String] {
        var seen = Set<String>()
        return items.filter { seen.insert($0).inserted }
    }

    static func escapeData(_ s: String) -> String {
        s.replacingAll("%", with: "%25").replacingAll("\r", with: "%0D").replacingAll("\n", with: "%0A")
    }

    static func escapeProperty(_ s: String) -> String {
        escapeData(s).replacingAll(":", with: "%3A").replacingAll(",", with: "%2C")
    }

    func github(_ report: ScanReport) -> String {
        report.secretGroups.map { group in
            let f = group.first
            let p = Self.escapeProperty
            let v = verified(group)
            let title = "stepguard: " + f.ruleID + (v.map { " (\($0.status.rawValue))" } ?? "")
            let verifiedText = v.map { " Verified \($0.status.rawValue): \($0.detail)." } ?? ""
            return "::error file=\(p(f.path)),line=\(f.line),col=\(f.column),endLine=\(max(f.line, f.endLine)),title=\(p(title))::"
                + Self.escapeData("\(f.description) (\(f.lifetime.rawValue)): \(redact(f.secret, mode: redaction))\(f.commit.map { " in commit \($0)" } ?? "")\(Self.otherPlaces(group)). Revoke and rotate it.\(verifiedText)") + "\n"
        }.joined()
    }
}
