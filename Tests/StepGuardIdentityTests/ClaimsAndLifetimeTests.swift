import StepGuardCore
import Foundation
import StepGuardPolicy
import Testing
@testable import StepGuardIdentity

@Suite("Claims and lifetime")
struct ClaimsAndLifetimeTests {
    let issuer = JOSEFixture.shared

    func verify(claims: [String: JSONValue] = JOSEFixture.claims(), rules: IdentityRules, offset: Double = 0) throws -> VerifiedIdentity {
        try makeVerifier(rules: rules, offset: offset).verify(token: issuer.token(claims: claims))
    }

    // MARK: claim matching

    @Test func globAndListMatchers() throws {
        let rules = defaultRules(claims: [
            "ref": [.glob(try! Glob("refs/heads/main")), .glob(try! Glob("refs/tags/v*"))],
            "repository": [.glob(try! Glob("acme/*"))],
            "repository_id": [.glob(try! Glob("957014466"))],
        ])
        _ = try verify(rules: rules)
        _ = try verify(claims: JOSEFixture.claims(["ref": "refs/tags/v1.2.3"]), rules: rules)
        let error = expectRejected(.claim) { _ = try verify(claims: JOSEFixture.claims(["ref": "refs/heads/feature"]), rules: rules) }
        #expect(error?.detail.contains("claim ref is \"refs/heads/feature\"") == true)
        #expect(error?.detail.contains("any of [\"refs/heads/main\", \"refs/tags/v*\"]") == true)
    }

    @Test func stringPatternNeverMatchesArrayOrObject() {
        let rules = defaultRules(claims: ["ref": [.glob(try! Glob("*"))]])
        let error = expectRejected(.claim) { _ = try verify(claims: JOSEFixture.claims(["ref": ["refs/heads/main"]]), rules: rules) }
        #expect(error?.detail.contains("a JSON array") == true)
        expectRejected(.claim) { _ = try verify(claims: JOSEFixture.claims(["ref": ["x": "refs/heads/main"]]), rules: rules) }
        expectRejected(.claim) { _ = try verify(claims: JOSEFixture.claims(["ref": 5]), rules: rules) }
    }

    @Test func numbersAndBooleansCompareByExactValue() throws {
        let rules = defaultRules(claims: [
            "run_attempt": [.number(1)],
            "ref_protected": [.bool(true)],
        ])
        _ = try verify(rules: rules)
        expectRejected(.claim) { _ = try verify(claims: JOSEFixture.claims(["run_attempt": 2]), rules: rules) }
        expectRejected(.claim) { _ = try verify(claims: JOSEFixture.claims(["run_attempt": "1"]), rules: rules) }
        expectRejected(.claim) { _ = try verify(claims: JOSEFixture.claims(["ref_protected": false]), rules: rules) }
        expectRejected(.claim) { _ = try verify(claims: JOSEFixture.claims(["ref_protected": "true"]), rules: rules) }
    }

    @Test func missingPinnedClaimIsRejected() {
        let rules = defaultRules(claims: ["environment": [.glob(try! Glob("production"))]])
        let error = expectRejected(.claim) { _ = try verify(rules: rules) }
        #expect(error?.detail.contains("claim environment is missing") == true)
    }

    // MARK: lifetime (token: iat = now-60, nbf = now-60, exp = now+540)

    @Test func maxTTL() throws {
        _ = try verify(rules: defaultRules(lifetime: LifetimeRules(maxTTL: 600)))
        let error = expectRejected(.maxTTL) { _ = try verify(rules: defaultRules(lifetime: LifetimeRules(maxTTL: 599))) }
        #expect(error?.detail.contains("exp − iat is 600s") == true)
        #expect(error?.detail.contains("599s") == true)
    }

    @Test func maxAge() throws {
        _ = try verify(rules: defaultRules(lifetime: LifetimeRules(maxAge: 60)))
        let error = expectRejected(.maxAge) { _ = try verify(rules: defaultRules(lifetime: LifetimeRules(maxAge: 59))) }
        #expect(error?.detail.contains("60s old") == true)
    }

    @Test func expiryWithLeeway() throws {
        let leeway = defaultRules(lifetime: LifetimeRules(leeway: 30))
        _ = try verify(rules: leeway, offset: 569)         // now = exp + 29
        expectRejected(.expiry) { _ = try verify(rules: leeway, offset: 570) }   // now = exp + leeway
        expectRejected(.expiry) { _ = try verify(rules: defaultRules(), offset: 540) } // now = exp, no leeway
        _ = try verify(rules: defaultRules(), offset: 539)
    }

    @Test func notBeforeWithLeeway() throws {
        let claims = JOSEFixture.claims(["nbf": .number(JSONNumber(JOSEFixture.now + 20)), "iat": .number(JSONNumber(JOSEFixture.now - 1))])
        _ = try verify(claims: claims, rules: defaultRules(lifetime: LifetimeRules(leeway: 30)))
        let error = expectRejected(.notBefore) { _ = try verify(claims: claims, rules: defaultRules(lifetime: LifetimeRules(leeway: 10))) }
        #expect(error?.detail.contains("leeway 10s") == true)
    }

    @Test func issuedInTheFutureWithLeeway() throws {
        let claims = JOSEFixture.claims(["iat": .number(JSONNumber(JOSEFixture.now + 20)), "nbf": nil])
        _ = try verify(claims: claims, rules: defaultRules(lifetime: LifetimeRules(leeway: 30)))
        expectRejected(.issuedAt) { _ = try verify(claims: claims, rules: defaultRules(lifetime: LifetimeRules(leeway: 10))) }
    }

    @Test func minRemaining() throws {
        _ = try verify(rules: defaultRules(lifetime: LifetimeRules(minRemaining: 540)))
        let error = expectRejected(.minRemaining) { _ = try verify(rules: defaultRules(lifetime: LifetimeRules(minRemaining: 541))) }
        #expect(error?.detail.contains("540s left") == true)
    }

    @Test func iatRequiredWhenAgeLimitsAreSet() {
        let claims = JOSEFixture.claims(["iat": nil])
        expectRejected(.issuedAt) { _ = try verify(claims: claims, rules: defaultRules(lifetime: LifetimeRules(maxAge: 600))) }
    }

    // MARK: workload comparison (egress proxy)

    @Test func sameWorkloadComparesIssuerSubjectAndPinnedClaims() throws {
        let rules = defaultRules(claims: ["repository_id": [.glob(try! Glob("957014466"))]])
        let verifier = makeVerifier(rules: rules)
        let job = try verifier.verify(token: issuer.token())
        // A token minted for another audience (e.g. Sigstore) by the same job.
        let inFlight = try verifier.verify(token: issuer.token(alg: .ES256, claims: JOSEFixture.claims(["aud": "sigstore"])), audience: .required("sigstore"))
        #expect(job.isSameWorkload(inFlight, pinnedClaims: verifier.pinnedClaims))

        let otherRef = try verifier.verify(token: issuer.token(claims: JOSEFixture.claims(["sub": "repo:acme/app:ref:refs/heads/dev"])))
        #expect(job.compareWorkload(otherRef, pinnedClaims: verifier.pinnedClaims)
                == .different(reason: "sub \"repo:acme/app:ref:refs/heads/dev\" differs from the job's sub \"repo:acme/app:ref:refs/heads/main\""))

        let loose = makeVerifier(rules: defaultRules())
        let otherRepo = try loose.verify(token: issuer.token(claims: JOSEFixture.claims(["repository_id": "1"])))
        #expect(!job.isSameWorkload(otherRepo, pinnedClaims: ["repository_id"]))
        let noClaim = try loose.verify(token: issuer.token(claims: JOSEFixture.claims(["repository_id": nil])))
        #expect(job.compareWorkload(noClaim, pinnedClaims: ["repository_id"]) == .different(reason: "pinned claim repository_id is missing from the presented token"))
    }
}
