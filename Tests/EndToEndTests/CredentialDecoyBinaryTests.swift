import Foundation
import StepGuardServerTestSupport
import StepGuardTestSupport
import Testing

/// Hole 3 through the built `stepguard run`: curl in the step logs in to a Vault stand-in whose
/// login needs `credential: workload`, with the job's own token in the header and a long-lived
/// decoy where stepguard used not to look (or could not read).
@Suite(.serialized) struct CredentialDecoyBinaryTests {
    @Test func aDecoyBesideTheJobsTokenIsDenied() throws {
        let vault = try VaultStandIn()
        let directory = vault.stage.directory
        let job = try WorkloadJob(in: directory)
        let good = try job.token(audience: "vault")
        let decoy = try job.token(audience: "vault", ttl: 30 * 86_400)
        let body = #"{"role":"ci","jwt":"\#(decoy)"}"#
        try directory.write("good.json", #"{"role":"ci","jwt":"\#(good)"}"#)
        try directory.write("trailing.json", body + "}")
        try directory.write("duplicate.json", #"{"role":"ci","jwt":"\#(decoy)","jwt":"\#(good)"}"#)
        try directory.write("plain.json", body)
        let policy = vault.policy(allow: [#"{ methods: [POST], paths: ["/v1/auth/jwt/login"], credential: workload }"#], identity: job.identity)
        let url = "https://vault.example.test:8200/v1/auth/jwt/login"
        let login = "\(BinaryServiceTests.code) -H 'Authorization: Bearer \(good)' -H 'Content-Type: application/json'"
        let script = """
        cd \(directory.path("."))
        gzip -c plain.json > plain.json.gz
        python3 -c 'import sys, zlib; sys.stdout.buffer.write(zlib.compress(sys.stdin.buffer.read()))' < plain.json > plain.json.zz
        \(login) --data-binary @good.json \(url)
        \(login) --data-binary @trailing.json \(url)
        \(login) --data-binary @plain.json.gz -H 'Content-Encoding: gzip' \(url)
        \(login) --data-binary @plain.json.zz -H 'Content-Encoding: deflate' \(url)
        \(login) --data-binary @duplicate.json \(url)
        \(login) --data-binary @good.json '\(url)?jwt=\(decoy)'
        \(login) --data-binary @good.json -H 'Cookie: token=\(decoy)' \(url)
        \(login) --data-binary @good.json -H 'Transfer-Encoding: chunked' -H 'Authorization: Bearer \(decoy)' \(url)
        """
        let (result, events) = try vault.stage.run(policy, script)
        #expect(result.stdout == "200 \n" + String(repeating: "403 deny\n", count: 7), "\(result.stderr)")
        #expect(result.status == 77)
        #expect(vault.requests.count == 1)
        let denials = events.filter { $0["type"] as? String == "service" && $0["decision"] as? String == "deny" }
        #expect(denials.map { $0["credential"] as? String } == ["invalid", "invalid", "invalid", "invalid", "long-lived", "long-lived", "long-lived"], "\(denials)")
        let log = try directory.read("audit.jsonl")
        #expect(!log.contains(decoy) && !log.contains(good) && !result.stderr.contains(decoy))
    }

    /// Trailer fields after a chunked body are read by no decision: they are not forwarded to a service.
    @Test func trailerFieldsAreNotForwardedToAService() throws {
        let vault = try VaultStandIn()
        let policy = vault.policy(allow: [#"{ methods: [POST], paths: ["/v1/secret/data/ci/*"], credential: any }"#])
        let script = """
        python3 - <<'PY'
        import os, socket, ssl, urllib.parse
        proxy = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
        s = socket.create_connection((proxy.hostname, proxy.port), timeout=10)
        s.sendall(b"CONNECT vault.example.test:8200 HTTP/1.1\\r\\nHost: vault.example.test:8200\\r\\n\\r\\n")
        s.recv(4096)
        t = ssl.create_default_context().wrap_socket(s, server_hostname="vault.example.test")
        body = b'{"data":{"k":"v"}}'
        t.sendall(b"POST /v1/secret/data/ci/app HTTP/1.1\\r\\nHost: vault.example.test:8200\\r\\nX-Vault-Token: hvs.decoy\\r\\n"
                  b"Transfer-Encoding: chunked\\r\\nTrailer: X-Vault-Token\\r\\nConnection: close\\r\\n\\r\\n"
                  + b"%x\\r\\n" % len(body) + body + b"\\r\\n0\\r\\nX-Vault-Token: hvs.other\\r\\n\\r\\n")
        print(t.recv(4096).split(b"\\r\\n")[0].decode())
        PY
        """
        let (result, _) = try vault.stage.run(policy, script)
        #expect(result.stdout == "HTTP/1.1 200 OK\n", "\(result.stderr)")
        let received = try #require(vault.requests.first)
        #expect(received.body == Array(#"{"data":{"k":"v"}}"#.utf8))
        #expect(received.trailers.isEmpty, "\(received.trailers)")
    }

    /// Without an `identity:` section nothing can verify a JWT: a forged one (any key, any claims)
    /// satisfies `credential: any`, never `short-lived`.
    @Test func anUnverifiableJWTDoesNotPassAsShortLived() throws {
        let stage = try TestStage { try ServiceStandIn.start("fulcio.sigstore.dev", directory: $0, handler: BinaryServiceTests.echoJSON) }
        let fulcio = stage.server
        let forged = try TestOIDCIssuer(issuer: "https://token.actions.githubusercontent.com").token(subject: "repo:acme/app:ref:refs/tags/v1", audience: "sigstore")
        let policy = """
        version: 1
        on_violation: fail
        egress: { default: deny, allow: ["127.0.0.1"] }
        services:
          - service: sigstore-fulcio
            allow:
              - { methods: [POST], paths: ["/api/v2/signingCert"], credential: short-lived }
              - { methods: [POST], paths: ["/api/v2/other"], credential: any }
        \(fulcio.network)
        """
        let post = "\(BinaryServiceTests.code) -X POST -H 'Content-Type: application/json' --data '{}' -H 'Authorization: Bearer \(forged)'"
        let script = """
        \(post) https://fulcio.sigstore.dev/api/v2/signingCert
        \(post) https://fulcio.sigstore.dev/api/v2/other
        """
        let (result, events) = try stage.run(policy, script)
        #expect(result.stdout == "403 deny\n200 \n", "\(result.stderr)")
        #expect(result.status == 77)
        #expect(fulcio.requests.map(\.uri) == ["/api/v2/other"])
        let services = events.filter { $0["type"] as? String == "service" }
        #expect(services.map { $0["credential"] as? String } == ["long-lived", "long-lived"])
    }
}
