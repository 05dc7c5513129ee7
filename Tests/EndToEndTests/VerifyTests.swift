import Foundation
import StepGuardServerTestSupport
import StepGuardTestSupport
import StepGuardSecretsTestSupport
import Testing
@testable import StepGuardSecrets

/// One credential per provider that `--verify` asks, made from templates at run time.
struct ProviderSecret {
    var provider: String
    var rule: String
    var host: String
    var method: String
    var path: String
    /// The header that must carry the secret, and how (`Bearer ` prefix or the bare value).
    var header: String
    var bearer: Bool
    var template: String
    /// Whether other instances (GitHub Enterprise Server, self-managed GitLab) issue the same
    /// format: a rejection by the public service is then `unknown`, not `revoked`.
    var otherInstances = false

    func make(_ seed: UInt64) -> String { ExampleTemplate.expand(template, seed: seed) }

    static let all = [
        ProviderSecret(provider: "GitHub", rule: "github-pat-classic", host: "api.github.com", method: "GET", path: "/user",
                       header: "Authorization", bearer: true, template: "{gh:ghp}", otherInstances: true),
        ProviderSecret(provider: "GitLab", rule: "gitlab-pat", host: "gitlab.com", method: "GET", path: "/api/v4/personal_access_tokens/self",
                       header: "PRIVATE-TOKEN", bearer: false, template: "gl{cut}pat-{alnum:20}", otherInstances: true),
        ProviderSecret(provider: "Slack", rule: "slack-bot-token", host: "slack.com", method: "POST", path: "/api/auth.test",
                       header: "Authorization", bearer: true, template: "xo{cut}xb-{digits:12}-{digits:13}-{alnum:24}"),
        ProviderSecret(provider: "npm", rule: "npm-access-token", host: "registry.npmjs.org", method: "GET", path: "/-/whoami",
                       header: "Authorization", bearer: true, template: "np{cut}m_{alnum:36}"),
        ProviderSecret(provider: "Stripe", rule: "stripe-secret-key", host: "api.stripe.com", method: "GET", path: "/v1/balance",
                       header: "Authorization", bearer: true, template: "sk{cut}_live_{alnum:24}"),
        ProviderSecret(provider: "OpenAI", rule: "openai-api-key", host: "api.openai.com", method: "GET", path: "/v1/models",
                       header: "Authorization", bearer: true, template: "sk-proj-{alnum:58}T3Blbk{cut}FJ{alnum:58}"),
        ProviderSecret(provider: "Anthropic", rule: "anthropic-api-key", host: "api.anthropic.com", method: "GET", path: "/v1/models",
                       header: "x-api-key", bearer: false, template: "sk-an{cut}t-api03-{alnum:93}AA"),
    ]
}

/// Loopback HTTPS stand-ins for every issuer `--verify` asks: one server whose certificate (from a
/// CA the test makes) names each issuer host. It answers like the issuer: the credential in
/// `live` is accepted, any other is rejected (401, or Slack's `ok: false`); a request to any other
/// method or path gets 404. AWS STS (``awsAnswer(_:keys:region:)``), in each public partition,
/// knows the key ids it is given and checks each request's SigV4 signature against the key's secret.
struct IssuerStandIn {
    let server: LocalHTTPServer
    let authority: TestCertificateAuthority
    let directory: TemporaryDirectory

    /// STS of each public AWS partition and its region.
    static let stsRegions = ["sts.amazonaws.com": "us-east-1", "sts.cn-north-1.amazonaws.com.cn": "cn-north-1",
                             "sts.us-gov-west-1.amazonaws.com": "us-gov-west-1"]

    /// `awsKeys`: the key ids (and secrets) the global partition knows; `awsPartitionKeys`: those
    /// the other partitions know, by STS host.
    static func start(live: Set<String>, awsKeys: [String: String] = [:], awsPartitionKeys: [String: [String: String]] = [:]) throws -> IssuerStandIn {
        let directory = try TemporaryDirectory(prefix: "stepguard-verify")
        let authority = try TestCertificateAuthority(directory: directory, name: "issuer stand-in CA")
        let server = try LocalHTTPServer.start(tls: authority, tlsNames: ProviderSecret.all.map(\.host) + stsRegions.keys.sorted()) { request in
            let host = (request.header("Host") ?? "").split(separator: ":").first.map(String.init) ?? ""
            if let region = stsRegions[host] {
                return awsAnswer(request, keys: host == "sts.amazonaws.com" ? awsKeys : awsPartitionKeys[host] ?? [:], region: region)
            }
            guard let provider = ProviderSecret.all.first(where: { $0.host == host }),
                  request.method == provider.method, request.uri == provider.path || request.uri.hasPrefix(provider.path + "?") else {
                return ServerResponse(status: 404, body: "no such endpoint")
            }
            var credential = request.header(provider.header) ?? ""
            if provider.bearer { credential = credential.hasPrefix("Bearer ") ? String(credential.dropFirst(7)) : "" }
            let accepted = live.contains(credential)
            if provider.provider == "Slack" {
                return .json(accepted ? #"{"ok":true,"user":"bot"}"# : #"{"ok":false,"error":"invalid_auth"}"#)
            }
            return accepted ? .json(#"{"login":"someone"}"#) : .json(#"{"message":"Bad credentials"}"#, status: 401)
        }
        return IssuerStandIn(server: server, authority: authority, directory: directory)
    }

    /// STS's answer to `GetCallerIdentity` as AWS gives it: 403 InvalidClientTokenId for a key id
    /// it does not know; for a known one, the signature is computed again from the request as it
    /// arrived (method, path, the signed headers' values, the body) with the key's secret, and
    /// 403 SignatureDoesNotMatch unless it is the one received.
    static func awsAnswer(_ request: ReceivedRequest, keys: [String: String], region: String) -> ServerResponse {
        func error(_ code: String) -> ServerResponse {
            ServerResponse(status: 403, headers: [("Content-Type", "text/xml")],
                           body: "<ErrorResponse><Error><Type>Sender</Type><Code>\(code)</Code><Message>no</Message></Error></ErrorResponse>")
        }
        guard request.method == "POST", request.uri == "/", String(decoding: request.body, as: UTF8.self) == "Action=GetCallerIdentity&Version=2011-06-15",
              let authorization = request.header("Authorization"), authorization.hasPrefix("AWS4-HMAC-SHA256 ") else {
            return ServerResponse(status: 400, body: "not a GetCallerIdentity call")
        }
        var fields: [String: String] = [:]
        for part in authorization.dropFirst("AWS4-HMAC-SHA256 ".count).split(separator: ",") {
            let pair = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1).map(String.init)
            if pair.count == 2 { fields[pair[0]] = pair[1] }
        }
        let credential = (fields["Credential"] ?? "").split(separator: "/").map(String.init)
        guard credential.count == 5, credential[4] == "aws4_request", let signedHeaders = fields["SignedHeaders"], let signature = fields["Signature"] else {
            return error("IncompleteSignature")
        }
        guard let secret = keys[credential[0]] else { return error("InvalidClientTokenId") }
        let names = signedHeaders.split(separator: ";").map(String.init)
        guard names.contains("host"), names.contains("x-amz-date"), credential[2] == region, credential[3] == "sts",
              request.header("X-Amz-Date")?.hasPrefix(credential[1]) == true else { return error("IncompleteSignature") }
        let headers = names.map { ($0, request.header($0) ?? "") }
        let expected = AWSSigV4(accessKeyID: credential[0], secretAccessKey: secret, region: credential[2], service: credential[3])
            .sign(method: request.method, path: "/", query: [], headers: headers, body: request.body)
        guard expected.signature == signature, expected.signedHeaders == signedHeaders else { return error("SignatureDoesNotMatch") }
        return ServerResponse(status: 200, headers: [("Content-Type", "text/xml")],
                              body: "<GetCallerIdentityResponse><GetCallerIdentityResult><Account>123456789012</Account></GetCallerIdentityResult></GetCallerIdentityResponse>")
    }

    /// `--verify` with every issuer host mapped to `port` (default: this server) and the test CA trusted.
    func arguments(port: Int? = nil, caFile: String? = nil) -> [String] {
        Self.arguments(port: port ?? server.port, caFile: caFile ?? authority.certificateFile)
    }

    /// `--verify` with every issuer host mapped to 127.0.0.1:`port`: nothing leaves loopback.
    static func arguments(port: Int, caFile: String) -> [String] {
        ["--verify", "--verify-ca", caFile]
            + IssuerCall.hosts.sorted().flatMap { ["--verify-resolve", "\($0):443=127.0.0.1:\(port)"] }
    }

    func shutdown() {
        server.shutdown()
        directory.remove()
    }
}

/// `scan --verify` against loopback stand-ins of seven issuers: live, revoked, unreachable,
/// untrusted, silent; every request checked for where it went and what it carried.
@Suite struct VerifyTests {
    /// A file with a live and a revoked credential of every provider (lines 1–14), and an AWS key
    /// id (line 15), whose issuer stepguard does not ask.
    struct Leak {
        var live: [String] = []
        var revoked: [String] = []
        var aws = Fake.awsKeyID(77)
        var text: String {
            zip(live, revoked).flatMap { ["live=\($0.0)", "revoked=\($0.1)"] }.joined(separator: "\n") + "\naws=\(aws)\n"
        }

        init() {
            for (i, p) in ProviderSecret.all.enumerated() {
                live.append(p.make(UInt64(900 + i)))
                revoked.append(p.make(UInt64(950 + i)))
            }
        }
    }

    func findings(_ stdout: String) throws -> [[String: Any]] {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any])
        return try #require(object["findings"] as? [[String: Any]])
    }

    @Test func liveAndRevokedPerProviderInEveryFormat() throws {
        let leak = Leak()
        let standIn = try IssuerStandIn.start(live: Set(leak.live)); defer { standIn.shutdown() }
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        try dir.write("leak.env", leak.text)

        let json = try ProgramRun.run(StepGuardBinary.path, ["scan", "--format", "json"] + standIn.arguments() + ["leak.env"], in: dir.url)
        #expect(json.status == 1, "a verified secret is still a finding: \(json.stderr)")
        let found = try findings(json.stdout)
        #expect(found.count == 15, "\(json.stdout)")
        for f in found {
            let line = f["line"] as? Int ?? 0
            let verification = f["verification"] as? [String: Any]
            let status = verification?["status"] as? String
            // GitHub's and GitLab's formats are also issued by GitHub Enterprise Server and
            // self-managed GitLab: their public service rejecting one says nothing more.
            let selfHostable = line <= 14 && ProviderSecret.all[(line - 1) / 2].otherInstances
            let expected = line == 15 ? "unknown" : (line % 2 == 1 ? "live" : (selfHostable ? "unknown" : "revoked"))
            #expect(status == expected, "line \(line) \(f["rule_id"] ?? ""): \(verification ?? [:])")
            if selfHostable && line % 2 == 0 {
                let detail = verification?["detail"] as? String ?? ""
                #expect(detail.contains("may have issued it"), "\(detail)")
            }
        }
        #expect(json.stderr.contains("verified: 7 live, 5 revoked, 3 unknown"), "\(json.stderr)")

        // Each distinct secret was sent once, to its issuer's documented endpoint, in its header.
        let requests = standIn.server.requests
        #expect(requests.count == 14)
        for p in ProviderSecret.all {
            let mine = requests.filter { ($0.header("Host") ?? "").hasPrefix(p.host) }
            #expect(mine.count == 2, "\(p.provider): \(mine.map(\.uri))")
            for r in mine {
                #expect(r.method == p.method && (r.uri == p.path || r.uri.hasPrefix(p.path + "?")), "\(p.provider): \(r.method) \(r.uri)")
                let carried = r.header(p.header) ?? ""
                #expect(leak.live.contains { carried.hasSuffix($0) } || leak.revoked.contains { carried.hasSuffix($0) })
                #expect(!r.uri.contains(leak.live[0]) && r.body.isEmpty)
            }
        }
        #expect(!requests.contains { r in r.headers.contains { $0.value.contains(leak.aws) } }, "the AWS key went nowhere")

        let text = try ProgramRun.run(StepGuardBinary.path, ["scan"] + standIn.arguments() + ["leak.env"], in: dir.url)
        #expect(text.status == 1)
        #expect(text.stdout.components(separatedBy: "verified: live").count - 1 == 7, "\(text.stdout)")
        #expect(text.stdout.components(separatedBy: "verified: revoked").count - 1 == 5)
        #expect(text.stdout.contains("verified: unknown — not verified: an AWS access key id alone cannot be verified"), "\(text.stdout)")

        let sarif = try ProgramRun.run(StepGuardBinary.path, ["scan", "--format", "sarif"] + standIn.arguments() + ["leak.env"], in: dir.url)
        let runs = (try JSONSerialization.jsonObject(with: Data(sarif.stdout.utf8)) as? [String: Any])?["runs"] as? [[String: Any]]
        let results = runs?.first?["results"] as? [[String: Any]] ?? []
        let statuses = results.compactMap { ($0["properties"] as? [String: Any])?["verification"] as? String }
        #expect(statuses.filter { $0 == "live" }.count == 7 && statuses.filter { $0 == "revoked" }.count == 5, "\(sarif.stdout)")

        let github = try ProgramRun.run(StepGuardBinary.path, ["scan", "--format", "github"] + standIn.arguments() + ["leak.env"], in: dir.url)
        #expect(github.stdout.components(separatedBy: "(live)::").count - 1 == 7, "\(github.stdout)")
        #expect(github.stdout.components(separatedBy: "(revoked)::").count - 1 == 5)

        for output in [json, text, sarif, github] {
            for secret in leak.live + leak.revoked {
                #expect(!output.stdout.contains(secret) && !output.stderr.contains(secret))
            }
        }
    }

    @Test func unreachableIssuersLeaveTheSecretUnknownAndTheScanFailing() throws {
        let leak = Leak()
        let closed = try LoopbackSocket.listen()
        close(closed.fd)  // nothing listens on this port any more: connections are refused
        let ca = try TemporaryDirectory(prefix: "stepguard-verify"); defer { ca.remove() }
        let authority = try TestCertificateAuthority(directory: ca)
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        try dir.write("leak.env", leak.text)
        let r = try ProgramRun.run(StepGuardBinary.path, ["scan", "--format", "json"] + IssuerStandIn.arguments(port: closed.port, caFile: authority.certificateFile) + ["leak.env"], in: dir.url)
        #expect(r.status == 1)
        let statuses = try findings(r.stdout).compactMap { ($0["verification"] as? [String: Any])?["status"] as? String }
        #expect(statuses.count == 15 && statuses.allSatisfy { $0 == "unknown" }, "\(r.stdout)")
        #expect(r.stdout.contains("did not answer"))
    }

    /// A server that answers for the issuer's name without a certificate the trust store accepts
    /// (here: one from a CA stepguard was not told to trust) gets no request: TLS fails first.
    @Test func anUntrustedServerReceivesNoSecret() throws {
        let leak = Leak()
        let standIn = try IssuerStandIn.start(live: Set(leak.live)); defer { standIn.shutdown() }
        let other = try TemporaryDirectory(prefix: "stepguard-verify"); defer { other.remove() }
        let otherCA = try TestCertificateAuthority(directory: other, name: "some other CA")
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        try dir.write("leak.env", leak.text)
        let r = try ProgramRun.run(StepGuardBinary.path, ["scan", "--format", "json"] + standIn.arguments(caFile: otherCA.certificateFile) + ["leak.env"], in: dir.url)
        #expect(r.status == 1)
        let statuses = try findings(r.stdout).compactMap { ($0["verification"] as? [String: Any])?["status"] as? String }
        #expect(statuses.count == 15 && statuses.allSatisfy { $0 == "unknown" }, "\(r.stdout)")
        #expect(standIn.server.requests.isEmpty, "a request reached a server stepguard should not trust")
    }

    /// An issuer that accepts the connection and never answers costs at most the time budget.
    @Test func aSilentIssuerIsBoundedByTheTimeBudget() throws {
        let leak = Leak()
        let silent = try LoopbackSocket.listen(); defer { close(silent.fd) }  // never accepts, never answers
        let ca = try TemporaryDirectory(prefix: "stepguard-verify"); defer { ca.remove() }
        let authority = try TestCertificateAuthority(directory: ca)
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        try dir.write("leak.env", leak.text)
        let start = Date()
        let r = try ProgramRun.run(StepGuardBinary.path, ["scan", "--format", "json", "--verify-timeout", "2"]
                        + IssuerStandIn.arguments(port: silent.port, caFile: authority.certificateFile) + ["leak.env"], in: dir.url)
        let elapsed = Date().timeIntervalSince(start)
        #expect(r.status == 1)
        #expect(elapsed < 6, "took \(elapsed) s with a 2 s budget")
        let details = try findings(r.stdout).compactMap { ($0["verification"] as? [String: Any]) }
        #expect(details.count == 15 && details.allSatisfy { $0["status"] as? String == "unknown" })
        #expect(details.contains { ($0["detail"] as? String ?? "").contains("time budget (2 s) was spent") }, "\(r.stdout)")
    }

    /// An issuer (or whoever answers for it) that redirects is not followed: the secret is sent
    /// once, to the documented URL, and the answer is unknown.
    @Test func aRedirectIsNotFollowed() throws {
        let secret = Fake.githubPAT(71)
        let directory = try TemporaryDirectory(prefix: "stepguard-verify"); defer { directory.remove() }
        let authority = try TestCertificateAuthority(directory: directory)
        let server = try LocalHTTPServer.start(tls: authority, tlsNames: ["api.github.com"]) { request in
            request.uri == "/user"
                ? ServerResponse(status: 307, headers: [("Location", "https://api.github.com/stolen")], body: "")
                : .json(#"{"login":"someone"}"#)
        }
        defer { server.shutdown() }
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        try dir.write("leak.env", "T=\(secret)\n")
        let r = try ProgramRun.run(StepGuardBinary.path, ["scan", "--format", "json"] + IssuerStandIn.arguments(port: server.port, caFile: authority.certificateFile) + ["leak.env"], in: dir.url)
        #expect(r.status == 1)
        #expect(server.requests.map(\.uri) == ["/user"])
        let verification = try findings(r.stdout).first?["verification"] as? [String: Any]
        #expect(verification?["status"] as? String == "unknown" && (verification?["detail"] as? String ?? "").contains("answered 307"), "\(r.stdout)")
    }

    /// Proxy variables in the environment are not used: the request goes to the issuer (here its
    /// stand-in) directly, and a proxy that would see the secret gets nothing.
    @Test func proxyVariablesAreIgnored() throws {
        let secret = Fake.githubPAT(72)
        let standIn = try IssuerStandIn.start(live: [secret]); defer { standIn.shutdown() }
        let proxy = try LocalHTTPServer.start { _ in ServerResponse(status: 502, body: "proxy") }
        defer { proxy.shutdown() }
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        try dir.write("leak.env", "T=\(secret)\n")
        let url = "http://127.0.0.1:\(proxy.port)"
        let r = try ProgramRun.run(StepGuardBinary.path, ["scan", "--format", "json"] + standIn.arguments() + ["leak.env"], in: dir.url,
                        environment: ["HTTPS_PROXY": url, "https_proxy": url, "ALL_PROXY": url, "all_proxy": url])
        #expect(r.status == 1)
        #expect(proxy.requests.isEmpty && proxy.acceptedConnections == 0, "the proxy was used")
        let status = (try findings(r.stdout).first?["verification"] as? [String: Any])?["status"] as? String
        #expect(status == "live", "\(r.stdout)")
    }

    @Test func verificationIsOptInAndItsOptionsAreChecked() throws {
        let hooks = try String(contentsOf: StepGuardBinary.packageRoot.appendingPathComponent(".pre-commit-hooks.yaml"), encoding: .utf8)
        #expect(hooks.contains("stepguard scan --staged") && !hooks.contains("--verify"))

        let dir = try TemporaryDirectory(); defer { dir.remove() }
        try dir.write("leak.env", "t=\(Fake.githubPAT(5))\n")
        let plain = try ProgramRun.run(StepGuardBinary.path, ["scan", "--format", "json", "leak.env"], in: dir.url)
        #expect(plain.status == 1 && !plain.stdout.contains("verification") && !plain.stderr.contains("verified"))

        let withoutFlag = try ProgramRun.run(StepGuardBinary.path, ["scan", "--verify-resolve", "api.github.com:443=127.0.0.1:1", "leak.env"], in: dir.url)
        #expect(withoutFlag.status == 64, "\(withoutFlag.stderr)")
        for mapping in ["evil.example:443=127.0.0.1:1", "api.github.com:80=127.0.0.1:1", "api.github.com:443=localhost:1",
                        "api.github.com:443=127.0.0.1", "api.github.com:443=127.0.0.1:0"] {
            let bad = try ProgramRun.run(StepGuardBinary.path, ["scan", "--verify", "--verify-resolve", mapping, "leak.env"], in: dir.url)
            #expect(bad.status == 64, "\(mapping) accepted: \(bad.stderr)")
        }
    }
}
