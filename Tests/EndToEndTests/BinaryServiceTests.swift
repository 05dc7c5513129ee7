import Foundation
import StepGuardServerTestSupport
import StepGuardTestSupport
import Testing

/// End-to-end through the built `stepguard run`, with real clients (curl, python) inside the step:
/// catalog services reached through TLS interception (AWS STS, Vault), request smuggling and header
/// limits, a Host header that is not the CONNECT target, audit mode, CONNECT by every IP spelling,
/// and the per-run CA's key staying off disk. Every name is mapped to loopback by `network.resolve`.
@Suite(.serialized) struct BinaryServiceTests {
    /// An upstream that answers every request with JSON naming its method and path.
    static let echoJSON: LocalHTTPServer.Handler = { request in
        .json(#"{"ok":true,"method":"\#(request.method)","path":"\#(request.uri)"}"#)
    }

    /// curl printing `CODE DECISION` (the `X-StepGuard-Decision` header, empty from upstreams) per call.
    static let code = "curl -s -o /dev/null -w '%{http_code} %header{x-stepguard-decision}\\n'"

    /// Python for raw requests to the step's proxy (`HTTP_PROXY`): `ask(bytes)` sends them on a new
    /// connection and returns `CODE DECISION` from the response head (`-` when there is no decision header).
    static let rawProxyClient = #"""
    import os, socket, urllib.parse
    proxy = urllib.parse.urlsplit(os.environ["HTTP_PROXY"])
    def ask(request):
        data = b""
        with socket.create_connection((proxy.hostname, proxy.port), timeout=10) as s:
            s.sendall(request)
            while b"\r\n\r\n" not in data:
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk: break
                data += chunk
        lines = data.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1."): return "no response"
        fields = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
        return "%s %s" % (lines[0].split(" ")[1], fields.get("x-stepguard-decision", "-"))

    """#

    /// A shell step running `body` with ``rawProxyClient`` defined.
    static func python(_ body: String) -> String {
        "python3 - <<'PY'\n\(rawProxyClient)\(body)\nPY\n"
    }

    // MARK: AWS STS

    static let longLivedKey = "AKIAIOSFODNN7EXAMPLE"
    static let temporaryKey = "ASIAIOSFODNN7EXAMPLE"
    static let secretKey = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"
    static let sessionToken = "FwoGZXIvYXdzEJr//////////wEaDExampleSessionToken"

    /// SigV4 to STS: an `ASIA…` key with a session token passes `credential: short-lived`, an `AKIA…` key gets 403; no key in the log.
    @Test func sigV4ToSTSAllowsTemporaryKeysAndDeniesLongLivedOnes() throws {
        let stage = try TestStage { try ServiceStandIn.start("sts.amazonaws.com", directory: $0, handler: Self.echoJSON) }
        let sts = stage.server
        let policy = """
        version: 1
        on_violation: fail
        egress: { default: deny }
        services:
          - service: aws-sts
            allow: { credential: short-lived }
        \(sts.network)
        """
        let call = "\(Self.code) --aws-sigv4 aws:amz:us-east-1:sts 'https://sts.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15'"
        let script = """
        \(call) --user '\(Self.temporaryKey):\(Self.secretKey)' -H 'X-Amz-Security-Token: \(Self.sessionToken)'
        \(call) --user '\(Self.longLivedKey):\(Self.secretKey)'
        """
        let (result, events) = try stage.run(policy, script)
        #expect(result.stdout == "200 \n403 deny\n", "\(result.stderr)")
        #expect(result.status == 77)
        #expect(sts.requests.count == 1)
        #expect(sts.requests.first?.header("authorization")?.contains("Credential=\(Self.temporaryKey)/") == true)
        #expect(sts.requests.first?.header("x-amz-security-token") == Self.sessionToken)
        let services = events.filter { $0["type"] as? String == "service" }
        #expect(services.map { $0["decision"] as? String } == ["allow", "deny"])
        #expect(services.map { $0["credential"] as? String } == ["short-lived", "long-lived"])
        #expect(services.allSatisfy { $0["host"] as? String == "sts.amazonaws.com" && $0["service"] as? String == "aws-sts" })
        let log = try stage.directory.read("audit.jsonl")
        for secret in [Self.longLivedKey, Self.temporaryKey, Self.secretKey, Self.sessionToken] {
            #expect(!log.contains(secret) && !result.stderr.contains(secret), "\(secret) is written in full")
        }
    }

    // MARK: Vault

    /// Vault: login with a token of the job's own workload is allowed, another job's is not; reads only under the allowed path.
    @Test func vaultLoginWithTheJobsTokenThenReadsOnlyAllowedPaths() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        // The job's own token (verified by the binary before the step starts), then what the step
        // sends to Vault: a token of the same workload for Vault's audience, and one of another job.
        let job = try WorkloadJob(in: directory)
        let sameJob = try job.token(audience: "vault")
        let otherJob = try job.issuer.token(subject: "repo:octo-org/other:ref:refs/heads/main", audience: "vault",
                                        extraClaims: ["repository": #""octo-org/other""#, "ref": #""refs/heads/main""#])
        let sameFile = try directory.write("same.jwt", sameJob)
        let otherFile = try directory.write("other.jwt", otherJob)
        let vault = try ServiceStandIn.start("vault.example.test", port: 8200, directory: directory, handler: Self.echoJSON)
        defer { vault.shutdown() }
        let policy = """
        version: 1
        on_violation: fail
        \(job.identity)
        egress: { default: deny }
        services:
          - service: hashicorp-vault
            hosts: [vault.example.test]
            allow:
              - { methods: [POST], paths: ["/v1/auth/jwt/login"], credential: workload }
              - { methods: [GET], paths: ["/v1/secret/data/ci/*"], credential: any }
        \(vault.network)
        """
        let base = "https://vault.example.test:8200"
        let login = "\(Self.code) -H 'Content-Type: application/json' \(base)/v1/auth/jwt/login --data"
        let read = "\(Self.code) -H 'X-Vault-Token: hvs.CAESIJustATestToken'"
        let script = """
        \(login) "{\\"role\\":\\"ci\\",\\"jwt\\":\\"$(cat \(sameFile))\\"}"
        \(login) "{\\"role\\":\\"ci\\",\\"jwt\\":\\"$(cat \(otherFile))\\"}"
        \(read) \(base)/v1/secret/data/ci/app
        \(read) \(base)/v1/secret/data/prod/db
        """
        let (result, events) = try RunEgressTests.run(policy, script, directory: directory)
        #expect(result.stdout == "200 \n403 deny\n200 \n403 deny\n", "\(result.stderr)")
        #expect(result.status == 77)
        #expect(vault.requests.map(\.uri) == ["/v1/auth/jwt/login", "/v1/secret/data/ci/app"])
        #expect(vault.requests.first.map { String(decoding: $0.body, as: UTF8.self).contains(sameJob) } == true, "the login body is forwarded whole")
        #expect(events.contains { $0["type"] as? String == "identity" && $0["decision"] as? String == "allow" })
        let services = events.filter { $0["type"] as? String == "service" }
        #expect(services.map { $0["decision"] as? String } == ["allow", "deny", "allow", "deny"])
        #expect(services.map { $0["path"] as? String } == ["/v1/auth/jwt/login", "/v1/auth/jwt/login", "/v1/secret/data/ci/app", "/v1/secret/data/prod/db"])
        let log = try directory.read("audit.jsonl")
        for token in [sameJob, otherJob, "hvs.CAESIJustATestToken"] { #expect(!log.contains(token) && !result.stderr.contains(token)) }
    }

    // MARK: Smuggling and limits

    /// Raw requests from the step: Content-Length with Transfer-Encoding gets 400, header blocks over the limit 431; each is a stepguard error answer and upstream sees none.
    @Test func smugglingAndOversizedHeadersAreRefusedBeforeUpstream() throws {
        let stage = try TestStage()
        let policy = "version: 1\non_violation: fail\negress:\n  default: deny\n  allow: [\"127.0.0.1:\(stage.server.port)\"]\n"
        // ProxyLimits.maxHeaderBytes is 32 KiB: a block just over it is refused by stepguard's own check,
        // one far over it (or over the 32 KiB field limit) by the HTTP parser; both answer 431.
        let script = Self.python("""
        target = b"http://127.0.0.1:\(stage.server.port)"
        print(ask(b"GET " + target + b"/ok HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nConnection: close\\r\\n\\r\\n"))
        print(ask(b"POST " + target + b"/both HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nContent-Length: 5\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n"
                  b"0\\r\\n\\r\\nGET /smuggled HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n"))
        print(ask(b"GET " + target + b"/over HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nX-A: " + b"a" * 16500 + b"\\r\\nX-B: " + b"b" * 16500 + b"\\r\\n\\r\\n"))
        print(ask(b"GET " + target + b"/huge HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nX-Big: " + b"a" * 40000 + b"\\r\\n\\r\\n"))
        """)
        let (result, _) = try stage.run(policy, script)
        #expect(result.stdout == "200 -\n400 error\n431 error\n431 error\n", "\(result.stderr)")
        #expect(result.status == 0, "refused requests are errors, not policy violations")
        #expect(stage.server.requests.map(\.uri) == ["/ok"])
    }

    // MARK: Host header

    /// An intercepted request whose Host names another host than the CONNECT target gets 403; so does a TLS SNI that differs.
    @Test func hostHeaderOrSNIOtherThanTheConnectTargetIsDenied() throws {
        let stage = try TestStage { try ServiceStandIn.start("fulcio.sigstore.dev", directory: $0, handler: Self.echoJSON) }
        let fulcio = stage.server
        let policy = RunEgressTests.fulcioPolicy(fulcio, allow: "{ methods: [POST], credential: any }")
        let jwt = TestOIDCIssuer().token(subject: "repo:acme/app:ref:refs/tags/v1")
        let post = "\(Self.code) -X POST --data '{}' https://fulcio.sigstore.dev/api/v2/signingCert -H 'Authorization: Bearer \(jwt)'"
        let script = """
        \(post)
        \(post) -H 'Host: rekor.sigstore.dev'
        python3 - <<'PY'
        import os, socket, ssl, urllib.parse
        proxy = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
        s = socket.create_connection((proxy.hostname, proxy.port), timeout=10)
        s.sendall(b"CONNECT fulcio.sigstore.dev:443 HTTP/1.1\\r\\nHost: fulcio.sigstore.dev:443\\r\\n\\r\\n")
        print(s.recv(4096).split(b"\\r\\n")[0].decode())
        context = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
        context.check_hostname = False
        try:
            context.wrap_socket(s, server_hostname="evil.example")
            print("handshake ok")
        except (ssl.SSLError, OSError):
            print("handshake failed")
        PY
        """
        let (result, events) = try stage.run(policy, script)
        #expect(result.stdout == "200 \n403 deny\nHTTP/1.1 200 Connection Established\nhandshake failed\n", "\(result.stderr)")
        #expect(result.status == 77)
        #expect(fulcio.requests.count == 1)
        let denials = events.filter { $0["decision"] as? String == "deny" }
        #expect(denials.count == 2, "\(denials)")
        #expect(denials.first?["rule"] as? String == "built-in: Host must equal the CONNECT target")
        #expect((denials.first?["reason"] as? String)?.contains("differs from the CONNECT target") == true)
        #expect(denials.last?["rule"] as? String == "built-in: SNI must equal the CONNECT host")
        #expect(denials.last?["sni"] as? String == "evil.example")
    }

    // MARK: Audit mode

    /// `mode: audit`: a host the policy denies is reached anyway, the step exits 0, and the log records the would-be denial.
    @Test func auditModeReachesADeniedHostAndLogsTheWouldBeDenial() throws {
        let stage = try TestStage()
        let policy = "version: 1\nmode: audit\non_violation: kill\negress:\n  default: deny\n"
        let (result, events) = try stage.run(policy, "curl -sS -w ' %{http_code}\\n' http://127.0.0.1:\(stage.server.port)/x; echo after")
        #expect(result.stdout == "hello /x 200\nafter\n", "\(result.stderr)")
        #expect(result.status == 0)
        #expect(result.stderr.contains("would deny egress"))
        #expect(stage.server.requests.map(\.uri) == ["/x"])
        let deny = try #require(events.first { $0["type"] as? String == "egress" && $0["decision"] as? String == "deny" })
        #expect(deny["host"] as? String == "127.0.0.1" && deny["rule"] as? String == "built-in: protected 127.0.0.0/8")
        #expect(deny["mode"] as? String == "audit" && deny["enforced"] as? Bool == false)
        #expect(events.allSatisfy { $0["mode"] as? String == "audit" })
    }

    // MARK: CONNECT by IP spelling

    /// CONNECT to every spelling of a denied address (decimal, hex, octal, IPv4-mapped IPv6) gets 403; its server is never connected to.
    @Test func connectToEveryIPSpellingOfADeniedAddressIsDenied() throws {
        let stage = try TestStage(host: "127.0.0.3")
        let policy = RunEgressTests.loopbackButOneDenied
        let script = Self.python("""
        for host in ["2130706435", "0x7f000003", "0177.0.0.3", "[::ffff:127.0.0.3]"]:
            authority = ("%s:\(stage.server.port)" % host).encode()
            print(host, ask(b"CONNECT " + authority + b" HTTP/1.1\\r\\nHost: " + authority + b"\\r\\n\\r\\n"))
        """)
        let (result, events) = try stage.run(policy, script)
        #expect(result.stdout == "2130706435 403 deny\n0x7f000003 403 deny\n0177.0.0.3 403 deny\n[::ffff:127.0.0.3] 403 deny\n", "\(result.stderr)")
        #expect(result.status == 77)
        #expect(stage.server.acceptedConnections == 0)
        let denials = events.filter { $0["decision"] as? String == "deny" }
        #expect(denials.count == 4)
        #expect(denials.allSatisfy { $0["host"] as? String == "127.0.0.3" && $0["method"] as? String == "CONNECT" }, "\(denials)")
    }

    // MARK: Per-run CA

    /// The step's trust bundle directory holds no private key, and the bundle ends with the per-run CA certificate.
    @Test func thePerRunCAKeyNeverTouchesDisk() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let script = """
        bundle_dir=$(dirname "$SSL_CERT_FILE")
        ls -A "$bundle_dir"
        grep -rl 'PRIVATE KEY' "$bundle_dir" || echo "no private key"
        sed -n '/^# stepguard per-run CA/,$p' "$SSL_CERT_FILE" | openssl x509 -noout -subject -ext basicConstraints
        """
        let (result, _) = try RunEgressTests.run(RunEgressTests.interceptingPolicy, script, directory: directory)
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(Array(lines.prefix(2)) == ["ca-bundle.pem", "no private key"], "\(result.stdout)")
        #expect(lines.contains { $0.hasPrefix("subject=") && $0.contains("stepguard per-run CA") }, "\(result.stdout)")
        #expect(lines.contains { $0.contains("CA:TRUE") }, "\(result.stdout)")
    }
}
