import ArgumentParser
import FoundationEssentials
import Glibc
import StepGuardIdentity
import StepGuardSecrets

extension ScanCommand {
    /// `--verify-resolve HOST:443=ADDRESS:PORT` as a libcurl `CONNECT_TO` entry; HOST must be an
    /// issuer host stepguard asks, ADDRESS an IP literal (IPv6 in brackets).
    static func connectTo(_ mapping: String) throws -> String {
        let usage = "--verify-resolve \(mapping): write HOST:443=ADDRESS:PORT with HOST one of \(IssuerCall.hosts.sorted().joined(separator: ", ")) and ADDRESS an IP address, e.g. api.github.com:443=127.0.0.1:8443"
        let sides = mapping.split(separator: "=", omittingEmptySubsequences: false)
        guard sides.count == 2 else { throw ValidationError(usage) }
        let from = sides[0].split(separator: ":", omittingEmptySubsequences: false)
        guard from.count == 2, IssuerCall.hosts.contains(String(from[0]).lowercased()), from[1] == "443" else { throw ValidationError(usage) }
        let to = String(sides[1])
        guard let colon = to.lastIndex(of: ":"), let port = Int(to[to.index(after: colon)...]), (1...65535).contains(port) else {
            throw ValidationError(usage)
        }
        let address = String(to[..<colon])
        var buffer = [UInt8](repeating: 0, count: 16)
        if address.hasPrefix("[") && address.hasSuffix("]") {
            guard inet_pton(AF_INET6, String(address.dropFirst().dropLast()), &buffer) == 1 else { throw ValidationError(usage) }
        } else {
            guard inet_pton(AF_INET, address, &buffer) == 1 else { throw ValidationError(usage) }
        }
        return "\(from[0].lowercased()):443:\(address):\(port)"
    }

    /// Asks the issuers about the secrets of `report` (`--verify`).
    func verify(_ report: ScanReport) throws -> [String: VerificationResult] {
        let transport = CurlHTTPClient(caFile: verifyCA, connectTo: try verifyResolve.map(Self.connectTo), maximumResponseSize: 256 * 1024,
                                       purpose: .tokenSource)
        var verifier = SecretVerifier(transport: transport)
        verifier.totalTimeout = verifyTimeout
        return verifier.verify(report)
    }
}
