import StepGuardCore
/// One secret — the same rule matching the same value — with every place it was found.
///
/// The text, SARIF, GitHub and JUnit reports list one entry per group; `--format json` keeps one
/// entry per location (tools that count or diff locations need them) and names the group of each.
/// Ignore files, baselines and inline allows work on locations before grouping, by fingerprint.
public struct SecretGroup: Sendable {
    /// `rule:hash`: the rule id and the hash of the value (``secretHash(_:)``), never the value.
    public var key: String
    /// The locations, in report order (path, then line; history: commit order). Never empty.
    public var locations: [Finding]

    /// The first location: it names the rule, the description and the secret of the group.
    public var first: Finding { locations[0] }

    /// The key of the group `finding` belongs to.
    public static func key(of finding: Finding) -> String {
        "\(finding.ruleID):\(secretHash(finding.secret))"
    }
}

extension ScanReport {
    /// The findings grouped by rule and value, in the order of each group's first location.
    public var secretGroups: [SecretGroup] {
        var order: [SecretGroup] = []
        var index: [String: Int] = [:]
        for f in findings {
            // The value itself (not only its 8-byte hash) decides, so two values never merge.
            let identity = "\(f.ruleID)\u{0}\(f.secret)"
            if let i = index[identity] {
                order[i].locations.append(f)
            } else {
                index[identity] = order.count
                order.append(SecretGroup(key: SecretGroup.key(of: f), locations: [f]))
            }
        }
        return order
    }
}
