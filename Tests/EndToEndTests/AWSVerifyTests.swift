import Foundation
import StepGuardServerTestSupport
import StepGuardTestSupport
import StepGuardSecretsTestSupport
import Testing
@testable import StepGuardSecrets

/// `scan --verify` on AWS keys: a key id is verified with `sts:GetCallerIdentity`, signed (SigV4)
/// with the secret access key found beside it, against a loopback STS stand-in that checks every
/// signature it receives (``IssuerStandIn/awsAnswer(_:keys:)``). The secret never travels.
@Suite struct AWSVerifyTests {
    struct Keys {
        let liveID = Fake.awsKeyID(301), liveSecret = ExampleTemplate.expand("{alnum:40}", seed: 301)
        let goneID = Fake.awsKeyID(302), goneSecret = ExampleTemplate.expand("{alnum:40}", seed: 302)
        let knownID = Fake.awsKeyID(303), knownSecret = ExampleTemplate.expand("{alnum:40}", seed: 303)
        let wrongSecret = ExampleTemplate.expand("{alnum:40}", seed: 304)
        let loneID = Fake.awsKeyID(305)
        let govID = Fake.awsKeyID(306), govSecret = ExampleTemplate.expand("{alnum:40}", seed: 306)
        /// What AWS knows: the live key, and the key whose secret in the file is the wrong one;
        /// GovCloud knows one more.
        var aws: [String: String] { [liveID: liveSecret, knownID: knownSecret] }
        var partitions: [String: [String: String]] { ["sts.us-gov-west-1.amazonaws.com": [govID: govSecret]] }
        var secrets: [String] { [liveSecret, goneSecret, knownSecret, wrongSecret, govSecret] }

        /// Lines 1–2 the live pair, 23–24 a pair no partition knows, 45–46 a known key id beside
        /// another secret, 67 a key id with no secret within 10 lines, 88–89 a GovCloud pair.
        var text: String {
            let filler = (1...20).map { "setting_\($0) = plain value \($0)" }.joined(separator: "\n")
            return ["aws_access_key_id = \(liveID)", "aws_secret_access_key = \(liveSecret)", filler,
                    "aws_access_key_id = \(goneID)", "aws_secret_access_key = \(goneSecret)", filler,
                    "aws_access_key_id = \(knownID)", "aws_secret_access_key = \(wrongSecret)", filler,
                    "aws_access_key_id = \(loneID)", filler,
                    "aws_access_key_id = \(govID)", "aws_secret_access_key = \(govSecret)"].joined(separator: "\n") + "\n"
        }
    }

    func verifications(_ stdout: String) throws -> [Int: (rule: String, status: String, detail: String)] {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any])
        var out: [Int: (rule: String, status: String, detail: String)] = [:]
        for f in try #require(object["findings"] as? [[String: Any]]) {
            let v = f["verification"] as? [String: Any]
            out[f["line"] as? Int ?? 0] = (f["rule_id"] as? String ?? "", v?["status"] as? String ?? "", v?["detail"] as? String ?? "")
        }
        return out
    }

    @Test func keyIdsAreVerifiedWithTheSecretBesideThem() throws {
        let keys = Keys()
        let standIn = try IssuerStandIn.start(live: [], awsKeys: keys.aws, awsPartitionKeys: keys.partitions); defer { standIn.shutdown() }
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        try dir.write("credentials.ini", keys.text)
        let r = try ProgramRun.run(StepGuardBinary.path, ["scan", "--format", "json"] + standIn.arguments() + ["credentials.ini"], in: dir.url)
        #expect(r.status == 1, "\(r.stderr)")
        let found = try verifications(r.stdout)
        #expect(found.count == 9, "\(r.stdout)")
        #expect(found[1]?.status == "live" && found[2]?.status == "live", "\(found)")
        #expect(found[23]?.status == "revoked" && (found[23]?.detail ?? "").contains("every public partition"), "\(found)")
        #expect(found[24]?.status == "revoked", "\(found)")
        #expect(found[45]?.status == "unknown" && (found[45]?.detail ?? "").contains("SignatureDoesNotMatch"), "\(found)")
        #expect(found[46]?.status == "unknown", "\(found)")
        #expect(found[67]?.status == "unknown" && (found[67]?.detail ?? "").contains("alone cannot be verified"), "\(found)")
        // A GovCloud key is unknown to the global endpoint, and live.
        #expect(found[88]?.status == "live" && found[89]?.status == "live", "\(found)")

        // Signed requests to STS's documented call: the live and the mismatched key once, the
        // key no partition knows and the GovCloud key in each partition until one knows it
        // (global, China, GovCloud); the lone key id went nowhere; no secret access key was sent.
        let hosts = standIn.server.requests.map { ($0.header("Host") ?? "").split(separator: ":").first.map(String.init) ?? "" }
        #expect(hosts.filter { $0 == "sts.amazonaws.com" }.count == 4, "\(hosts)")
        #expect(hosts.filter { $0 == "sts.cn-north-1.amazonaws.com.cn" }.count == 2 && hosts.filter { $0 == "sts.us-gov-west-1.amazonaws.com" }.count == 2, "\(hosts)")
        let sts = standIn.server.requests
        #expect(sts.count == 8)
        for request in sts {
            #expect(request.method == "POST" && request.uri == "/")
            let everything = request.headers.map { "\($0.name): \($0.value)" }.joined(separator: "\n") + String(decoding: request.body, as: UTF8.self)
            for secret in keys.secrets { #expect(!everything.contains(secret), "a secret access key was sent") }
            #expect(!everything.contains(keys.loneID))
        }
        for secret in keys.secrets + [keys.liveID, keys.goneID, keys.knownID, keys.loneID, keys.govID] {
            #expect(!r.stdout.contains(secret) && !r.stderr.contains(secret))
        }
    }

    /// A stand-in that accepts any key id but checks the signature: a request signed with
    /// another secret than the one beside the key id is refused, so `live` above is only reached
    /// with a correct signature. Here every secret in the file is wrong for the key AWS knows.
    @Test func aWrongSignatureIsNeverLive() throws {
        let keys = Keys()
        let standIn = try IssuerStandIn.start(live: [], awsKeys: [keys.liveID: keys.knownSecret]); defer { standIn.shutdown() }
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        try dir.write("credentials.ini", "aws_access_key_id = \(keys.liveID)\naws_secret_access_key = \(keys.liveSecret)\n")
        let r = try ProgramRun.run(StepGuardBinary.path, ["scan", "--format", "json"] + standIn.arguments() + ["credentials.ini"], in: dir.url)
        let found = try verifications(r.stdout)
        #expect(found[1]?.status == "unknown" && (found[1]?.detail ?? "").contains("SignatureDoesNotMatch"), "\(found)")
        #expect(standIn.server.requests.count == 1)
    }
}
