import FoundationEssentials
import Glibc
import StepGuardPolicy

/// Where stepguard may send a token to revoke it. The address of an issuer can come from the step's
/// environment (`GITHUB_API_URL`, `VAULT_ADDR`), which an earlier step of the job may have written
/// (`$GITHUB_ENV`): a token is sent only to the provider's own public endpoint, or to a host the
/// step itself could have sent it to under the policy (allowed by name by `egress`, or a host of a
/// `services:` entry). Anything else is refused, not sent.
public struct RevocationTargets: Sendable {
    /// The providers' public revocation hosts (port 443).
    static let issuers: Set<String> = ["api.github.com", "oauth2.googleapis.com"]

    let egress: EgressPolicy
    let resolve: [HostPort: HostPort]
    let serviceHosts: [HostPattern]

    /// The issuer addresses `policy` allows a token to be sent to.
    public init(policy: Policy) {
        egress = policy.egress
        resolve = policy.network.resolve
        serviceHosts = policy.services.flatMap(\.hosts)
    }

    /// Why a token must not be sent to `url`, or nil when it may.
    func refusal(for url: String) -> String? {
        guard let components = URLComponents(string: url), components.scheme?.lowercased() == "https",
              let host = components.host?.lowercased(), !host.isEmpty else {
            return "\(url) is not an https URL"
        }
        let port = UInt16(components.port ?? 443)
        if port == 443 && Self.issuers.contains(host) { return nil }
        if serviceHosts.contains(where: { $0.matches(host) }) { return nil }
        let verdict = egress.decide(host: host, port: port, addresses: [],
                                    addressesFromPolicy: resolve[HostPort(host: host, port: port)] != nil)
        if verdict.allowed { return nil }
        return "not sent: \(host):\(port) is neither the provider's public endpoint nor allowed by the policy (\(verdict.rule)); "
            + "a token is only sent where the step itself could send it"
    }
}
