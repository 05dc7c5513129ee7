import Foundation
import StepGuardSecretsTestSupport
import Testing
@testable import StepGuardSecrets

/// The generic rules drop a value that is readable text in base64 or percent-encoding (issue #22:
/// `username:password`, `{"foo": "bar"}`, prose in API fixtures) — but not one whose text holds a
/// secret another rule finds, and not the base64 of random bytes or of a random password.
@Suite struct EncodedTextTests {
    let detector = try! SecretDetector.builtIn(prefilter: vectorscan)

    func rules(in text: String) -> [String] {
        var text = text
        return text.withUTF8 { detector.engine.matches(in: UnsafeRawBufferPointer($0), path: "x", options: MatchOptions()) }
            .map { detector.engine.rules[$0.ruleIndex].rule.id }
    }

    func base64(_ text: String) -> String { SecretChecks.base64(Array(text.utf8)) }

    @Test func readableTextInBase64OrPercentEncodingIsNotASecret() {
        for value in [base64("{\"foo\": \"bar\", \"page\": 2}"), base64("username:password"), base64("you are not supposed to decode this!"),
                      base64("longer-encoded-secret-test"), "decoded-%73%65%63%72%65%74-value22",
                      base64("decoded-%73%65%63%72%65%74-value").replacingOccurrences(of: "=", with: "%3D")] {
            #expect(rules(in: "api_token = \"\(value)\"\n").isEmpty, "\(value)")
        }
    }

    @Test func encodedRandomValuesAndEncodedSecretsAreFound() {
        let password = ExampleTemplate.expand("{alnum:20}", seed: 3)
        let cases = [
            base64("deploy:" + password),  // user:random password
            base64(ExampleTemplate.expand("{hex:32}", seed: 4)),  // text, but random
            SecretChecks.base64((0..<30).map { UInt8(truncatingIfNeeded: $0 &* 97 &+ 13) }),  // bytes
            base64("{\"user\": \"deploy\", \"password\": \"\(password)\"}"),  // JSON holding a password
            base64("note: " + Fake.githubPAT(9)),  // prose holding a token
        ]
        for value in cases {
            #expect(rules(in: "api_token = \"\(value)\"\n").contains("generic-secret-assignment"), "\(value.prefix(8))…")
        }
    }

    @Test func decodingHelpers() {
        #expect(SecretChecks.decodeBase64(Array("dXNlcjpwYXNz".utf8)) == Array("user:pass".utf8))
        #expect(SecretChecks.decodeBase64(Array("-_8".utf8)) == [0xFB, 0xFF])
        #expect(SecretChecks.decodeBase64(Array("a!b=".utf8)) == nil)
        #expect(SecretChecks.percentDecode(Array("a%2Fb%zz".utf8)) == Array("a/b%zz".utf8))
        #expect(SecretChecks.percentDecode(Array("plain".utf8)) == nil)
        #expect(SecretChecks.isWords(Array("decoded-secret-value00".utf8)))
        #expect(!SecretChecks.isWords(Array("admin:S3cr3tP4ss".utf8)))
    }
}
