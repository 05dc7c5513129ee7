import StepGuardCore
import FoundationEssentials
import Glibc

/// The seam around the HTTP client, so tests can substitute their own. The default is
/// ``CurlTransport`` (libcurl, TLS verified).
public protocol HTTPTransport: Sendable {
    /// Performs `request`; throws ``IdentityError`` with the URL and the transport error when the
    /// request cannot be completed (a non-2xx status is returned, not thrown).
    func perform(_ request: HTTPRequest, purpose: IdentityError.Check) throws(IdentityError) -> HTTPResponse
}
