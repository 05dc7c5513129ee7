import FoundationEssentials
import Glibc
import StepGuardCore
import StepGuardIdentity
import StepGuardPolicy

/// The libraries' ``HTTPClient`` over Identity's libcurl client: https only, peer and host
/// verified, no redirects, no proxy from the environment, bounded in time and size.
struct CurlHTTPClient: HTTPClient {
    /// A PEM bundle trusted instead of the system's, or, with `caPath`, in addition to it.
    var caFile: String?
    /// A directory of CA certificates trusted too.
    var caPath: String?
    /// libcurl `CONNECT_TO` entries (`HOST:PORT:ADDRESS:PORT`): the URL's host is still what TLS checks.
    var connectTo: [String] = []
    var maximumResponseSize = 64 * 1024
    /// What the requests are for, in error messages.
    var purpose: IdentityError.Check

    /// Why no answer came (the URL and the transport error, never a header).
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    func send(_ request: HTTPRequest, timeout: Double) throws -> HTTPResponse {
        let curl = CurlTransport(timeout: timeout, connectTimeout: min(timeout, 3), caFile: caFile, caPath: caPath,
                                 connectTo: connectTo, maximumResponseSize: maximumResponseSize)
        do {
            return try curl.perform(request, purpose: purpose)
        } catch {
            throw Failure(description: error.detail)
        }
    }

    /// The client revocations use: the proxy's upstream trust (the system's CAs, plus
    /// `network.upstream_ca`) and its `network.resolve` overrides, so that tests point them at
    /// loopback stand-ins as they do the proxy.
    static func upstream(_ network: NetworkPolicy, purpose: IdentityError.Check) -> CurlHTTPClient {
        let connectTo = network.resolve.map { from, to in
            "\(from.host):\(from.port):\(to.host.contains(":") ? "[\(to.host)]" : to.host):\(to.port)"
        }
        let systemCertificates = ["/etc/ssl/certs", "/etc/pki/tls/certs"].first { FileManager.default.fileExists(atPath: $0) }
        return CurlHTTPClient(caFile: network.upstreamCA, caPath: network.upstreamCA == nil ? nil : systemCertificates,
                              connectTo: connectTo.sorted(), purpose: purpose)
    }
}
