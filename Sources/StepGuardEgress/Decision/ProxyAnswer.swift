import FoundationEssentials
import StepGuardCore
import Glibc

/// The statuses of the proxy's own answers (its denies and errors).
enum AnswerStatus: Int, Sendable {
    case badRequest = 400, forbidden = 403, requestTimeout = 408, payloadTooLarge = 413
    case headersTooLarge = 431, badGateway = 502, gatewayTimeout = 504

    /// The reason phrase of the status line (RFC 9110 §15).
    var reasonPhrase: String {
        switch self {
        case .badRequest: "Bad Request"
        case .forbidden: "Forbidden"
        case .requestTimeout: "Request Timeout"
        case .payloadTooLarge: "Payload Too Large"
        case .headersTooLarge: "Request Header Fields Too Large"
        case .badGateway: "Bad Gateway"
        case .gatewayTimeout: "Gateway Timeout"
        }
    }
}

/// An error that becomes an answer of the proxy: a refused request target, a denied name, an
/// upstream that cannot be reached.
struct ProxyFailure: Error, Sendable, CustomStringConvertible {
    let status: AnswerStatus
    let reason: String
    /// `X-StepGuard-Decision`: `error`, or `deny` for a policy decision.
    var decision = "error"
    var rule = "upstream"
    var description: String { reason }

    /// The answer that tells the client about this failure.
    func answer(close: Bool) -> ProxyAnswer {
        ProxyAnswer(status, decision: decision, rule: rule, reason: reason, close: close)
    }
}

/// The proxy's own answer to a request it does not forward, a deny or an error: `X-StepGuard-Decision`
/// and a JSON body naming the rule and the reason, so that humans and tools see "blocked by policy —
/// do not retry". Both fronts send it: the socket front as ``wireBytes``, the NIO pipeline as
/// response parts.
struct ProxyAnswer: Sendable {
    let status: AnswerStatus
    let body: String
    /// The header fields, in order.
    let fields: [(name: String, value: String)]

    init(_ status: AnswerStatus, decision: String, rule: String, reason: String, close: Bool) {
        self.status = status
        // Keys sorted, slashes not escaped (as JSONSerialization wrote it with .sortedKeys, .withoutEscapingSlashes).
        let object: JSONValue = .object([
            "stepguard": .string(decision == "deny" ? "blocked by policy — do not retry" : "request failed in the stepguard proxy"),
            "decision": .string(decision), "status": JSONValue(integerLiteral: Int(status.rawValue)), "rule": .string(rule), "reason": .string(reason),
        ])
        body = object.jsonText + "\n"
        fields = [("Content-Type", "application/json"), ("Content-Length", String(body.utf8.count)), ("X-StepGuard-Decision", decision)]
            + (close ? [("Connection", "close")] : [])
    }

    /// The whole HTTP/1.1 response.
    var wireBytes: String {
        "HTTP/1.1 \(status.rawValue) \(status.reasonPhrase)\r\n" + fields.map { "\($0.name): \($0.value)\r\n" }.joined() + "\r\n" + body
    }

    /// The answer to an allowed CONNECT; the tunnel starts after it.
    static let connectionEstablished = "HTTP/1.1 200 Connection Established\r\n\r\n"
}
