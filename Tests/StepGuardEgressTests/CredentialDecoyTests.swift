import Foundation
import StepGuardServerTestSupport
import StepGuardTestSupport
import Testing
@testable import StepGuardEgress

/// Issue #16, hole 3: the credential check cannot be satisfied by a decoy. Every credential in a
/// request counts (headers, query, cookies, body) and the least trusted one decides; a body the
/// service may read a credential from must be readable (not encoded, well-formed); an unverified
/// JWT never ranks above `any`.
@Suite struct CredentialDecoyTests {
    static let issuer = TestOIDCIssuer()
    static let job = issuer.identity(subject: "repo:acme/app:ref:refs/heads/main")
    static let inspector = BuiltInCredentialInspector(verifier: issuer.verifier(for: job), identity: job, detector: Egress.detector)
    static let vault: [CredentialLocation] = [CredentialLocation(place: .header, name: "X-Vault-Token"), CredentialLocation(place: .json, name: "jwt")]

    static var good: String { issuer.token(subject: job.subject) }
    static var longLived: String { issuer.token(subject: job.subject, lifetime: 30 * 86_400) }

    static func classOf(_ headers: [(String, String)], target: String = "/v1/auth/jwt/login", body: String? = nil,
                        locations: [CredentialLocation] = vault, inspector: BuiltInCredentialInspector = inspector) -> CredentialFinding {
        inspector.inspect(InspectedRequest(method: "POST", target: target, headers: headers.map { (name: $0.0, value: $0.1) },
                                           body: body.map { Array($0.utf8) }, locations: locations, service: "hashicorp-vault"), now: Date())
    }

    @Test func theJobsTokenAloneIsWorkload() {
        let finding = Self.classOf([("Authorization", "Bearer \(Self.good)"), ("Content-Type", "application/json")],
                                   body: #"{"role":"ci","jwt":"\#(Self.good)"}"#)
        #expect(finding.credentialClass == .workload, "\(finding.detail)")
    }

    @Test func aBodyThatCannotBeReadIsInvalidWhateverTheHeaderCarries() {
        let header = [("Authorization", "Bearer \(Self.good)"), ("Content-Type", "application/json")]
        let decoy = #"{"role":"ci","jwt":"\#(Self.longLived)"}"#
        let bodies = [
            "one trailing byte": decoy + "}",
            "two documents": decoy + decoy,
            "a key twice": #"{"jwt":"\#(Self.good)","jwt":"\#(Self.longLived)"}"#,
            "a key twice in another case": #"{"jwt":"\#(Self.good)","JWT":"\#(Self.longLived)"}"#,
            "a lone surrogate": #"{"jwt":"\#(Self.good)","x":"\ud800"}"#,
            "truncated": String(decoy.dropLast()),
            "not JSON": "jwt=\(Self.longLived)",
        ]
        for (what, body) in bodies {
            let finding = Self.classOf(header, body: body)
            #expect(finding.credentialClass == .invalid && finding.location == "body", "\(what): \(finding.detail)")
            #expect(!finding.detail.contains(Self.longLived), "\(what)")
        }
    }

    @Test func anEncodedBodyIsInvalid() {
        for encoding in ["gzip", "deflate", "br", "identity, gzip", "x-custom"] {
            let finding = Self.classOf([("Authorization", "Bearer \(Self.good)"), ("Content-Encoding", encoding)], body: #"{"jwt":"\#(Self.good)"}"#)
            #expect(finding.credentialClass == .invalid, "\(encoding)")
            #expect(finding.detail.contains("Content-Encoding"), "\(encoding)")
        }
        let identity = Self.classOf([("Authorization", "Bearer \(Self.good)"), ("Content-Encoding", "identity")], body: #"{"jwt":"\#(Self.good)"}"#)
        #expect(identity.credentialClass == .workload)
    }

    @Test func everyCredentialCountsAndTheLeastTrustedDecides() {
        let good = [("Authorization", "Bearer \(Self.good)")]
        let places: [String: CredentialFinding] = [
            "a second Authorization header": Self.classOf(good + [("Authorization", "Bearer \(Self.longLived)")]),
            "a query parameter": Self.classOf(good, target: "/v1/auth/jwt/login?jwt=\(Self.longLived)"),
            "a cookie": Self.classOf(good + [("Cookie", "session=abc; token=\(Self.longLived)")]),
            "another header field": Self.classOf(good + [("X-Upstream-Token", Self.longLived)]),
            "a nested JSON string": Self.classOf(good, body: #"{"role":"ci","jwt":"\#(Self.good)","meta":{"t":["\#(Self.longLived)"]}}"#),
            "a form field": Self.classOf(good + [("Content-Type", "application/x-www-form-urlencoded")], body: "role=ci&other=\(Self.longLived)",
                                         locations: [CredentialLocation(place: .form, name: "WebIdentityToken")]),
            "a form body sent to a JSON reader": Self.classOf(good + [("Content-Type", "application/x-www-form-urlencoded")], body: "jwt=\(Self.longLived)"),
            "a multipart field": Self.classOf(good + [("Content-Type", "multipart/form-data; boundary=XyZ")],
                                              body: "--XyZ\r\nContent-Disposition: form-data; name=\"jwt\"\r\n\r\n\(Self.longLived)\r\n--XyZ--\r\n"),
        ]
        for (place, finding) in places {
            // A body sent as a form to a service that reads JSON whatever the Content-Type cannot be read: invalid.
            let expected: CredentialClass = place == "a form body sent to a JSON reader" ? .invalid : .longLived
            #expect(finding.credentialClass == expected, "\(place): \(finding.detail)")
        }
        // Text that is no credential does not count.
        let plain = Self.classOf(good + [("Cookie", "theme=dark"), ("User-Agent", "curl/8.5.0"), ("X-Request-Id", UUID().uuidString)],
                                 target: "/v1/auth/jwt/login?role=ci", body: #"{"role":"ci","n":1}"#)
        #expect(plain.credentialClass == .workload)
        let badMultipart = Self.classOf(good + [("Content-Type", "multipart/form-data; boundary=XyZ")], body: "--Other\r\n\r\nx")
        #expect(badMultipart.credentialClass == .invalid)
    }

    @Test func anUnverifiableJWTNeverRanksAboveAny() {
        let token = Self.issuer.token(subject: Self.job.subject)
        let noIdentity = BuiltInCredentialInspector(verifier: nil, identity: nil, detector: Egress.detector)
        let unverified = Self.classOf([("Authorization", "Bearer \(token)")], inspector: noIdentity)
        #expect(unverified.credentialClass == .longLived, "\(unverified.detail)")
        #expect(unverified.credentialClass.satisfies(.any) && !unverified.credentialClass.satisfies(.shortLived))
        // From another issuer than the job's: not verifiable with the job's keys either.
        let otherIssuer = Self.classOf([("Authorization", "Bearer \(TestOIDCIssuer(issuer: "https://other.test").tokenOrEmpty(subject: Self.job.subject))")])
        #expect(otherIssuer.credentialClass == .longLived, "\(otherIssuer.detail)")
        // Verified but for another identity: short-lived.
        let other = Self.classOf([("Authorization", "Bearer \(Self.issuer.token(subject: "repo:acme/other:ref:refs/heads/main"))")])
        #expect(other.credentialClass == .shortLived)
    }
}

extension TestOIDCIssuer {
    /// A token for `subject` (audience `vault`), or "" when it cannot be signed.
    func tokenOrEmpty(subject: String) -> String { (try? token(subject: subject, audience: "vault")) ?? "" }
}

/// The strict JSON reader of inspected bodies.
@Suite struct JSONBodyStringsTests {
    static func read(_ text: String) -> [String]? {
        (try? JSONBodyStrings.strings(in: Array(text.utf8)))?.map { "\($0.path)=\($0.value)" }
    }

    @Test func everyStringIsFoundWithItsPath() {
        #expect(Self.read(#" {"a":"x","b":{"c":["y",{"d":"z"}]},"n":-1.5e3,"t":true,"f":false,"z":null} "#) == ["a=x", "b.c[0]=y", "b.c[1].d=z"])
        #expect(Self.read(#"{"s":"\u00e9\ud83d\ude00\n\/"}"#) == ["s=é😀\n/"])
        #expect(Self.read("[]") == [] && Self.read("{}") == [] && Self.read(#""x""#) == ["=x"])
    }

    @Test func whatAServerCouldReadDifferentlyIsRefused() {
        let refused = [#"{"a":"x"}x"#, #"{"a":"x","a":"y"}"#, #"{"a":"x","A":"y"}"#, #"{"a":"\ud800"}"#, #"{"a":"\udc00x"}"#,
                       #"{"a":01}"#, #"{"a":1.}"#, #"{"a":"x",}"#, #"{'a':"x"}"#, "{\"a\":\"\u{1}\"}", #"{"a":"x"#, "",
                       String(repeating: "[", count: 65) + String(repeating: "]", count: 65), #"{"a":tru}"#, #"{"a":"\x"}"#]
        for text in refused {
            #expect(Self.read(text) == nil, "\(text.prefix(80))")
        }
        #expect(Self.read(String(repeating: "[", count: 64) + String(repeating: "]", count: 64)) == [])
        #expect((try? JSONBodyStrings.strings(in: [0x22, 0xC0, 0xAE, 0x22])) == nil)  // overlong UTF-8
    }
}
