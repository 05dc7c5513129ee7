import StepGuardCore
import StepGuardSecretsTestSupport
import Testing
@testable import StepGuardSecrets

/// The SigV4 signer against AWS's published Signature Version 4 test suite
/// (https://docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html, the
/// `aws-sig-v4-test-suite` vectors): credential `AKIDEXAMPLE` with the documented example secret,
/// region us-east-1, service `service`, 2015-08-30T12:36:00Z, host example.amazonaws.com.
@Suite struct AWSSigV4Tests {
    /// The suite's documented example secret access key (not a credential), in two parts so
    /// that the repository's own scan does not take it for one.
    static let documented = ["wJalrXUtnFEMI", "K7MDENG+bPxRfiCYEXAMPLEKEY"].joined(separator: "/")
    static let signer = AWSSigV4(accessKeyID: "AKIDEXAMPLE", secretAccessKey: documented, region: "us-east-1", service: "service")
    static let base = [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")]

    @Test func getVanilla() {
        #expect(Self.signer.authorization(method: "GET", path: "/", headers: Self.base, body: [])
            == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
        // The suite's canonical request for get-vanilla, byte for byte.
        #expect(AWSSigV4.canonicalRequest(method: "GET", path: "/", query: [], headers: Self.base, body: []).request
            == "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test func getVanillaQueryOrderKeyCase() {
        let signed = Self.signer.sign(method: "GET", path: "/", query: [("Param2", "value2"), ("Param1", "value1")], headers: Self.base, body: [])
        #expect(signed.signature == "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")
    }

    @Test func getUTF8Path() {
        let signed = Self.signer.sign(method: "GET", path: "/\u{1234}", query: [], headers: Self.base, body: [])
        #expect(signed.signature == "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85")
    }

    @Test func postVanilla() {
        let signed = Self.signer.sign(method: "POST", path: "/", query: [], headers: Self.base, body: [])
        #expect(signed.signature == "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b")
    }

    /// The shape of the STS call: a form body, its content type signed.
    @Test func postXWWWFormURLEncoded() {
        let headers = [("Content-Type", "application/x-www-form-urlencoded")] + Self.base
        let signed = Self.signer.sign(method: "POST", path: "/", query: [], headers: headers, body: Array("Param1=value1".utf8))
        #expect(signed.signedHeaders == "content-type;host;x-amz-date")
        #expect(signed.signature == "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a")
    }

    @Test func amzDateIsUTC() {
        #expect(AWSSigV4.amzDate(1_440_938_160) == "20150830T123600Z")
    }
}

/// Which secret access key an AWS key id is verified with, and how answers are read.
@Suite struct AWSVerificationTests {
    func finding(_ rule: String, _ secret: String, path: String = "a.env", line: Int, commit: String? = nil) -> Finding {
        Finding(ruleID: rule, description: "", severity: .critical, lifetime: .longLived, path: path, line: line, column: 1, endLine: line,
                secret: secret, fingerprint: "", commit: commit)
    }

    @Test func aKeyIdIsPairedWithTheNearestSecretsInTheSameFileAndCommit() {
        let id = Fake.awsKeyID(5)
        let near = ExampleTemplate.expand("{b64:40}", seed: 1), far = ExampleTemplate.expand("{b64:40}", seed: 2)
        let other = ExampleTemplate.expand("{b64:40}", seed: 3), second = ExampleTemplate.expand("{b64:40}", seed: 4)
        let findings = [
            finding("aws-access-key-id", id, line: 20, commit: "c1"),
            finding("aws-secret-access-key", near, line: 21, commit: "c1"),
            finding("aws-secret-access-key", second, line: 27, commit: "c1"),
            finding("aws-secret-access-key", far, line: 31, commit: "c1"),                  // 11 lines away
            finding("aws-secret-access-key", other, path: "b.env", line: 20, commit: "c1"), // another file
            finding("aws-secret-access-key", other, line: 20, commit: "c2"),                // another commit
        ]
        var report = ScanReport()
        report.findings = findings
        let group = report.secretGroups.first { $0.first.ruleID == "aws-access-key-id" }!
        #expect(AWSKeyPairs(findings).secrets(near: group).map(\.secret) == [near, second])
        #expect(AWSKeyPairs([findings[0]]).secrets(near: group).isEmpty)
    }

    @Test func stsAnswers() {
        let call = IssuerCall.byRule["aws-access-key-id"]!
        func read(_ status: Int, _ body: String) -> VerificationResult {
            SecretVerifier.read(HTTPResponse(status: status, body: Array(body.utf8)), from: call, asked: "STS")
        }
        func error(_ code: String) -> String { "<ErrorResponse><Error><Type>Sender</Type><Code>\(code)</Code></Error></ErrorResponse>" }
        #expect(read(200, "<GetCallerIdentityResponse/>").status == .live)
        #expect(read(403, error("InvalidClientTokenId")).status == .revoked)
        #expect(read(403, error("SignatureDoesNotMatch")).status == .unknown)
        #expect(read(403, error("AccessDenied")).status == .unknown)
        #expect(read(500, "").status == .unknown)
        #expect(read(401, error("InvalidClientTokenId")).status == .unknown)
    }

    /// A 401 is `revoked` only where the format is the public service's alone; GitHub and GitLab
    /// formats are also issued by GitHub Enterprise Server and self-managed GitLab.
    @Test func aRejectionIsRevokedOnlyWhenNoOtherInstanceIssuesTheFormat() {
        let expected: [String: VerificationStatus] = [
            "github-pat-classic": .unknown, "github-fine-grained-pat": .unknown, "github-oauth-token": .unknown,
            "github-user-to-server-token": .unknown, "github-installation-token": .unknown, "gitlab-pat": .unknown,
            "npm-access-token": .revoked, "stripe-secret-key": .revoked, "stripe-restricted-key": .revoked,
            "stripe-test-secret-key": .revoked, "openai-api-key": .revoked, "anthropic-api-key": .revoked,
        ]
        for (rule, status) in expected {
            let call = IssuerCall.byRule[rule]!
            let result = SecretVerifier.read(HTTPResponse(status: 401, body: []), from: call, asked: call.issuer)
            #expect(result.status == status, "\(rule): \(result.detail)")
            if status == .unknown { #expect(result.detail.contains("may have issued it"), "\(rule): \(result.detail)") }
        }
    }
}
