import Foundation
import StepGuardPolicy
import StepGuardTestSupport
import Testing
@testable import StepGuardIdentity

/// A verifier over a JWKS file, with the clock fixed at `JOSEFixture.now` (+ `offset`).
func makeVerifier(jwks: String? = nil, rules: IdentityRules = defaultRules(), offset: Double = 0) -> IdentityVerifier {
    let directory = try! TemporaryDirectory(prefix: "stepguard-identity")
    _ = try? directory.write("jwks.json", jwks ?? JOSEFixture.shared.jwks())
    let store = KeyStore(location: .file(directory.path + "/jwks.json"), options: KeyStoreOptions(cacheDirectory: nil))
    _ = try? store.keys()
    directory.remove()
    let now = JOSEFixture.now + offset
    return IdentityVerifier(rules: rules, keyStore: store, now: { Date(timeIntervalSince1970: now) })
}

func defaultRules(algorithms: Set<JWSAlgorithm> = [.RS256, .ES256], claims: [String: [ClaimMatcher]] = [:],
                  lifetime: LifetimeRules = LifetimeRules()) -> IdentityRules {
    IdentityRules(issuer: JOSEFixture.issuer, audience: JOSEFixture.audience, algorithms: algorithms, claims: claims, lifetime: lifetime)
}

/// Expects `body` to throw an ``IdentityError`` for `check`; returns it for further assertions.
@discardableResult
func expectRejected(_ check: IdentityError.Check, sourceLocation: Testing.SourceLocation = #_sourceLocation,
                    _ body: () throws -> Void) -> IdentityError? {
    rejection(Result { try body() }, by: check, sourceLocation: sourceLocation)
}

/// Async variant of ``expectRejected(_:sourceLocation:_:)``.
@discardableResult
func expectRejectedAsync(_ check: IdentityError.Check, sourceLocation: Testing.SourceLocation = #_sourceLocation,
                         _ body: () async throws -> Void) async -> IdentityError? {
    let outcome: Result<Void, any Error>
    do { try await body(); outcome = .success(()) } catch { outcome = .failure(error) }
    return rejection(outcome, by: check, sourceLocation: sourceLocation)
}

/// Records an issue unless `outcome` is an ``IdentityError`` for `check`; returns the error.
private func rejection(_ outcome: Result<Void, any Error>, by check: IdentityError.Check,
                       sourceLocation: Testing.SourceLocation) -> IdentityError? {
    switch outcome {
    case .success:
        Issue.record("expected rejection by \(check), but it was accepted", sourceLocation: sourceLocation)
        return nil
    case .failure(let error as IdentityError):
        #expect(error.check == check, "expected \(check), got: \(error)", sourceLocation: sourceLocation)
        return error
    case .failure(let error):
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
