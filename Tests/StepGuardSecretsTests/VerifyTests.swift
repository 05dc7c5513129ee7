import StepGuardSecretsTestSupport
import Testing
@testable import StepGuardSecrets

/// What `--verify` may send; the verification runs against stand-in issuers are in EndToEndTests'
/// `VerifyTests`.
@Suite struct VerifyTests {
    @Test func onlyVisibleASCIIIsEverPutInAHeader() {
        #expect(SecretVerifier.isSendable(Fake.githubPAT(3)))
        for hostile in ["ghp_abc\r\nX-Injected: 1", "a b", "tab\there", "", String(repeating: "a", count: 1025), "é"] {
            #expect(!SecretVerifier.isSendable(hostile), "\(hostile.debugDescription)")
        }
        for call in IssuerCall.byRule.values {
            #expect(call.url.hasPrefix("https://" + call.host + "/"), "\(call.url)")
        }
    }
}
