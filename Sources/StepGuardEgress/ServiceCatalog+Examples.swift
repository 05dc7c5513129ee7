/// One request of a catalog file's `examples:` and what stepguard must make of it: whether the
/// request is one of the service's sensitive operations, which credential class the inspector
/// finds and where, whether it mints a token. The test suite runs every example through the same
/// host matching, catalog and inspector the proxy uses.
///
/// Values are templates (see `ExampleTemplate` in StepGuardSecrets, plus `{jwt}`, `{jwt:long}` and
/// `{jwt:expired}` for JWTs the test makes), so no credential-shaped literal is committed.
public struct ServiceExample: Sendable, Equatable {
    /// HTTP method, upper case.
    public let method: String
    /// The absolute `https://` URL (template).
    public let url: String
    /// Request headers (templates).
    public let headers: [String: String]
    /// User name and password sent as `Authorization: Basic` (templates), when given.
    public let basic: [String]?
    /// The request body (template), when given.
    public let body: String?
    /// Whether the catalog calls the request sensitive.
    public let sensitive: Bool
    /// The class the inspector must find: `workload` is not used (it needs a verified job).
    public let credential: CredentialClass
    /// Where the inspector must find it (`header Authorization`, `json jwt`…), when given.
    public let foundIn: String?
    /// Whether the request is one of the service's token exchanges (`mints:`).
    public let mints: Bool
    /// The audience the request asks for (services with `audience_parameter`), when given.
    public let audience: String?
}

extension ServiceCatalog {
    static let exampleKeys: Set<String> = ["request", "headers", "basic", "body", "sensitive", "credential", "found_in", "mints", "audience"]

    /// Parses a catalog file's `examples:` list.
    static func parseExamples(_ value: Any?, file: String) throws(EgressError) -> [ServiceExample] {
        guard let value else { return [] }
        guard let entries = value as? [[String: Any]] else {
            throw .invalidCatalog(file: file, problem: "'examples' must be a list of mappings")
        }
        var examples: [ServiceExample] = []
        for (index, entry) in entries.enumerated() {
            func problem(_ text: String) -> EgressError { .invalidCatalog(file: file, problem: "examples[\(index)]: \(text)") }
            if let unknown = entry.keys.sorted().first(where: { !exampleKeys.contains($0) }) { throw problem("unknown key '\(unknown)'") }
            guard let request = entry["request"] as? String, let space = request.firstIndex(of: " "),
                  request[request.index(after: space)...].hasPrefix("https://") else {
                throw problem("'request' must be 'METHOD https://host/path'")
            }
            guard let sensitive = ServiceCatalog.flag(entry["sensitive"]) else { throw problem("'sensitive' (true or false) is missing") }
            guard let classText = entry["credential"] as? String, let credential = CredentialClass(rawValue: classText), credential != .workload else {
                throw problem("'credential' must be one of short-lived, long-lived, invalid, none")
            }
            var headers: [String: String] = [:]
            if let given = entry["headers"] {
                guard let map = given as? [String: Any] else { throw problem("'headers' must be a mapping") }
                for (name, value) in map { headers[name] = "\(value)" }
            }
            let basic = entry["basic"] as? [String]
            if entry["basic"] != nil, basic?.count != 2 { throw problem("'basic' must be [user, password]") }
            examples.append(ServiceExample(
                method: String(request[..<space]).uppercased(), url: String(request[request.index(after: space)...]),
                headers: headers, basic: basic, body: entry["body"] as? String, sensitive: sensitive, credential: credential,
                foundIn: entry["found_in"] as? String, mints: ServiceCatalog.flag(entry["mints"]) ?? false, audience: entry["audience"] as? String))
        }
        return examples
    }
}
