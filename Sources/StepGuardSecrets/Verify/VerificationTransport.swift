/// A request the verifier sends to a secret's issuer. The secret travels in a header only, never
/// in the URL (URLs appear in messages).
public struct VerificationRequest: Sendable {
    /// `GET` or `POST`.
    public var method: String
    /// The issuer's documented https endpoint, from ``IssuerCall``.
    public var url: String
    /// Headers (name, value); one of them carries the secret: never log them.
    public var headers: [(String, String)]
    /// Time limit for the whole request (connect, TLS, answer), in seconds.
    public var timeout: Double

    /// Creates a request.
    public init(method: String, url: String, headers: [(String, String)], timeout: Double) {
        self.method = method
        self.url = url
        self.headers = headers
        self.timeout = timeout
    }
}

/// The issuer's answer: status and (bounded) body.
public struct VerificationResponse: Sendable {
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

/// The seam around the HTTP client the verifier uses (stepguard wires its libcurl client: https
/// only, peer and host verified, no redirects, no proxy from the environment).
public protocol VerificationTransport: Sendable {
    /// Sends `request`; a non-2xx status is returned, not thrown. Throws when no answer came
    /// (connection, TLS, time limit, size limit), with a message that names the URL and why.
    func send(_ request: VerificationRequest) throws -> VerificationResponse
}
