import FoundationEssentials
import Glibc
import StepGuardCore
import StepGuardPolicy

/// How much a credential seen in flight can be trusted, from best to worst.
public enum CredentialClass: String, Sendable, CaseIterable {
    /// A short-lived token from the policy's issuer whose identity equals the job's verified identity.
    case workload
    /// A token that expires soon (JWT within limits, AWS `ASIA…` with a session token, `ghs_…`).
    case shortLived = "short-lived"
    /// A static or long-lived secret (AWS `AKIA…`, `ghp_…`, `npm_…`, basic auth, unknown opaque tokens).
    case longLived = "long-lived"
    /// A credential that is malformed or already expired.
    case invalid
    /// No credential in the request.
    case none

    /// Badness rank: a request with several credentials is judged by its worst one.
    var rank: Int {
        switch self {
        case .none: 0
        case .workload: 1
        case .shortLived: 2
        case .longLived: 3
        case .invalid: 4
        }
    }

    /// Whether this class satisfies a service allowance's `credential:` (the least accepted).
    public func satisfies(_ required: ServiceAllowance.Credential) -> Bool {
        switch required {
        case .none: true
        case .any: self != .none && self != .invalid
        case .shortLived: self == .shortLived || self == .workload
        case .workload: self == .workload
        }
    }
}

/// What was found about the credential of one request. Never holds the credential itself.
public struct CredentialFinding: Sendable, Equatable {
    /// How far the credential can be trusted (none … workload); the service's rules compare it.
    public var credentialClass: CredentialClass
    /// What kind of credential: `bearer JWT`, `AWS SigV4 (AKIA)`, `GitHub token (ghp_)`…
    public var kind: String
    /// Where it was: `header Authorization`, `query X-Amz-Credential`, `json jwt`.
    public var location: String
    /// A prefix and a hash, safe for logs: `ghp_…#3f2a91c0`.
    public var redacted: String
    /// Why it got its class.
    public var detail: String

    /// A finding; `redacted` must already be redacted (never the credential itself).
    public init(credentialClass: CredentialClass, kind: String, location: String, redacted: String, detail: String) {
        self.credentialClass = credentialClass
        self.kind = kind
        self.location = location
        self.redacted = redacted
        self.detail = detail
    }

    /// No credential in the request.
    public static let absent = CredentialFinding(credentialClass: .none, kind: "none", location: "-", redacted: "-", detail: "the request carries no credential")
}

/// The parts of a request the credential inspector looks at.
public struct InspectedRequest: Sendable {
    /// The request method (`GET`, `POST`…).
    public var method: String
    /// The request target in origin form (`/path?query`).
    public var target: String
    /// The header fields in the order received, names as sent.
    public var headers: [(name: String, value: String)]
    /// The body when the service may carry a credential in it (read up to a limit), else nil.
    public var body: [UInt8]?
    /// Where the service carries credentials (from the catalog); `Authorization` is always looked at.
    public var locations: [CredentialLocation]
    /// The catalog service the request goes to (a token it minted in this run is short-lived there).
    public var service: String?

    /// The parts of one request; `locations` and `service` come from the catalog entry it goes to.
    public init(method: String, target: String, headers: [(name: String, value: String)], body: [UInt8]? = nil,
                locations: [CredentialLocation] = [], service: String? = nil) {
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.locations = locations
        self.service = service
    }

    func header(_ name: String) -> [String] {
        headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
    }

    var queryItems: [(String, String)] { Self.formItems(target.split(separator: "?", maxSplits: 1).dropFirst().first.map(String.init) ?? "") }

    static func formItems(_ text: String) -> [(String, String)] {
        text.split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String { String(s).replacingAll("+", with: " ").percentDecoded ?? String(s) }
            return (decode(parts[0]), parts.count > 1 ? decode(parts[1]) : "")
        }
    }
}

/// The job's verified identity, as the egress proxy needs it (filled from the identity module's
/// `VerifiedIdentity` by `run`).
public struct JobIdentity: Sendable, Equatable {
    /// The token issuer (`iss`).
    public var issuer: String
    /// The job's subject (`sub`), e.g. `repo:acme/app:ref:refs/heads/main`.
    public var subject: String
    /// Claim values as JSON scalars: strings, numbers and booleans.
    public var claims: [String: ClaimValue]
    /// When the job's token expires; nil when unknown.
    public var expiresAt: Date?

    /// An identity with its issuer, subject, claims and expiry.
    public init(issuer: String, subject: String, claims: [String: ClaimValue] = [:], expiresAt: Date? = nil) {
        self.issuer = issuer
        self.subject = subject
        self.claims = claims
        self.expiresAt = expiresAt
    }
}

/// A JSON scalar claim value.
public enum ClaimValue: Sendable, Equatable {
    case string(String)
    case number(Double)
    case bool(Bool)

    /// Whether a policy claim matcher accepts this value.
    public func matches(_ matcher: ClaimMatcher) -> Bool {
        switch (matcher, self) {
        case (.glob(let glob), .string(let value)): glob.matches(value)
        case (.number(let expected), .number(let value)): expected == value
        case (.bool(let expected), .bool(let value)): expected == value
        default: false
        }
    }
}

/// The outcome of checking a bearer JWT seen in flight against the job's identity.
public enum WorkloadTokenCheck: Sendable, Equatable {
    /// Verified with the issuer's keys; `sub` and the pinned claims equal the job's identity.
    case sameIdentity
    /// Verified, but for another identity (the reason names the claim that differs).
    case otherIdentity(String)
    /// Not verifiable: bad signature, unknown key, wrong issuer, expired…
    case unverified(String)
}

/// Verifies a JWT seen in flight with the same keys as the job's token and compares identities.
/// The identity module provides the production implementation; tests substitute their own.
public protocol WorkloadTokenVerifier: Sendable {
    func check(token: String, now: Date) -> WorkloadTokenCheck
}

/// Classifies the credential a request carries. The production implementation is
/// ``BuiltInCredentialInspector``; the seam lets the secret scanner's rules plug in.
public protocol CredentialInspector: Sendable {
    func inspect(_ request: InspectedRequest, now: Date) -> CredentialFinding
}


/// Recognises bearer JWTs (verified through a ``WorkloadTokenVerifier``), AWS SigV4 and basic auth
/// itself; every other token is classified by the secret scanner's rules (one classifier for
/// commits, step environments and credentials in flight). A token no rule knows is long-lived:
/// its lifetime cannot be shown to be short.
public struct BuiltInCredentialInspector: CredentialInspector {
    /// Checks bearer JWTs against the job's identity; nil: no JWT is ever `workload`.
    public var verifier: WorkloadTokenVerifier?
    /// The detection rules (the secret scanner's built-in rules unless a test substitutes its own).
    public var detector: (any CredentialDetector)?
    /// The job's identity; `workload` needs it, and is refused once it has expired.
    public var identity: JobIdentity?
    /// The longest lifetime of a JWT still called short-lived.
    public var maxShortLivedTTL: TimeInterval
    /// Tokens the session saw minted by services' token exchanges; short-lived for those services.
    public var minted: MintedCredentials?

    /// - Parameter detector: the detection rules; the composition root passes the secret scanner's.
    public init(verifier: WorkloadTokenVerifier?, identity: JobIdentity?, maxShortLivedTTL: TimeInterval = 3600,
                minted: MintedCredentials? = nil, detector: (any CredentialDetector)?) {
        self.verifier = verifier
        self.detector = detector
        self.identity = identity
        self.maxShortLivedTTL = maxShortLivedTTL
        self.minted = minted
    }

    /// The least trusted credential the request carries, or ``CredentialFinding/absent``.
    public func inspect(_ request: InspectedRequest, now: Date) -> CredentialFinding {
        var findings: [CredentialFinding] = []
        var headerNames = ["Authorization"]
        for location in request.locations where location.place == .header && !headerNames.contains(where: { $0.lowercased() == location.name.lowercased() }) {
            headerNames.append(location.name)
        }
        for name in headerNames {
            for value in request.header(name) {
                findings.append(classifyHeader(value, location: "header \(name)", request: request, now: now))
            }
        }
        // Every query parameter, cookie and header field counts: a named location is classified as a
        // credential, anything else that looks like one (a JWT, a token a secret rule knows) as well.
        for (key, value) in request.queryItems where !value.isEmpty {
            if request.locations.contains(where: { $0.place == .query && $0.name == key }) {
                findings.append(classifyParameter(key, value, location: "query \(key)", request: request, now: now))
            } else if let finding = classifyIfCredential(value, location: "query \(key)", request: request, now: now) {
                findings.append(finding)
            }
        }
        // Any other header field the upstream receives (hop-by-hop ones are not forwarded) that holds a credential.
        let read = headerNames.map { $0.lowercased() } + ["cookie", "host"]
        for (name, value) in request.headers where !read.contains(name.lowercased()) && !HopByHop.isHopByHop(name) {
            if let finding = classifyIfCredential(value, location: "header \(name)", request: request, now: now) { findings.append(finding) }
        }
        for cookie in request.header("Cookie") {
            for pair in cookie.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let name = parts[0].trimmingWhitespace()
                let value = parts.count > 1 ? parts[1].trimmingWhitespace().trimming(charactersIn: "\"") : ""
                if let finding = classifyIfCredential(value, location: "cookie \(name)", request: request, now: now) { findings.append(finding) }
            }
        }
        if let body = request.body, !body.isEmpty {
            findings += inspectBody(body, request: request, now: now)
        }
        return findings.max { $0.credentialClass.rank < $1.credentialClass.rank } ?? .absent
    }

    /// The credentials in a request body the service may read one from (see ``InspectedRequest/body``):
    /// every value of a form, or every string of a JSON document (``JSONBodyStrings``). A body that cannot
    /// be read — encoded, not well-formed, with a key twice — is an `invalid` credential: a rule that
    /// needs a credential denies it, whatever the headers carry.
    func inspectBody(_ body: [UInt8], request: InspectedRequest, now: Date) -> [CredentialFinding] {
        func unreadable(_ detail: String) -> [CredentialFinding] {
            [CredentialFinding(credentialClass: .invalid, kind: "unreadable body", location: "body", redacted: "-",
                               detail: "\(detail); a body that may carry a credential must be readable to be allowed")]
        }
        let encodings = request.header("Content-Encoding").flatMap { $0.split(separator: ",") }
            .map { $0.trimmingWhitespace().lowercased() }.filter { !$0.isEmpty && $0 != "identity" }
        if !encodings.isEmpty {
            return unreadable("the body is sent with Content-Encoding: \(encodings.joined(separator: ", ")), which stepguard does not decode; send it unencoded")
        }
        let contentType = (request.header("Content-Type").first ?? "").lowercased()
        let formNames = request.locations.filter { $0.place == .form }.map(\.name)
        let jsonNames = request.locations.filter { $0.place == .json }.map { $0.name.lowercased() }
        if contentType.hasPrefix("multipart/") {
            let originalType = request.header("Content-Type").first ?? ""
            guard contentType.hasPrefix("multipart/form-data"), let boundary = MultipartForm.boundary(inContentType: originalType),
                  let fields = MultipartForm.fields(body, boundary: boundary) else {
                return unreadable("the body is not multipart/form-data stepguard can read")
            }
            // A field a credential location names, or any text field that looks like a credential; file contents are not read.
            return fields.compactMap { field in
                guard !field.isFile, let value = String(validating: field.value, as: UTF8.self), !value.isEmpty else { return nil }
                if formNames.contains(field.name) || jsonNames.contains(field.name.lowercased()) {
                    return classifyToken(value, location: "form \(field.name)", request: request, now: now)
                }
                return classifyIfCredential(value, location: "form \(field.name)", request: request, now: now)
            }
        }
        // Servers with JSON credentials read the body as JSON whatever its Content-Type says, so it is
        // read as a form only where the catalog names form credentials and the Content-Type says form.
        if jsonNames.isEmpty || (!formNames.isEmpty && contentType.hasPrefix("application/x-www-form-urlencoded")) {
            guard let text = String(validating: body, as: UTF8.self) else { return unreadable("the form body is not valid UTF-8") }
            return InspectedRequest.formItems(text).compactMap { key, value in
                guard !value.isEmpty else { return nil }
                if formNames.contains(key) { return classifyToken(value, location: "form \(key)", request: request, now: now) }
                return classifyIfCredential(value, location: "form \(key)", request: request, now: now)
            }
        }
        let strings: [(path: String, value: String)]
        do { strings = try JSONBodyStrings.strings(in: body) } catch {
            return unreadable("the body is not JSON stepguard can read: \(error.reason)")
        }
        return strings.compactMap { path, value in
            guard !value.isEmpty else { return nil }
            if jsonNames.contains(path.lowercased()) { return classifyToken(value, location: "json \(path)", request: request, now: now) }
            return classifyIfCredential(value, location: "json \(path)", request: request, now: now)
        }
    }

    /// The class of `value` when it looks like a credential (a JWT, a token minted in this run, or
    /// one a secret rule knows); nil for any other text.
    func classifyIfCredential(_ value: String, location: String, request: InspectedRequest, now: Date) -> CredentialFinding? {
        let looksLikeOne = Self.jwt(value) != nil
            || (request.service.map { minted?.wasMinted(value, by: $0, now: now) ?? false } ?? false)
            || !(detector?.credentials(in: value) ?? []).isEmpty
        return looksLikeOne ? classifyToken(value, location: location, request: request, now: now) : nil
    }

    private func classifyParameter(_ key: String, _ value: String, location: String, request: InspectedRequest, now: Date) -> CredentialFinding {
        if key == "X-Amz-Credential" { return classifyAWS(accessKey: String(value.prefix { $0 != "/" }), location: location, request: request) }
        return classifyToken(value, location: location, request: request, now: now)
    }

    func classifyHeader(_ value: String, location: String, request: InspectedRequest, now: Date) -> CredentialFinding {
        let trimmed = value.trimmingWhitespace()
        let scheme = trimmed.prefix { $0 != " " }
        let rest = trimmed.dropFirst(scheme.count).trimmingWhitespace()
        switch scheme.lowercased() {
        case "bearer", "token":
            return classifyToken(rest, location: location, request: request, now: now)
        case "basic":
            guard let decoded = Data(base64Encoded: rest).map({ String(decoding: $0, as: UTF8.self) }), let colon = decoded.firstIndex(of: ":") else {
                return CredentialFinding(credentialClass: .invalid, kind: "basic auth", location: location, redacted: redact(rest), detail: "malformed basic credentials")
            }
            let password = String(decoded[decoded.index(after: colon)...])
            var finding = classifyToken(password, location: location, request: request, now: now)
            if finding.kind == "opaque token" {
                finding = CredentialFinding(credentialClass: .longLived, kind: "basic auth", location: location, redacted: redact(rest),
                                            detail: "static user name and password")
            } else {
                finding.kind = "basic auth with \(finding.kind)"
            }
            return finding
        case "aws4-hmac-sha256":
            guard let range = rest.scalarRange(of: "Credential=") else {
                return CredentialFinding(credentialClass: .invalid, kind: "AWS SigV4", location: location, redacted: "AWS4…", detail: "SigV4 header without Credential=")
            }
            let keyID = String(rest[range.upperBound...].prefix { $0 != "/" && $0 != "," })
            return classifyAWS(accessKey: keyID, location: location, request: request)
        default:
            return classifyToken(trimmed, location: location, request: request, now: now)
        }
    }

    func classifyAWS(accessKey: String, location: String, request: InspectedRequest) -> CredentialFinding {
        let redacted = redact(accessKey)
        if accessKey.hasPrefix("ASIA") {
            let hasSession = !request.header("X-Amz-Security-Token").isEmpty || request.queryItems.contains { $0.0 == "X-Amz-Security-Token" }
            return hasSession
                ? CredentialFinding(credentialClass: .shortLived, kind: "AWS SigV4 (ASIA)", location: location, redacted: redacted, detail: "temporary AWS credentials with a session token")
                : CredentialFinding(credentialClass: .invalid, kind: "AWS SigV4 (ASIA)", location: location, redacted: redacted, detail: "temporary AWS key without X-Amz-Security-Token")
        }
        if accessKey.hasPrefix("AKIA") {
            return CredentialFinding(credentialClass: .longLived, kind: "AWS SigV4 (AKIA)", location: location, redacted: redacted, detail: "a long-lived AWS access key (AKIA…)")
        }
        return CredentialFinding(credentialClass: .longLived, kind: "AWS SigV4", location: location, redacted: redacted, detail: "an AWS access key of unknown kind; treated as long-lived")
    }

    func classifyToken(_ token: String, location: String, request: InspectedRequest, now: Date) -> CredentialFinding {
        let redacted = redact(token)
        if let service = request.service, let minted, minted.wasMinted(token, by: service, now: now) {
            return CredentialFinding(credentialClass: .shortLived, kind: "token minted in this run", location: location, redacted: redacted,
                                     detail: "minted in this run by an allowed \(service) token exchange; short-lived for \(Int(minted.lifetime))s after it")
        }
        switch Self.jwt(token) {
        case .decoded(let claims)?:
            return classifyJWT(token, claims: claims, location: location, redacted: redacted, now: now)
        case .malformed(let reason)?:
            // A server may read what the strict reader refuses; stepguard cannot tell its lifetime or issuer.
            return CredentialFinding(credentialClass: .invalid, kind: "bearer JWT", location: location, redacted: redacted,
                                     detail: "a JWT-shaped token that is not strictly encoded (\(reason)); it is not trusted")
        case nil:
            break
        }
        let matches = detector?.credentials(in: token) ?? []
        if let longLived = matches.first(where: { $0.lifetime == .longLived }) {
            return CredentialFinding(credentialClass: .longLived, kind: longLived.description, location: location, redacted: redacted,
                                     detail: "\(longLived.description) is a long-lived credential (rule \(longLived.ruleID))")
        }
        if let shortLived = matches.first {
            return CredentialFinding(credentialClass: .shortLived, kind: shortLived.description, location: location, redacted: redacted,
                                     detail: "\(shortLived.description) is short-lived (rule \(shortLived.ruleID))")
        }
        return CredentialFinding(credentialClass: .longLived, kind: "opaque token", location: location, redacted: redacted,
                                 detail: "an opaque token whose lifetime cannot be shown to be short; treated as long-lived")
    }

    /// A JWT counts as short-lived (or workload) only once its signature is verified with the keys
    /// of the job's issuer: the claims of an unverified one (its `exp`, its `iat`) may be forged, so
    /// it never ranks above `any`.
    private func classifyJWT(_ token: String, claims: [String: JSONValue], location: String, redacted: String, now: Date) -> CredentialFinding {
        func finding(_ cls: CredentialClass, _ detail: String) -> CredentialFinding {
            CredentialFinding(credentialClass: cls, kind: "bearer JWT", location: location, redacted: redacted, detail: detail)
        }
        guard let exp = claims["exp"]?.doubleValue else { return finding(.longLived, "JWT without exp never expires") }
        if exp < now.timeIntervalSince1970 { return finding(.invalid, "JWT expired at \(Date(timeIntervalSince1970: exp))") }
        let issued = claims["iat"]?.doubleValue ?? now.timeIntervalSince1970
        let ttl = exp - issued
        guard ttl <= maxShortLivedTTL else { return finding(.longLived, "JWT lifetime \(Int(ttl))s exceeds \(Int(maxShortLivedTTL))s") }
        let unverifiable = "its signature cannot be verified, so its lifetime claims cannot be trusted and it counts as long-lived"
        guard let verifier, let identity else {
            return finding(.longLived, "JWT not verified: the policy has no identity: section whose issuer's keys could verify it; \(unverifiable)")
        }
        guard let issuer = claims["iss"]?.stringValue, issuer == identity.issuer else {
            let named = claims["iss"]?.stringValue.map { "issuer \($0.prefix(100))" } ?? "no issuer"
            return finding(.longLived, "JWT from \(named), not the job's issuer \(identity.issuer); \(unverifiable)")
        }
        switch verifier.check(token: token, now: now) {
        case .sameIdentity:
            if let expires = identity.expiresAt, expires <= now {
                return finding(.shortLived, "the job's identity token expired at \(expires); workload credentials are no longer accepted")
            }
            return finding(.workload, "JWT verified with the issuer's keys; sub and pinned claims equal the job's identity")
        case .otherIdentity(let why): return finding(.shortLived, "JWT verified, but for another identity: \(why)")
        case .unverified(let why): return finding(.invalid, "JWT not verified: \(why)")
        }
    }

    /// The non-empty string at the dotted JSON path `path` (`credentials.oidcIdentityToken`) of
    /// `body`, read strictly (a duplicate key could hide the token a client reads).
    static func jsonString(at path: String, in body: [UInt8]) -> String? {
        guard var node = try? StrictJSON.parse(body) else { return nil }
        for key in path.split(separator: ".") {
            guard let next = node.objectValue?[String(key)] else { return nil }
            node = next
        }
        guard let value = node.stringValue, !value.isEmpty else { return nil }
        return value
    }

    /// What a token that looks like a compact JWS holds.
    enum JWTReading: Equatable {
        /// Decoded strictly (``CompactJWT``), its header naming an algorithm: the claims.
        case decoded([String: JSONValue])
        /// Shaped like one (three base64 parts, the first a JSON object's start) but not strictly encoded.
        case malformed(String)
    }

    /// The reading of `token` as a JWT; nil when it is not shaped like one.
    static func jwt(_ token: String) -> JWTReading? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy(isBase64Byte) }), enclosedLikeJSONObject(parts[0]) else { return nil }
        do {
            let jwt = try CompactJWT(token)
            guard jwt.header["alg"]?.stringValue != nil else { return .malformed("its header names no alg") }
            return .decoded(jwt.claims)
        } catch {
            return .malformed(error.reason)
        }
    }

    /// Whether `part`, decoded as leniently as a server might (base64 or base64url, padded or not),
    /// is enclosed in `{` `}`: the shape of a JWS header, without reading it as JSON.
    private static func enclosedLikeJSONObject(_ part: Substring) -> Bool {
        guard let decoded = Base64URL.decodeLeniently(part.utf8) else { return false }
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }
        return decoded.first(where: { !isSpace($0) }) == UInt8(ascii: "{") && decoded.last(where: { !isSpace($0) }) == UInt8(ascii: "}")
    }

    /// Bytes of base64 and base64url, padding included (what a lenient server might decode).
    private static func isBase64Byte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "+"), UInt8(ascii: "/"), UInt8(ascii: "="): true
        default: false
        }
    }
}
