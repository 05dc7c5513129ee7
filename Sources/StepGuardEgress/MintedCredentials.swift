import Crypto
import FoundationEssentials
import Glibc
import Synchronization

/// Credentials minted in this run by an allowed token exchange of a service (``MintOperation``):
/// npm and PyPI trusted publishing hand the job a short-lived publish token whose prefix (`npm_`,
/// `pypi-`) looks like a long-lived one. stepguard saw the exchange, decided it, and read the
/// token from its response, so it knows better: a token it saw minted is `short-lived` — for the
/// service that minted it, and for at most `lifetime` after the exchange.
///
/// They are looked up by SHA-256 digest. The tokens themselves are kept in memory only (never
/// written or printed), so that they can be revoked after a violation (``held``).
public final class MintedCredentials: Sendable {
    struct Mint { let service: String; let until: Date; let token: String; let minted: Date }

    /// A token minted in this run: which service minted it and when.
    public struct Held: Sendable {
        /// The catalog service that minted the token.
        public let service: String
        /// When the exchange that minted it was decided.
        public let minted: Date
        /// The token itself: never print or log it (redact it).
        public let token: String
    }

    /// How long after its exchange a minted token counts as short-lived.
    public let lifetime: TimeInterval
    private let mints = Mutex<[SHA256.Digest: Mint]>([:])

    /// An empty record; minted tokens count as short-lived for `lifetime` after their exchange.
    public init(lifetime: TimeInterval) { self.lifetime = lifetime }

    /// Remembers `token`, read from the response of `service`'s allowed exchange at `now`.
    public func remember(_ token: String, service: String, now: Date) {
        let digest = SHA256.hash(data: Data(token.utf8))
        mints.withLock { mints in
            mints = mints.filter { $0.value.until > now }
            mints[digest] = Mint(service: service, until: now.addingTimeInterval(lifetime), token: token, minted: now)
        }
    }

    /// Every token minted in this run and still within its lifetime, oldest first.
    public func held(now: Date = Date()) -> [Held] {
        mints.withLock { mints in
            mints.values.filter { $0.until > now }.sorted { $0.minted < $1.minted }
                .map { Held(service: $0.service, minted: $0.minted, token: $0.token) }
        }
    }

    /// Whether `token` was minted in this run by `service` and is still within its lifetime.
    public func wasMinted(_ token: String, by service: String, now: Date) -> Bool {
        let digest = SHA256.hash(data: Data(token.utf8))
        return mints.withLock { mints in
            guard let mint = mints[digest] else { return false }
            return mint.service == service && mint.until > now
        }
    }
}
