import Foundation
import StepGuardServerTestSupport
import StepGuardTestSupport
import Testing

/// The whole chain through the built binary: the job's identity is verified before the step starts,
/// the step is isolated, and a call to a signing service is accepted only with a token of the same
/// workload — checked in flight by the TLS-inspecting proxy.
@Suite struct WorkloadServiceTests {
    @Test func signingServiceAcceptsOnlyTheJobsOwnWorkloadToken() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let issuer = TestOIDCIssuer()
        try directory.write("jwks.json", issuer.jwks)
        let claims = ["repository": #""octo-org/app""#, "ref": #""refs/tags/v2.0.0""#]
        let subject = "repo:octo-org/app:ref:refs/tags/v2.0.0"
        try directory.write("token.jwt", try issuer.token(subject: subject, audience: "stepguard", extraClaims: claims))
        let fulcio = try ServiceStandIn.start("fulcio.sigstore.dev", directory: directory) { _ in .json(#"{"signed":true}"#) }
        defer { fulcio.shutdown() }
        let policy = try directory.write("policy.yaml", """
        version: 1
        on_violation: fail
        isolation: required
        \(issuer.identitySection(#"claims: { repository: "octo-org/app" }"#))
        egress: { default: deny }
        services:
          - service: sigstore-fulcio
            allow: { methods: [POST], credential: workload, claims: { ref: "refs/tags/v*" } }
        \(fulcio.network)
        """)
        // What cosign does: a token for Sigstore's audience, from the same job, then one from another job.
        let sameJob = try issuer.token(subject: subject, audience: "sigstore", extraClaims: claims)
        let otherJob = try issuer.token(subject: "repo:octo-org/other:ref:refs/tags/v2.0.0", audience: "sigstore",
                                        extraClaims: ["repository": #""octo-org/other""#, "ref": #""refs/tags/v2.0.0""#])
        try directory.write("same.jwt", sameJob)
        try directory.write("other.jwt", otherJob)
        let post = "curl -s -o /dev/null -w '%{http_code}\\n' -X POST --data '{}' https://fulcio.sigstore.dev/api/v2/signingCert"
        let script = "\(post) -H \"Authorization: Bearer $(cat same.jwt)\"; \(post) -H \"Authorization: Bearer $(cat other.jwt)\""
        let log = directory.path("audit.jsonl")
        let result = try StepGuardBinary.run(["run", "--policy", policy, "--audit-log", log, "--", "/bin/sh", "-c", script],
                                             currentDirectory: directory.path)
        #expect(result.stdout == "200\n403\n", "\(result.stderr)")
        #expect(result.status == 77)
        #expect(fulcio.requests.count == 1)
        let text = try directory.read("audit.jsonl")
        #expect(text.contains(#""type":"identity","decision":"allow""#))
        #expect(text.contains(#""isolated":true"#))
        for token in [sameJob, otherJob] { #expect(!text.contains(token) && !result.stderr.contains(token)) }
        let denial = try #require(text.split(separator: "\n").first { $0.contains(#""type":"service","decision":"deny""#) })
        #expect(denial.contains("octo-org/other") || denial.contains("sub"))
    }
}
