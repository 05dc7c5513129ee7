import Foundation
import StepGuardServerTestSupport
import StepGuardTestSupport
import StepGuardSecretsTestSupport
import Testing
@testable import StepGuardSecrets

/// `scan --history --verify`: an AWS key id and its secret access key added to one file in
/// different commits are a pair when, in the version of the file where the later one was added,
/// the other is still there within 10 lines — and not when it was removed by then or is further.
/// Against the loopback STS stand-in of ``AWSVerifyTests``, which checks every signature.
@Suite struct HistoryAWSPairTests {
    @Test func aKeyIdAndItsSecretAddedInDifferentCommitsArePaired() throws {
        let liveID = Fake.awsKeyID(401), liveSecret = ExampleTemplate.expand("{alnum:40}", seed: 401)
        let earlyID = Fake.awsKeyID(402), earlySecret = ExampleTemplate.expand("{alnum:40}", seed: 402)
        let goneID = Fake.awsKeyID(403), goneSecret = ExampleTemplate.expand("{alnum:40}", seed: 403)
        let farID = Fake.awsKeyID(404), farSecret = ExampleTemplate.expand("{alnum:40}", seed: 404)
        let standIn = try IssuerStandIn.start(live: [], awsKeys: [liveID: liveSecret, earlyID: earlySecret, goneID: goneSecret, farID: farSecret])
        defer { standIn.shutdown() }
        let repo = try TemporaryDirectory(); defer { repo.remove() }
        try repo.initRepo()
        let filler = (1...20).map { "setting_\($0) = plain value \($0)" }
        func write(_ path: String, _ lines: [String]) throws { try repo.write(path, lines.joined(separator: "\n") + "\n") }
        // The key id first, its secret a commit later on the line below (lines inserted above in between).
        try write("live.ini", ["aws_access_key_id = \(liveID)"] + filler)
        // The secret first, the key id a commit later.
        try write("early.ini", filler + ["aws_secret_access_key = \(earlySecret)"])
        // A key id removed in the commit that adds the secret: never together.
        try write("gone.ini", ["aws_access_key_id = \(goneID)"] + filler)
        // A key id whose secret comes 16 lines below it.
        try write("far.ini", ["aws_access_key_id = \(farID)"] + filler)
        try repo.commitAll("key ids")
        try write("live.ini", ["[default]", "region = eu-west-1", "aws_access_key_id = \(liveID)", "aws_secret_access_key = \(liveSecret)"] + filler)
        try write("early.ini", filler + ["aws_access_key_id = \(earlyID)", "aws_secret_access_key = \(earlySecret)"])
        try write("gone.ini", ["aws_secret_access_key = \(goneSecret)"] + filler)
        try write("far.ini", ["aws_access_key_id = \(farID)"] + filler.prefix(15) + ["aws_secret_access_key = \(farSecret)"] + filler.dropFirst(15))
        try repo.commitAll("secrets")

        let r = try ProgramRun.run(StepGuardBinary.path, ["scan", "--history", "--verify", "--format", "json"] + standIn.arguments(), in: repo.url)
        #expect(r.status == 1, "\(r.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        var found: [String: (status: String, detail: String)] = [:]
        for f in try #require(object["findings"] as? [[String: Any]]) {
            let v = f["verification"] as? [String: Any]
            found["\(f["path"] as? String ?? ""):\(f["rule_id"] as? String ?? "")"] = (v?["status"] as? String ?? "", v?["detail"] as? String ?? "")
        }
        #expect(found.count == 8, "\(r.stdout)")
        let key = "aws-access-key-id", secret = "aws-secret-access-key"
        #expect(found["live.ini:\(key)"]?.status == "live" && found["live.ini:\(secret)"]?.status == "live", "\(found)")
        #expect(found["early.ini:\(key)"]?.status == "live" && found["early.ini:\(secret)"]?.status == "live", "\(found)")
        for path in ["gone.ini", "far.ini"] {
            #expect(found["\(path):\(key)"]?.status == "unknown" && (found["\(path):\(key)"]?.detail ?? "").contains("alone cannot be verified"), "\(path): \(found)")
        }
        // Two signed calls (one per pair found), no secret access key on the wire.
        let sts = standIn.server.requests
        #expect(sts.count == 2, "\(sts.map(\.uri))")
        for request in sts {
            let everything = request.headers.map { "\($0.name): \($0.value)" }.joined(separator: "\n") + String(decoding: request.body, as: UTF8.self)
            for value in [liveSecret, earlySecret, goneSecret, farSecret, goneID, farID] { #expect(!everything.contains(value)) }
        }
        for value in [liveSecret, earlySecret, goneSecret, farSecret, liveID, earlyID, goneID, farID] {
            #expect(!r.stdout.contains(value) && !r.stderr.contains(value))
        }
    }

    /// The sibling in one file: a secret access key on the line above its key id gets the pair's
    /// answer too (it comes first in the report, before the key id is asked about).
    @Test func aSecretAboveItsKeyIdGetsThePairsAnswer() throws {
        let id = Fake.awsKeyID(411), secret = ExampleTemplate.expand("{alnum:40}", seed: 411)
        let standIn = try IssuerStandIn.start(live: [], awsKeys: [id: secret]); defer { standIn.shutdown() }
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        try dir.write("credentials.ini", "aws_secret_access_key = \(secret)\naws_access_key_id = \(id)\n")
        let r = try ProgramRun.run(StepGuardBinary.path, ["scan", "--verify", "--format", "json"] + standIn.arguments() + ["credentials.ini"], in: dir.url)
        #expect(r.status == 1, "\(r.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let statuses = try #require(object["findings"] as? [[String: Any]]).map { (($0["verification"] as? [String: Any])?["status"] as? String) ?? "" }
        #expect(statuses == ["live", "live"], "\(r.stdout)")
        #expect(!r.stdout.contains(secret) && !r.stdout.contains(id))
    }
}
