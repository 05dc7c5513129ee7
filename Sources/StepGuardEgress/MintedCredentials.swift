import Crypto
import Foundation
import Synchronization

/// Credentials minted in this run by an allowed token exchange of a service (``MintOperation``):
/// npm and PyPI trusted publishing hand the job a short-lived publish token whose prefix (`npm_`,
/// `pypi-`) looks like a long-lived one. stepguard saw the exchange, decided it, and read the
/// token from its response, so it knows better: a token it saw minted is `short-lived` — for the
/// service that minted it, and for at most `lifetime` after the exchange.
///
/// Only SHA-256 digests are kept, never the tokens.
public final class MintedCredentials: Sendable {
    struct Mint { let service: String; let until: Date }

    /// How long after its exchange a minted token counts as short-lived.
    public let lifetime: TimeInterval
    private let mints = Mutex<[SHA256.Digest: Mint]>([:])

    public init(lifetime: TimeInterval) { self.lifetime = lifetime }

    /// Remembers `token`, read from the response of `service`'s allowed exchange at `now`.
    public func remember(_ token: String, service: String, now: Date) {
        let digest = SHA256.hash(data: Data(token.utf8))
        mints.withLock { mints in
            mints = mints.filter { $0.value.until > now }
            mints[digest] = Mint(service: service, until: now.addingTimeInterval(lifetime))
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
