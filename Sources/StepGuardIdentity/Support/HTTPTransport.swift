import Foundation

/// An HTTP request made by the identity module (JWKS, discovery, CI token endpoints).
public struct HTTPRequest: Sendable {
    /// `GET`, `POST` or `DELETE`.
    public enum Method: String, Sendable { case get = "GET", post = "POST", delete = "DELETE" }
    /// The method.
    public var method: Method
    /// The absolute URL.
    public var url: String
    /// Extra headers (name, value). Values may be secrets (bearer tokens): never log them.
    public var headers: [(String, String)]
    /// The body for POST.
    public var body: [UInt8]

    /// Creates a request.
    public init(method: Method = .get, url: String, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }
}

/// An HTTP response: status and body.
public struct HTTPResponse: Sendable {
    /// The HTTP status code.
    public var status: Int
    /// The body bytes.
    public var body: [UInt8]
    /// Creates a response.
    public init(status: Int, body: [UInt8]) {
        self.status = status
        self.body = body
    }
}

/// The seam around the HTTP client, so tests can substitute their own. The default is
/// ``CurlTransport`` (libcurl, TLS verified).
public protocol HTTPTransport: Sendable {
    /// Performs `request`; throws ``IdentityError`` with the URL and the transport error when the
    /// request cannot be completed (a non-2xx status is returned, not thrown).
    func perform(_ request: HTTPRequest, purpose: IdentityError.Check) throws(IdentityError) -> HTTPResponse
}
