/// An HTTP request a library needs sent: identity (JWKS, discovery, CI token endpoints), secret
/// verification (issuers' read-only calls), revocation (issuers' revocation calls).
public struct HTTPRequest: Sendable {
    /// `GET`, `POST` or `DELETE`.
    public enum Method: String, Sendable { case get = "GET", post = "POST", delete = "DELETE" }
    /// The method.
    public var method: Method
    /// The absolute URL. It may appear in messages: never put a secret in it.
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

/// The HTTP client a library is given by the composition root (libcurl in production: https only,
/// peer and host verified, no redirects, no proxy from the environment), so that the library
/// needs no HTTP stack of its own and tests can substitute theirs.
public protocol HTTPClient: Sendable {
    /// Sends `request` within `timeout` seconds; a non-2xx status is returned, not thrown. Throws
    /// when no answer came, with a description that names the URL and why (never a header).
    func send(_ request: HTTPRequest, timeout: Double) throws -> HTTPResponse
}
