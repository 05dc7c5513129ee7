import Foundation
import StepGuardIdentity
import StepGuardPolicy
import StepGuardRevocation

/// Revocations sent with Identity's libcurl client, with the proxy's upstream trust (the system's
/// CAs, plus `network.upstream_ca`) and its `network.resolve` overrides, so that tests point them
/// at loopback stand-ins as they do the proxy.
struct CurlRevocationTransport: RevocationTransport {
    let network: NetworkPolicy

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    func send(_ request: RevocationRequest, timeout: Double) throws -> Int {
        let connectTo = network.resolve.map { from, to in
            "\(from.host):\(from.port):\(to.host.contains(":") ? "[\(to.host)]" : to.host):\(to.port)"
        }
        let systemCertificates = ["/etc/ssl/certs", "/etc/pki/tls/certs"].first { FileManager.default.fileExists(atPath: $0) }
        let curl = CurlTransport(timeout: timeout, connectTimeout: timeout, caFile: network.upstreamCA,
                                 caPath: network.upstreamCA == nil ? nil : systemCertificates, connectTo: connectTo.sorted(),
                                 maximumResponseSize: 64 * 1024)
        let method: HTTPRequest.Method = request.method == .delete ? .delete : .post
        do {
            return try curl.perform(HTTPRequest(method: method, url: request.url, headers: request.headers, body: request.body),
                                    purpose: .revocation).status
        } catch {
            throw Failure(description: error.detail)
        }
    }
}
