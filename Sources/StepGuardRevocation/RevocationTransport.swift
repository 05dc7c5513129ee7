/// A revocation call: what an issuer's documentation says revokes a token.
public struct RevocationRequest: Sendable {
    /// `DELETE` or `POST`.
    public enum Method: String, Sendable { case post = "POST", delete = "DELETE" }
    public let method: Method
    /// The absolute `https://` URL.
    public let url: String
    /// Header fields (name, value). Values hold the token: never print or log them.
    public let headers: [(String, String)]
    public let body: [UInt8]

    public init(method: Method, url: String, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }
}

/// The seam around the HTTP client revocations are sent with. The composition root passes one with
/// the proxy's upstream trust and `network.resolve` (libcurl, TLS verified, no redirects); tests
/// may pass their own.
public protocol RevocationTransport: Sendable {
    /// Sends `request` within `timeout` seconds; the response's status. Throws a description of
    /// why no response came (never containing the token).
    func send(_ request: RevocationRequest, timeout: Double) throws -> Int
}
