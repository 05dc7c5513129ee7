import Foundation
import StepGuardPolicy
import Testing
@testable import StepGuardIdentity

/// Verifications per second for RS256-2048 and ES256 (full `IdentityVerifier.verify`: parse,
/// key selection, signature, claims, lifetime). Runs only with STEPGUARD_BENCH=1; see
/// bench/identity/run.sh, which builds in release mode and pins the process to one core.
@Suite("Identity benchmark", .enabled(if: ProcessInfo.processInfo.environment["STEPGUARD_BENCH"] == "1"), .serialized)
struct IdentityBenchmark {
    static let seconds = Double(ProcessInfo.processInfo.environment["STEPGUARD_BENCH_SECONDS"] ?? "") ?? 2
    static let rounds = Int(ProcessInfo.processInfo.environment["STEPGUARD_BENCH_ROUNDS"] ?? "") ?? 5

    func measure(_ alg: JWSAlgorithm) throws {
        let issuer = JOSEFixture.shared
        let rules = defaultRules(algorithms: [alg], claims: [
            "repository": [.glob(try! Glob("acme/*"))], "ref": [.glob(try! Glob("refs/heads/main")), .glob(try! Glob("refs/tags/v*"))],
        ], lifetime: LifetimeRules(maxTTL: 900, maxAge: 600, leeway: 30, minRemaining: 60))
        let verifier = makeVerifier(rules: rules)
        let token = issuer.token(alg: alg)
        _ = try verifier.verify(token: token)
        var rates: [Double] = []
        for _ in 0..<Self.rounds {
            var count = 0
            let start = DispatchTime.now().uptimeNanoseconds
            let deadline = start + UInt64(Self.seconds * 1e9)
            var now = start
            while now < deadline {
                for _ in 0..<100 { _ = try verifier.verify(token: token) }
                count += 100
                now = DispatchTime.now().uptimeNanoseconds
            }
            rates.append(Double(count) / (Double(now - start) / 1e9))
        }
        rates.sort()
        let median = rates[rates.count / 2]
        print("BENCH {\"impl\":\"stepguard\",\"alg\":\"\(alg)\",\"median_per_second\":\(Int(median)),\"rounds\":[\(rates.map { String(Int($0)) }.joined(separator: ","))]}")
    }

    @Test func rs256() throws { try measure(.RS256) }
    @Test func es256() throws { try measure(.ES256) }
}
