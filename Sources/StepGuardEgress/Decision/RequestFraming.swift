import FoundationEssentials
import StepGuardCore
import Glibc

/// The checks on a request head before anything else is decided: limits on its header fields, and
/// framing that two parsers could read differently (request smuggling).
enum RequestFraming {
    static let limitsRule = "built-in: header limits"
    static let framingRule = "built-in: message framing"

    /// Why a request with header `fields` is refused before it is decided, or nil when it is not.
    static func refusal<Fields: Sequence>(_ fields: Fields, limits: ProxyLimits) -> ProxyFailure? where Fields.Element == (name: String, value: String) {
        var count = 0
        var bytes = 0
        var transferEncoding: [String] = []
        var contentLengths: Set<String> = []
        var hasContentLength = false
        for (name, value) in fields {
            count += 1
            bytes += name.utf8.count + value.utf8.count
            if ASCII.equalsIgnoringCase(name, "transfer-encoding") { transferEncoding.append(value) }
            if ASCII.equalsIgnoringCase(name, "content-length") {
                hasContentLength = true
                for item in value.split(separator: ",") { contentLengths.insert(item.trimmingWhitespace()) }
            }
        }
        if count > limits.maxHeaderCount {
            return ProxyFailure(status: .headersTooLarge, reason: "the request has \(count) header fields; at most \(limits.maxHeaderCount) are accepted", rule: limitsRule)
        }
        if bytes > limits.maxHeaderBytes {
            return ProxyFailure(status: .headersTooLarge, reason: "the request headers are \(bytes) bytes; at most \(limits.maxHeaderBytes) are accepted", rule: limitsRule)
        }
        if !transferEncoding.isEmpty, hasContentLength {
            return ProxyFailure(status: .badRequest, reason: "the request has both Content-Length and Transfer-Encoding (request smuggling); send one", rule: framingRule)
        }
        if contentLengths.count > 1 {
            return ProxyFailure(status: .badRequest, reason: "the request has conflicting Content-Length values", rule: framingRule)
        }
        if let last = transferEncoding.last, last.lowercased().split(separator: ",").last?.trimmingWhitespace() != "chunked" {
            return ProxyFailure(status: .badRequest, reason: "Transfer-Encoding must end with chunked", rule: framingRule)
        }
        return nil
    }
}
