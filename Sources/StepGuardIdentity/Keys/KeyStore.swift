import StepGuardCore
import Crypto
import FoundationEssentials
import Glibc

/// Where the issuer's keys come from.
public enum JWKSLocation: Sendable, Equatable, CustomStringConvertible {
    /// A JWKS file on disk (absolute, or already resolved against the policy's directory).
    case file(String)
    /// A JWKS URL (https).
    case url(String)
    /// OIDC discovery: `<issuer>/.well-known/openid-configuration` → `jwks_uri`.
    case discovery(issuer: String)

    /// Resolves the policy's `jwks:` value: nil → discovery from `issuer`; `https://…` → URL;
    /// anything else → a file path, relative to `policyDirectory` unless absolute.
    public static func resolve(_ jwks: String?, issuer: String, policyDirectory: String?) -> JWKSLocation {
        guard let jwks, !jwks.isEmpty else { return .discovery(issuer: issuer) }
        let lower = jwks.lowercased()
        if lower.hasPrefix("https://") || lower.hasPrefix("http://") { return .url(jwks) }
        if jwks.hasPrefix("/") || policyDirectory == nil { return .file(jwks) }
        return .file(URL(fileURLWithPath: jwks, relativeTo: URL(fileURLWithPath: policyDirectory!, isDirectory: true)).standardizedFileURL.path)
    }

    public var description: String {
        switch self {
        case .file(let path): return path
        case .url(let url): return url
        case .discovery(let issuer): return "OIDC discovery from \(issuer)"
        }
    }
}

/// Options for fetching and caching keys.
public struct KeyStoreOptions: Sendable {
    /// Private cache directory (created 0700; ignored when it is not private to this user).
    /// nil disables the disk cache.
    public var cacheDirectory: String?
    /// How long a fetched JWKS (and discovery document) is used before it is fetched again.
    public var cacheTTL: TimeInterval
    /// Minimum time between two fetches triggered by an unknown kid (rate limit).
    public var refetchInterval: TimeInterval

    /// The default cache directory: `$XDG_CACHE_HOME/stepguard/jwks` or `~/.cache/stepguard/jwks`.
    public static func defaultCacheDirectory(environment: [String: String]) -> String? {
        if let xdg = environment["XDG_CACHE_HOME"], xdg.hasPrefix("/") { return xdg + "/stepguard/jwks" }
        if let home = environment["HOME"], home.hasPrefix("/") { return home + "/.cache/stepguard/jwks" }
        return nil
    }

    /// Creates options (defaults: 10 min TTL, 60 s refetch interval); `cacheDirectory` nil: no disk
    /// cache (``defaultCacheDirectory(environment:)`` gives the usual one).
    public init(cacheDirectory: String?, cacheTTL: TimeInterval = 600, refetchInterval: TimeInterval = 60) {
        self.cacheDirectory = cacheDirectory
        self.cacheTTL = cacheTTL
        self.refetchInterval = refetchInterval
    }
}

/// Holds the issuer's JWKS: loads it from a file, or fetches it (directly or through OIDC
/// discovery) with a disk cache, and refetches once — rate-limited — when a token names an
/// unknown kid. Every failure is an ``IdentityError`` with check `.jwks` naming the URL or file:
/// nothing falls back to stale or default keys.
///
/// Thread-safe: the egress proxy verifies tokens from several connections at once.
public final class KeyStore: @unchecked Sendable {
    // @unchecked: all mutable state is guarded by `lock`.
    private let lock = PosixLock()
    private var current: JWKSet?
    private var fetchedAt: Date?
    private var resolvedJWKSURL: String?

    /// Where the keys come from.
    public let location: JWKSLocation
    private let transport: any HTTPTransport
    private let options: KeyStoreOptions
    private let now: @Sendable () -> Date

    private var fetches = 0

    /// Number of network fetches of the JWKS performed by this store (for tests and diagnostics).
    public var fetchCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return fetches
    }

    /// Creates a store (without a disk cache unless `options` names one).
    public init(location: JWKSLocation, transport: any HTTPTransport = CurlTransport(),
                options: KeyStoreOptions = KeyStoreOptions(cacheDirectory: nil), now: @escaping @Sendable () -> Date = Date.init) {
        self.location = location
        self.transport = transport
        self.options = options
        self.now = now
    }

    /// The current key set (from memory, the disk cache while fresh, or a fetch).
    public func keys() throws(IdentityError) -> JWKSet {
        lock.lock()
        defer { lock.unlock() }
        if let current, let fetchedAt, now().timeIntervalSince(fetchedAt) < options.cacheTTL || isFile {
            return current
        }
        return try load(forceFetch: false)
    }

    /// Called when a token names a kid absent from `stale`: fetches the JWKS again unless one was
    /// fetched less than `refetchInterval` ago. Returns the new set, or nil when rate-limited or
    /// the keys come from a file.
    public func refreshForUnknownKid(seen stale: JWKSet) throws(IdentityError) -> JWKSet? {
        lock.lock()
        defer { lock.unlock() }
        if isFile { return nil }
        if let current, current.generation != stale.generation { return current } // someone else refreshed
        if let fetchedAt, now().timeIntervalSince(fetchedAt) < options.refetchInterval { return nil }
        return try load(forceFetch: true)
    }

    private var isFile: Bool {
        if case .file = location { return true }
        return false
    }

    // MARK: loading (lock held)

    private func load(forceFetch: Bool) throws(IdentityError) -> JWKSet {
        switch location {
        case .file(let path):
            let data: Data
            do {
                data = try Data(contentsOf: URL(fileURLWithPath: path))
            } catch {
                throw IdentityError(.jwks, "cannot read the JWKS file \(path): \(describeError(error))",
                                    remedy: "check identity.jwks (a file path is relative to the policy file)")
            }
            let set = try JWKSet(data: data, origin: path)
            current = set
            fetchedAt = now()
            return set
        case .url(let url):
            return try loadRemote(jwksURL: url, forceFetch: forceFetch)
        case .discovery(let issuer):
            let jwksURL: String
            if let resolvedJWKSURL {
                jwksURL = resolvedJWKSURL
            } else {
                jwksURL = try discover(issuer: issuer)
                resolvedJWKSURL = jwksURL
            }
            return try loadRemote(jwksURL: jwksURL, forceFetch: forceFetch)
        }
    }

    private func loadRemote(jwksURL: String, forceFetch: Bool) throws(IdentityError) -> JWKSet {
        if !forceFetch, let cached = readCache(url: jwksURL) {
            let set = try JWKSet(data: cached.body, origin: jwksURL)
            current = set.withGeneration(nextGeneration())
            fetchedAt = cached.fetchedAt
            return current!
        }
        let body = try fetch(jwksURL, what: "JWKS")
        fetches += 1
        let set = try JWKSet(data: body, origin: jwksURL)
        current = set.withGeneration(nextGeneration())
        fetchedAt = now()
        writeCache(url: jwksURL, body: body)
        return current!
    }

    private var generationCounter = 0
    private func nextGeneration() -> Int {
        generationCounter += 1
        return generationCounter
    }

    private func discover(issuer: String) throws(IdentityError) -> String {
        var base = issuer
        while base.hasSuffix("/") { base.removeLast() }
        let url = base + "/.well-known/openid-configuration"
        let body: [UInt8]
        if let cached = readCache(url: url) {
            body = cached.body
        } else {
            body = try fetch(url, what: "OIDC discovery document")
            writeCache(url: url, body: body)
        }
        let json = try keyDocument(body, "the OIDC discovery document at \(url)", remedy: "set identity.jwks explicitly, or check identity.issuer")
        guard let document = json.objectValue else {
            throw IdentityError(.jwks, "the OIDC discovery document at \(url) is not a JSON object", remedy: "set identity.jwks explicitly")
        }
        guard let advertised = document["issuer"]?.stringValue, advertised == issuer else {
            throw IdentityError(.jwks, "the OIDC discovery document at \(url) names issuer \(document["issuer"]?.jsonText ?? "(none)"), not \"\(issuer)\"",
                                remedy: "identity.issuer must equal the issuer the provider advertises, exactly")
        }
        guard let jwksURI = document["jwks_uri"]?.stringValue, jwksURI.lowercased().hasPrefix("https://") else {
            throw IdentityError(.jwks, "the OIDC discovery document at \(url) has no https jwks_uri",
                                remedy: "set identity.jwks explicitly")
        }
        return jwksURI
    }

    private func fetch(_ url: String, what: String) throws(IdentityError) -> [UInt8] {
        let response = try transport.perform(HTTPRequest(url: url, headers: [("Accept", "application/json")]), purpose: .jwks)
        guard (200..<300).contains(response.status) else {
            throw IdentityError(.jwks, "fetching the \(what) from \(url) returned HTTP \(response.status)",
                                remedy: "check the URL; stepguard fails closed while the keys cannot be fetched")
        }
        return response.body
    }

    // MARK: disk cache

    private struct CacheEntry {
        var fetchedAt: Date
        var body: [UInt8]
    }

    private func cacheFile(for url: String) -> String? {
        guard let directory = privateCacheDirectory() else { return nil }
        let digest = Hex.string(SHA256.hash(data: Array(url.utf8)))
        return directory + "/" + digest.prefix(32) + ".json"
    }

    /// Creates the cache directory 0700 if needed; returns it only if it is a directory owned by
    /// this user with no group/other permissions (anything else could plant keys).
    private func privateCacheDirectory() -> String? {
        guard let directory = options.cacheDirectory else { return nil }
        _ = try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                     attributes: [.posixPermissions: 0o700])
        var info = stat()
        guard lstat(directory, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR,
              info.st_uid == geteuid(), (info.st_mode & 0o077) == 0 else { return nil }
        return directory
    }

    private func readCache(url: String) -> CacheEntry? {
        guard let path = cacheFile(for: url), let data = FileManager.default.contents(atPath: path),
              let json = try? StrictJSON.parse(data), let object = json.objectValue,
              object["url"]?.stringValue == url,
              let fetched = object["fetched_at"]?.doubleValue,
              let body = object["body"]?.stringValue else { return nil }
        let fetchedAt = Date(timeIntervalSince1970: fetched)
        let age = now().timeIntervalSince(fetchedAt)
        guard age >= 0, age < options.cacheTTL else { return nil }
        return CacheEntry(fetchedAt: fetchedAt, body: Array(body.utf8))
    }

    private func writeCache(url: String, body: [UInt8]) {
        guard let path = cacheFile(for: url), let text = String(validating: body, as: UTF8.self) else { return }
        let entry = JSONValue.object([
            "url": .string(url),
            "fetched_at": .number(JSONNumber(now().timeIntervalSince1970.rounded(.down))),
            "body": .string(text),
        ])
        let temporary = path + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(entry.jsonText.utf8), attributes: [.posixPermissions: 0o600]) else { return }
        if rename(temporary, path) != 0 { unlink(temporary) }
    }
}

extension JWKSet {
    func withGeneration(_ generation: Int) -> JWKSet {
        var copy = self
        copy.generation = generation
        return copy
    }
}
