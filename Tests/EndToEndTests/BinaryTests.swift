import Foundation
import StepGuardServerTestSupport
import StepGuardTestSupport
import Testing

/// End-to-end: the built `stepguard run` with its proxy, real clients inside the step, local servers.
@Suite(.serialized) struct RunEgressTests {
    static let echo: LocalHTTPServer.Handler = { request in ServerResponse(status: 200, body: "hello \(request.uri)") }

    /// Runs `/bin/sh -c script` under the built `stepguard run` with `policy` (written to `directory`);
    /// returns the result and the audit log's events. Shared by the binary tests of other suites.
    static func run(_ policy: String, _ script: String, directory: TemporaryDirectory, timeout: TimeInterval = 60) throws -> (ProgramResult, [[String: Any]]) {
        let file = try directory.write("policy.yaml", policy)
        let log = directory.path("audit.jsonl")
        try? FileManager.default.removeItem(atPath: log)
        let result = try StepGuardBinary.run(["run", "--policy", file, "--audit-log", log, "--", "/bin/sh", "-c", script], timeout: timeout)
        let events = try AuditLogFile.events(log)
        return (result, events)
    }

    /// A policy that allows loopback but denies 127.0.0.3 (`on_violation: fail`).
    static let loopbackButOneDenied = "version: 1\non_violation: fail\negress:\n  default: allow\n  allow: [127.0.0.0/8]\n  deny: [127.0.0.3]\n"

    /// A policy (`on_violation: fail`, other egress denied) that intercepts `fulcio`, a stand-in
    /// for fulcio.sigstore.dev, as `sigstore-fulcio` allowed by `allow`.
    static func fulcioPolicy(_ fulcio: ServiceStandIn, allow: String) -> String {
        """
        version: 1
        on_violation: fail
        egress: { default: deny }
        services:
          - service: sigstore-fulcio
            allow: \(allow)
        \(fulcio.network)
        """
    }

    @Test func allowedHostPassesAndDeniedHostKillsTheStep() throws {
        let stage = try TestStage()
        let policy = "version: 1\non_violation: kill\negress:\n  default: deny\n  allow: [\"127.0.0.1:\(stage.server.port)\"]\n"
        let (allowed, _) = try stage.run(policy, "curl -sS http://127.0.0.1:\(stage.server.port)/ok")
        #expect(allowed.status == 0, "\(allowed.stderr)")
        #expect(allowed.stdout == "hello /ok")

        let started = Date()
        let (killed, events) = try stage.run(policy, "curl -s http://127.0.0.3:\(stage.server.port)/x; sleep 30; echo never")
        #expect(killed.status == 77)
        #expect(Date().timeIntervalSince(started) < 20)
        #expect(!killed.stdout.contains("never"))
        #expect(killed.stderr.contains("BLOCKED — egress"))
        let deny = try #require(events.first { $0["decision"] as? String == "deny" })
        #expect(deny["type"] as? String == "egress" && deny["host"] as? String == "127.0.0.3" && deny["rule"] as? String == "built-in: protected 127.0.0.0/8")
    }

    @Test func failLetsTheStepFinishThenExits77() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let policy = Self.loopbackButOneDenied
        let (result, _) = try Self.run(policy, "curl -s -o /dev/null -w '%{http_code}\\n' http://127.0.0.3:9/; echo continued", directory: directory)
        #expect(result.status == 77)
        #expect(result.stdout == "403\ncontinued\n")
    }

    @Test func everyIPSpellingIsDeniedForPythonClients() throws {
        let stage = try TestStage(host: "127.0.0.3")
        let policy = Self.loopbackButOneDenied
        let script = """
        python3 - <<'PY'
        import urllib.request, urllib.error
        for host in ["2130706435", "0x7f000003", "0177.0.0.3", "[::ffff:127.0.0.3]"]:
            try:
                urllib.request.urlopen("http://%s:\(stage.server.port)/" % host, timeout=10)
                print(host, "reached")
            except urllib.error.HTTPError as error:
                print(host, error.code, error.headers.get("X-StepGuard-Decision"))
        PY
        """
        let (result, events) = try stage.run(policy, script)
        #expect(result.stdout == "2130706435 403 deny\n0x7f000003 403 deny\n0177.0.0.3 403 deny\n[::ffff:127.0.0.3] 403 deny\n", "\(result.stderr)")
        #expect(result.status == 77)
        #expect(stage.server.requests.isEmpty)
        #expect(events.filter { $0["decision"] as? String == "deny" }.allSatisfy { $0["host"] as? String == "127.0.0.3" })
    }

    @Test func interceptedServiceThroughTheBinary() throws {
        let stage = try TestStage { try ServiceStandIn.start("fulcio.sigstore.dev", directory: $0) { _ in .json(#"{"signed":true}"#) } }
        let fulcio = stage.server
        let policy = Self.fulcioPolicy(fulcio, allow: "{ methods: [POST], credential: short-lived, window: 3s }")
        // A GitHub installation token is short-lived (a JWT would need an identity: section to be verified).
        let installation = "gh" + "s_" + String(repeating: "Ab3d", count: 9)
        let post = "curl -s -o /dev/null -w '%{http_code}\\n' -X POST --data '{}' https://fulcio.sigstore.dev/api/v2/signingCert -H"
        let script = """
        \(post) 'Authorization: Bearer \(installation)'
        \(post) 'Authorization: Bearer ghp_0123456789abcdefghijklmnopqrstuvwxyzAB'
        sleep 4
        \(post) 'Authorization: Bearer \(installation)'
        """
        let (result, events) = try stage.run(policy, script)
        #expect(result.stdout == "200\n403\n403\n", "\(result.stderr)")
        #expect(result.status == 77)
        let services = events.filter { $0["type"] as? String == "service" }
        #expect(services.map { $0["decision"] as? String } == ["allow", "deny", "deny"])
        #expect((services[2]["reason"] as? String)?.contains("window") == true)
        #expect(!(try String(contentsOfFile: stage.directory.path("audit.jsonl"), encoding: .utf8)).contains("ghp_0123456789abcdefghij"))
    }

    @Test func unknownServiceRunsNothingAndExits78() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let marker = directory.path("ran")
        let (result, _) = try Self.run("version: 1\nservices:\n  - service: sigstore-fulcoi\n", "touch \(marker)", directory: directory)
        #expect(result.status == 78)
        #expect(result.stderr.contains("policy.yaml:3:14: error: unknown service 'sigstore-fulcoi'"))
        #expect(!FileManager.default.fileExists(atPath: marker))
    }

    /// A policy that intercepts `sigstore-fulcio`, its hosts mapped to a closed loopback port (no lookup leaves the machine).
    static let interceptingPolicy = """
        version: 1
        services:
          - service: sigstore-fulcio
            allow: { credential: any }
        network:
          resolve: { "fulcio.sigstore.dev:443": "127.0.0.1:9", "fulcio.sigstage.dev:443": "127.0.0.1:9" }
        """

    static let trustVariables = ["SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "AWS_CA_BUNDLE", "GIT_SSL_CAINFO"]

    @Test func stepEnvironmentHasProxyAndWithServicesTheTrustBundle() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let script = "env | grep -iE '^(https?|all|no)_proxy=|CA_BUNDLE|SSL_CERT_FILE|NODE_EXTRA|GIT_SSL' | sort; stat -c %a \"$(dirname \"$SSL_CERT_FILE\")\"; echo \"$SSL_CERT_FILE\" > \(directory.path("bundle"))"
        let (result, _) = try Self.run(Self.interceptingPolicy, script, directory: directory)
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        for name in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"] {
            #expect(lines.contains { $0.hasPrefix("\(name)=http://127.0.0.1:") }, "\(name)")
        }
        #expect(lines.contains("NO_PROXY=") && lines.contains("no_proxy="))
        for name in Self.trustVariables {
            #expect(lines.contains { $0.hasPrefix("\(name)=/") && $0.hasSuffix("/ca-bundle.pem") }, "\(name)")
        }
        #expect(lines.last == "700")
        let bundle = try directory.read("bundle").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(bundle.hasSuffix("/ca-bundle.pem"))
        #expect(!FileManager.default.fileExists(atPath: bundle), "the bundle directory is removed at exit")
    }

    /// network.upstream_ca is checked before anything runs whether or not the policy names services
    /// (everything `run` fetches trusts it), although without services no CA or trust bundle is made.
    @Test func anUnusableUpstreamCAIsRefusedWithoutServicesToo() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        _ = try directory.write("not-a-ca.pem", "not a certificate\n")
        let file = try directory.write("policy.yaml", "version: 1\nnetwork:\n  upstream_ca: not-a-ca.pem\n")
        let marker = directory.path("ran")
        let result = try StepGuardBinary.run(["run", "--policy", file, "--", "/bin/sh", "-c", "touch \(marker)"])
        #expect(result.status == 78, "\(result.stderr)")
        #expect(result.stderr.contains("network.upstream_ca") && result.stderr.contains("nothing was run"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: marker))
    }

    /// The proxy's NIO event loops and lookup threads start on first use (issue #17's start-up): a
    /// step that makes no request pays for neither, only for the socket front.
    @Test func aStepThatMakesNoRequestStartsNoEventLoopsOrLookupThreads() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = try directory.write("policy.yaml", "version: 1\nisolation: off\n")
        // The proxy's threads start once the step has started (while it loads): wait for the front's
        // thread, which shows these are stepguard's threads, then list them all.
        let step = "i=0; until grep -qx stepguard-front /proc/$PPID/task/*/comm || [ $i -ge 500 ]; do i=$((i+1)); sleep 0.01; done; cat /proc/$PPID/task/*/comm"
        let result = try StepGuardBinary.run(["run", "--policy", file, "--", "/bin/sh", "-c", step])
        #expect(result.status == 0, "\(result.stderr)")
        let threads = result.stdout.split(separator: "\n").map(String.init)
        #expect(threads.contains("stepguard-front"), "not stepguard's threads: \(threads)")
        #expect(!threads.contains { $0.hasPrefix("NIO-ELT") || $0.hasPrefix("TP-#") }, "\(threads)")
    }

    /// Without services nothing is intercepted: no per-run CA, and the job's own trust settings reach the step unchanged.
    @Test func withoutServicesTheStepKeepsItsOwnTrustSettings() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = try directory.write("policy.yaml", "version: 1\n")
        let mine = directory.path("corporate-ca.pem")
        let environment = TestEnvironment.with(Dictionary(uniqueKeysWithValues: Self.trustVariables.map { ($0, mine) }))
        let result = try StepGuardBinary.run(["run", "--policy", file, "--", "/bin/sh", "-c", "env | grep -E 'CA_BUNDLE|SSL_CERT_FILE|NODE_EXTRA|GIT_SSL|HTTPS_PROXY=' | sort"],
                                             environment: environment)
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        for name in Self.trustVariables { #expect(lines.contains("\(name)=\(mine)"), "\(name): \(result.stdout)") }
        #expect(lines.contains { $0.hasPrefix("HTTPS_PROXY=http://127.0.0.1:") })
    }
}
