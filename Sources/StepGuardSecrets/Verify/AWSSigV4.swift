import Crypto
import StepGuardCore

/// AWS Signature Version 4, header form: the `Authorization` value for one request, from an
/// access key id and its secret access key (which never leaves this process: only an HMAC of the
/// request made with it is sent). Tested against the test suite AWS publishes.
struct AWSSigV4: Sendable {
    var accessKeyID: String
    var secretAccessKey: String
    /// The region of the endpoint (`us-east-1` for the global STS endpoint).
    var region: String
    /// The service (`sts`).
    var service: String

    /// `yyyyMMddTHHmmssZ` for `seconds` since 1970 (UTC): the `X-Amz-Date` header.
    static func amzDate(_ seconds: Int) -> String {
        let iso = SecretScanner.isoDate(seconds)  // yyyy-MM-ddTHH:mm:ssZ
        return String(iso.filter { $0 != "-" && $0 != ":" })
    }

    /// The `Authorization` header value for the request. `headers` must hold every header to be
    /// signed, `host` and `x-amz-date` included; `path` is the decoded path (`/`), `query` the
    /// decoded parameters.
    func authorization(method: String, path: String, query: [(String, String)] = [], headers: [(String, String)], body: [UInt8]) -> String {
        let (signedHeaders, signature) = sign(method: method, path: path, query: query, headers: headers, body: body)
        return "AWS4-HMAC-SHA256 Credential=\(accessKeyID)/\(scope(headers)), SignedHeaders=\(signedHeaders), Signature=\(signature)"
    }

    /// The signed header list and the signature (hex).
    func sign(method: String, path: String, query: [(String, String)], headers: [(String, String)], body: [UInt8]) -> (signedHeaders: String, signature: String) {
        let canonical = Self.canonicalRequest(method: method, path: path, query: query, headers: headers, body: body)
        let toSign = "AWS4-HMAC-SHA256\n\(date(headers))\n\(scope(headers))\n\(Hex.string(SHA256.hash(data: Array(canonical.request.utf8))))"
        let signature = HMAC<SHA256>.authenticationCode(for: Array(toSign.utf8), using: signingKey(day: String(date(headers).prefix(8))))
        return (canonical.signedHeaders, Hex.string(signature))
    }

    /// The derived key of one day, region and service.
    func signingKey(day: String) -> SymmetricKey {
        var key = SymmetricKey(data: Array(("AWS4" + secretAccessKey).utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Array(HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
        }
        return key
    }

    func date(_ headers: [(String, String)]) -> String {
        headers.first { $0.0.lowercased() == "x-amz-date" }?.1 ?? ""
    }

    func scope(_ headers: [(String, String)]) -> String {
        "\(date(headers).prefix(8))/\(region)/\(service)/aws4_request"
    }

    /// The canonical request and its signed header list.
    static func canonicalRequest(method: String, path: String, query: [(String, String)], headers: [(String, String)], body: [UInt8]) -> (request: String, signedHeaders: String) {
        let uri = path.isEmpty ? "/" : encode(path, keepSlash: true)
        let canonicalQuery = query.map { (encode($0.0, keepSlash: false), encode($0.1, keepSlash: false)) }
            .sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
            .map { "\($0.0)=\($0.1)" }.joined(separator: "&")
        // Header names lowercased and sorted; values trimmed, inner runs of spaces made one;
        // repeated names joined with commas.
        var byName: [String: [String]] = [:]
        for (name, value) in headers {
            let collapsed = value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
            byName[name.lowercased(), default: []].append(collapsed)
        }
        let names = byName.keys.sorted()
        let canonicalHeaders = names.map { "\($0):\(byName[$0]!.joined(separator: ","))\n" }.joined()
        let signedHeaders = names.joined(separator: ";")
        let request = [method, uri, canonicalQuery, canonicalHeaders, signedHeaders, Hex.string(SHA256.hash(data: body))].joined(separator: "\n")
        return (request, signedHeaders)
    }

    /// RFC 3986 percent-encoding as SigV4 wants it: unreserved characters as they are, every
    /// other byte as `%XX` (upper case); `/` kept in paths.
    static func encode(_ text: String, keepSlash: Bool) -> String {
        text.percentEncoded(allowing: keepSlash ? "-_.~/" : "-_.~")
    }

}
