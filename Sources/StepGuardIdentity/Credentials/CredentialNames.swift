import StepGuardCore

/// What the name of an environment variable says about its value: a secret by name
/// (`*_PASSWORD`, `*_SECRET*`, `*_TOKEN`…), a job-scoped CI token, half of a credential pair, or a
/// piece of a value split across alike-named variables.
enum CredentialNames {
    /// Variables a CI system sets for one job only, whose tokens die with the job: GitHub Actions'
    /// runtime and OIDC-request tokens, GitLab's job token and the registry/dependency-proxy
    /// passwords derived from it, GitLab's job JWTs and clone URL (it carries the job token),
    /// Buildkite's agent job token, CircleCI's OIDC tokens and Azure Pipelines' System.AccessToken.
    /// Their name-based and generic matches count as short-lived; a recognisable long-lived
    /// credential (a `ghp_…` in `CI_JOB_TOKEN`) or a JWT without `exp` still counts as long-lived.
    static let jobScoped: Set<String> = [
        "ACTIONS_RUNTIME_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "CI_JOB_TOKEN", "CI_BUILD_TOKEN", "CI_JOB_JWT", "CI_JOB_JWT_V1", "CI_JOB_JWT_V2",
        "CI_REGISTRY_PASSWORD", "CI_DEPENDENCY_PROXY_PASSWORD", "CI_REPOSITORY_URL",
        "BUILDKITE_AGENT_ACCESS_TOKEN", "CIRCLE_OIDC_TOKEN", "CIRCLE_OIDC_TOKEN_V2", "SYSTEM_ACCESSTOKEN",
    ]

    /// Rules that recognise a credential by its surroundings rather than by a format of its own;
    /// in a job-scoped variable they describe the job token itself.
    static func isGeneric(_ ruleID: String) -> Bool {
        ruleID.hasPrefix("generic-") || ["url-basic-auth", "connection-string-password", "jwt-long-lived", secretNameRule].contains(ruleID)
    }

    /// The rule id of a credential recognised by its variable's name.
    static let secretNameRule = "secret-variable-name"

    /// Name segments that make a value a secret at 8 characters or more, whatever its entropy.
    private static let passwordWords: Set<String> = ["PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "SECRETS"]
    /// Name segments (and segment pairs) that make a value of 16 characters or more with at least
    /// 3 bits of entropy per character a secret.
    private static let tokenWords: Set<String> = ["TOKEN", "APIKEY", "ACCESSTOKEN", "CREDENTIAL", "CREDENTIALS", "PAT",
                                                  "API_KEY", "ACCESS_KEY", "SECRET_KEY", "PRIVATE_KEY", "AUTH_KEY", "ACCOUNT_KEY",
                                                  "SIGNING_KEY", "ENCRYPTION_KEY", "MASTER_KEY", "CLIENT_KEY", "APP_KEY"]
    /// The last segment of each two-segment word of `tokenWords` (`KEY` of `API_KEY`).
    private static let pairEndings = Set(tokenWords.compactMap { $0.split(separator: "_").count == 2 ? String($0.split(separator: "_")[1]) : nil })
    /// Last segments that name something about a secret rather than the secret itself
    /// (`VAULT_TOKEN_PATH`, `SECRET_NAME`, `TOKEN_TTL`).
    private static let metadataWords: Set<String> = [
        "PATH", "FILE", "DIR", "URL", "URI", "ENDPOINT", "HOST", "PORT", "NAME", "ID", "TYPE", "HEADER", "TTL", "EXPIRY",
        "EXPIRES", "LENGTH", "SIZE", "MODE", "ENABLED", "REQUIRED", "VERSION", "FORMAT", "ARN", "REF", "ROLE", "ISSUER",
        "AUDIENCE", "SCOPE", "SCOPES", "USER", "USERNAME", "LOCATION", "PROVIDER", "REGION", "KIND", "PREFIX", "SUFFIX",
    ]

    /// A match when `name` is named like a secret and `value` looks like one (not empty, not a
    /// placeholder or a reference like `${X}`, not a path or a URL without credentials).
    static func secretByName(_ name: String, value: String) -> CredentialMatch? {
        guard mayBeSecretName(name) else { return nil }
        // An ASCII name is split on bytes (splitting a String walks its grapheme clusters); any
        // other on characters, where a `_` joined to a mark (`_\u{301}`) or after a prepended one
        // (`\u{600}_`) is no separator.
        let upper = name.uppercased()
        let segments = upper.utf8.allSatisfy { $0 < 0x80 }
            ? upper.utf8.split(separator: UInt8(ascii: "_")).map { String(Substring($0)) }
            : upper.split(separator: "_").map(String.init)
        guard let last = segments.last else { return nil }
        // `…_SECRET_ID` (Vault AppRole) is a secret; other `…_ID`, `…_PATH`, `…_NAME`… are about one.
        let isSecretID = last == "ID" && segments.dropLast().last == "SECRET"
        guard isSecretID || !metadataWords.contains(last) else { return nil }
        let isPasswordNamed = segments.contains { passwordWords.contains($0) }
        // Pairs (`API_KEY`) only where a segment is the last word of one: most names have none.
        let isTokenNamed = segments.contains { tokenWords.contains($0) }
            || (segments.contains { pairEndings.contains($0) } && zip(segments, segments.dropFirst()).contains { tokenWords.contains("\($0)_\($1)") })
        guard isPasswordNamed || isTokenNamed else { return nil }
        let text = value.trimmingASCIISpaces
        guard !looksLikeReference(text) else { return nil }
        let count = text.utf8.count
        let isSecret = (isPasswordNamed && count >= 8) || (isTokenNamed && count >= 16 && Entropy.shannon(Array(text.utf8)) >= 3.0)
        guard isSecret else { return nil }
        return CredentialMatch(ruleID: secretNameRule, description: "a secret by its variable's name", lifetime: .longLived)
    }

    /// Every word above that a secret's name must contain as a segment (or as the end of a pair):
    /// an ASCII name containing none of them, in any case, is not one.
    private static let nameWords: [[UInt8]] = ["PASS", "SECRET", "TOKEN", "APIKEY", "CREDENTIAL", "PAT", "KEY"].map { Array($0.utf8) }

    /// False when `name` cannot be a secret's name (checked on its bytes: most variables are not);
    /// true for any name outside ASCII, whose upper-casing may make ASCII letters of others (`ſ` → `S`).
    private static func mayBeSecretName(_ name: String) -> Bool {
        var name = name
        return name.withUTF8 { bytes in
            guard bytes.allSatisfy({ $0 < 0x80 }) else { return true }
            func upper(_ byte: UInt8) -> UInt8 { byte >= 0x61 && byte <= 0x7A ? byte - 0x20 : byte }
            for start in bytes.indices {
                for word in nameWords where word[0] == upper(bytes[start]) && bytes.count - start >= word.count {
                    var offset = 1
                    while offset < word.count && upper(bytes[start + offset]) == word[offset] { offset += 1 }
                    if offset == word.count { return true }
                }
            }
            return false
        }
    }

    /// Placeholders, references, paths and plain URLs: values a secret-named variable holds
    /// when it does not hold the secret itself.
    private static func looksLikeReference(_ text: String) -> Bool {
        if text.isEmpty || text.contains("${") || text.contains("$(") || text.hasPrefix("$") { return true }
        if text.hasPrefix("<") && text.hasSuffix(">") { return true }
        if text.allSatisfy({ $0 == "*" || $0 == "x" || $0 == "X" }) { return true }
        if text.hasPrefix("/") || text.hasPrefix("./") || text.hasPrefix("../") || text.hasPrefix("~/") { return true }
        if let scheme = text.scalarRange(of: "://"), !text[scheme.upperBound...].contains("@") { return true }
        return false
    }

    // MARK: Pairs

    /// Roles of the halves of a credential, longest first: `AWS_` + `SECRET_ACCESS_KEY`.
    private static let roles = [
        "SECRET_ACCESS_KEY", "ACCESS_KEY_ID", "SESSION_TOKEN", "SECURITY_TOKEN", "CLIENT_SECRET", "CLIENT_ID", "TENANT_ID",
        "CONSUMER_SECRET", "CONSUMER_KEY", "TOKEN_SECRET", "TOKEN_ID", "ACCOUNT_NAME", "ACCOUNT_KEY", "API_SECRET", "API_KEY",
        "APP_SECRET", "APP_KEY", "APP_ID", "SECRET_KEY", "ACCESS_KEY", "KEY_ID", "USERNAME", "PASSWORD", "PASSWD", "LOGIN",
        "SECRET", "USER",
    ]

    /// The stem shared by the halves of a credential: `AWS_` for `AWS_SECRET_ACCESS_KEY`, nil when
    /// the name is not a role of a pair (or has no stem: a bare `USER` is the login name).
    static func pairStem(_ name: String) -> String? {
        // An ASCII name on its bytes (one character each); any other on characters, where the `_`
        // of `\u{600}_` is no character of its own.
        var ascii = name
        if let stem = ascii.withUTF8({ bytes in bytes.allSatisfy { $0 < 0x80 } ? asciiPairStem(bytes) : nil }) { return stem }
        for role in roles where name.hasSuffix(role) {
            let stem = name.dropLast(role.count)
            if stem.hasSuffix("_") && stem.count > 1 { return String(stem) }
        }
        return nil
    }

    /// ``pairStem(_:)`` of an ASCII name. Nil inside: no stem.
    private static func asciiPairStem(_ bytes: UnsafeBufferPointer<UInt8>) -> String?? {
        for role in roleBytes where bytes.count > role.count + 1 && bytes[bytes.count - role.count - 1] == UInt8(ascii: "_")
            && bytes.suffix(role.count).elementsEqual(role) {
            return String(decoding: bytes.prefix(bytes.count - role.count), as: UTF8.self)
        }
        return .some(nil)
    }

    private static let roleBytes = roles.map { Array($0.utf8) }

    // MARK: Split values

    /// The stem and order key of a piece of a split value: `TOKEN_A` → (`TOKEN`, `A`),
    /// `KEY_PART2` → (`KEY`, `2`), `SECRET1` → (`SECRET`, `1`). Nil for other names.
    static func piece(_ name: String) -> (stem: String, order: String)? {
        var ascii = name
        // Outside ASCII (nil outside): the characters' way below.
        if let piece = ascii.withUTF8({ $0.allSatisfy { $0 < 0x80 } ? asciiPiece($0) : nil }) { return piece }
        var stem = Substring(name)
        var order = Substring("")
        if let digits = stem.lastIndex(where: { !$0.isASCIIDigit }).map({ stem.index(after: $0) }), digits < stem.endIndex,
           stem.distance(from: digits, to: stem.endIndex) <= 2 {
            order = stem[digits...]
            stem = stem[..<digits]
            if stem.hasSuffix("PART") { stem = stem.dropLast(4) }
        } else if stem.count >= 3, stem[stem.index(stem.endIndex, offsetBy: -2)] == "_", stem.last!.isLetter {
            order = stem.suffix(1)
            stem = stem.dropLast(1)
        } else {
            return nil
        }
        while stem.hasSuffix("_") { stem = stem.dropLast() }
        guard !stem.isEmpty else { return nil }
        return (String(stem), order.count < 2 ? " " + order : String(order))  // pads digits so 2 < 10
    }

    /// ``piece(_:)`` of an ASCII name, on its bytes (one character each): every environment
    /// variable's name is asked before each step. Nil inside: not a piece.
    private static func asciiPiece(_ bytes: UnsafeBufferPointer<UInt8>) -> (stem: String, order: String)?? {
        func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
        func isLetter(_ byte: UInt8) -> Bool { (byte | 0x20) >= 0x61 && (byte | 0x20) <= 0x7A }
        var end = bytes.count
        var orderStart: Int
        let digits = bytes.count - (bytes.lastIndex { !isDigit($0) }.map { $0 + 1 } ?? 0)
        if digits > 0, digits <= 2, digits < bytes.count {
            orderStart = bytes.count - digits
            end = orderStart
            if end >= 4, bytes[(end - 4)..<end].elementsEqual("PART".utf8) { end -= 4 }
        } else if bytes.count >= 3, bytes[bytes.count - 2] == UInt8(ascii: "_"), isLetter(bytes[bytes.count - 1]) {
            orderStart = bytes.count - 1
            end = orderStart
        } else {
            return .some(nil)
        }
        while end > 0, bytes[end - 1] == UInt8(ascii: "_") { end -= 1 }
        guard end > 0 else { return .some(nil) }
        let order = String(decoding: bytes[orderStart...], as: UTF8.self)
        return (String(decoding: bytes[..<end], as: UTF8.self), bytes.count - orderStart < 2 ? " " + order : order)
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}

extension String {
    /// The string without leading and trailing ASCII whitespace (no NSString bridging).
    var trimmingASCIISpaces: String {
        func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || (0x09...0x0D).contains(byte) }
        guard let first = utf8.firstIndex(where: { !isSpace($0) }), let last = utf8.lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(Substring(utf8[first...last]))
    }
}
