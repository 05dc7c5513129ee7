import Foundation
import StepGuardServerTestSupport
import StepGuardTestSupport
import Testing

/// `revoke: auto` through the built binary: after a violation, the GitHub installation token and the
/// Vault token the step held are revoked at loopback HTTPS stand-ins for the GitHub API and Vault,
/// reached through the policy's `network.resolve` and trusted through its `network.upstream_ca`.
@Suite struct RevocationTests {
    let directory: TemporaryDirectory
    let authority: TestCertificateAuthority
    let home: String
    let githubToken: String
    let vaultToken: String

    init() throws {
        directory = try TemporaryDirectory()
        authority = try TestCertificateAuthority(directory: directory)
        home = directory.path("home")
        try directory.write("home/.aws/credentials", "[default]\n", mode: 0o644)
        try directory.write("home/workspace/notes.txt", "ordinary\n", mode: 0o644)
        githubToken = "gh" + "s_" + RandomSecret.alnum(36)
        vaultToken = "hv" + "s." + RandomSecret.alnum(90)
    }

    /// A stand-in that answers `status` to the revocation request carrying `header: value`, and 401
    /// to anything else.
    func standIn(name: String, header: String, value: String, status: Int = 204) throws -> LocalHTTPServer {
        try LocalHTTPServer.start(tls: authority, tlsNames: [name]) { request in
            let carries = request.headers.contains { $0.name.lowercased() == header.lowercased() && $0.value == value }
            return ServerResponse(status: carries ? status : 401, body: "")
        }
    }

    /// The stand-ins for the GitHub API and Vault, each accepting only the step's own token.
    func standIns() throws -> (github: LocalHTTPServer, vault: LocalHTTPServer) {
        (try standIn(name: "api.github.test", header: "Authorization", value: "Bearer \(githubToken)"),
         try standIn(name: "vault.test", header: "X-Vault-Token", value: vaultToken))
    }

    func policy(github: Int, vault: Int, _ extra: String = "") throws -> String {
        try directory.write("policy-\(UUID().uuidString.prefix(6)).yaml", """
            version: 1
            isolation: required
            credentials: { allow_vars: [VAULT_TOKEN] }
            egress: { allow: [api.github.test, vault.test] }
            network:
              resolve: { "api.github.test:443": "127.0.0.1:\(github)", "vault.test:8200": "127.0.0.1:\(vault)" }
              upstream_ca: \(authority.certificateFile)
            \(extra)
            """)
    }

    func run(_ policy: String, _ step: String, log: String) throws -> (ProgramResult, TimeInterval) {
        var environment = TestEnvironment.base
        environment["HOME"] = home
        environment["GITHUB_TOKEN"] = githubToken
        environment["GITHUB_API_URL"] = "https://api.github.test"
        environment["VAULT_ADDR"] = "https://vault.test:8200"
        environment["VAULT_TOKEN"] = vaultToken
        let started = Date()
        let result = try StepGuardBinary.run(["run", "--policy", policy, "--audit-log", log, "--", "sh", "-c", step], environment: environment)
        return (result, Date().timeIntervalSince(started))
    }

    func revocationEvents(_ log: String) throws -> [[String: Any]] {
        try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").compactMap { line in
            try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        }.filter { $0["type"] as? String == "revocation" }
    }

    /// A tripwire (the step opens a hidden ~/.aws/credentials) and an egress denial (a request to a
    /// host the policy does not allow) both revoke what the step held.
    @Test(arguments: [("cat ~/.aws/credentials; sleep 30", "tripwire"),
                      ("curl -s -o /dev/null http://denied.invalid/; sleep 30", "egress")])
    func aViolationRevokesTheStepsGitHubAndVaultTokens(step: String, violation: String) throws {
        defer { directory.remove() }
        let (github, vault) = try standIns()
        defer { github.shutdown(); vault.shutdown() }
        let log = directory.path("audit.jsonl")
        let (result, _) = try run(try policy(github: github.port, vault: vault.port), step, log: log)
        #expect(result.status == 77, "\(result.stderr)")
        #expect(result.stderr.contains("BLOCKED — \(violation):"), "\(result.stderr)")
        #expect(github.requests.map { "\($0.method) \($0.uri)" } == ["DELETE /installation/token"])
        #expect(github.requests.first?.headers.contains { $0.name.lowercased() == "x-github-api-version" } == true)
        #expect(vault.requests.map { "\($0.method) \($0.uri)" } == ["POST /v1/auth/token/revoke-self"])
        #expect(result.stderr.contains("; 2 credentials revoked (exit 77)"), "\(result.stderr)")
        let events = try revocationEvents(log)
        #expect(Set(events.compactMap { $0["origin"] as? String }) == ["environment: GITHUB_TOKEN", "environment: VAULT_TOKEN"])
        #expect(events.allSatisfy { $0["outcome"] as? String == "revoked" && $0["status"] as? Int == 204 }, "\(events)")
        #expect(events.allSatisfy { ($0["why"] as? String) == "after a \(violation) violation" }, "\(events)")
        let written = try String(contentsOfFile: log, encoding: .utf8) + result.stderr + result.stdout
        #expect(!written.contains(githubToken) && !written.contains(vaultToken), "a token was written in full")
    }

    /// An issuer that accepts the connection and never answers does not hold the run longer than
    /// the bound (5 s for all revocations together).
    @Test func aRevocationEndpointThatHangsDoesNotHoldTheRun() throws {
        defer { directory.remove() }
        let (hanging, port) = try LoopbackSocket.listen()  // connections wait in the backlog, unanswered
        defer { close(hanging) }
        let vault = try standIn(name: "vault.test", header: "X-Vault-Token", value: vaultToken)
        defer { vault.shutdown() }
        let log = directory.path("audit.jsonl")
        let (result, seconds) = try run(try policy(github: port, vault: vault.port), "cat ~/.aws/credentials; sleep 30", log: log)
        #expect(result.status == 77)
        #expect(seconds < 9, "the run took \(seconds) s")
        #expect(vault.requests.count == 1, "the other revocation went ahead in parallel")
        #expect(result.stderr.contains("1 credential revoked, 1 revocation failed"), "\(result.stderr)")
        let failed = try revocationEvents(log).filter { $0["outcome"] as? String == "failed" }
        #expect(failed.first?["kind"] as? String == "GitHub installation token")
        #expect((failed.first?["milliseconds"] as? Int ?? 0) <= 5600, "\(failed)")
    }

    @Test func auditModeRecordsWhatItWouldRevokeAndRevokesNothing() throws {
        defer { directory.remove() }
        let (github, vault) = try standIns()
        defer { github.shutdown(); vault.shutdown() }
        let log = directory.path("audit.jsonl")
        let (result, _) = try run(try policy(github: github.port, vault: vault.port, "mode: audit"), "cat ~/.aws/credentials", log: log)
        #expect(result.status == 0)
        #expect(github.requests.isEmpty && vault.requests.isEmpty)
        #expect(result.stderr.contains("2 credentials would be revoked"), "\(result.stderr)")
        #expect(try revocationEvents(log).allSatisfy { $0["outcome"] as? String == "would revoke" })
    }

    /// No violation, or `revoke: off`: nothing is revoked.
    @Test(arguments: [("cat ~/workspace/notes.txt", ""), ("cat ~/.aws/credentials", "revoke: off")])
    func withoutAViolationOrWithRevokeOffNothingIsRevoked(step: String, extra: String) throws {
        defer { directory.remove() }
        let (github, vault) = try standIns()
        defer { github.shutdown(); vault.shutdown() }
        let log = directory.path("audit.jsonl")
        let (result, _) = try run(try policy(github: github.port, vault: vault.port, extra), step, log: log)
        #expect(result.status == (extra.isEmpty ? 0 : 77), "\(result.stderr)")
        #expect(github.requests.isEmpty && vault.requests.isEmpty)
        #expect(try revocationEvents(log).isEmpty)
    }

    /// A Vault stand-in whose JWT login mints `minted` and whose revoke-self accepts only it.
    func vaultLogin(minting minted: String) throws -> LocalHTTPServer {
        try LocalHTTPServer.start(tls: authority, tlsNames: ["vault.test"]) { request in
            if request.uri == "/v1/auth/jwt/login" { return .json(#"{"auth": {"client_token": "\#(minted)", "lease_duration": 3600}}"#) }
            let carries = request.headers.contains { $0.name.lowercased() == "x-vault-token" && $0.value == minted }
            return ServerResponse(status: request.uri == "/v1/auth/token/revoke-self" && carries ? 204 : 401, body: "")
        }
    }

    /// A policy that intercepts the Vault stand-in (`allow` for hashicorp-vault), after `head`.
    func vaultPolicy(_ name: String, vault: LocalHTTPServer, allow: String, head: String = "") throws -> String {
        try directory.write(name, """
            version: 1
            isolation: required
            \(head)services:
              - service: hashicorp-vault
                hosts: [vault.test]
                allow: \(allow)
            network:
              resolve: { "vault.test:8200": "127.0.0.1:\(vault.port)" }
              upstream_ca: \(authority.certificateFile)
            """)
    }

    /// Runs a step that logs in to the Vault stand-in through the proxy, then sleeps `seconds`.
    func logInAndSleep(_ seconds: Int, policy: String, log: String) throws -> ProgramResult {
        var environment = TestEnvironment.base
        environment["HOME"] = home
        environment["VAULT_ADDR"] = "https://vault.test:8200"
        let step = """
            curl -sS --fail -o /dev/null -X POST -H 'Content-Type: application/json' -d '{"role":"ci"}' https://vault.test:8200/v1/auth/jwt/login \\
              && echo logged-in; sleep \(seconds); echo done
            """
        return try StepGuardBinary.run(["run", "--policy", policy, "--audit-log", log, "--", "sh", "-c", step],
                                       environment: environment, currentDirectory: directory.path)
    }

    /// Drift: a Vault token minted by a login the proxy intercepted is revoked when the service's
    /// window closes, while the step still sleeps — not only denied on its next use.
    @Test func aMintedVaultTokenIsRevokedWhenItsWindowCloses() throws {
        defer { directory.remove() }
        let minted = "hv" + "s." + RandomSecret.alnum(90)
        let vault = try vaultLogin(minting: minted)
        defer { vault.shutdown() }
        let log = directory.path("audit.jsonl")
        let result = try logInAndSleep(4, policy: try vaultPolicy("drift.yaml", vault: vault, allow: "{ credential: none, window: 2s }"), log: log)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "logged-in\ndone\n")
        #expect(vault.requests.map(\.uri) == ["/v1/auth/jwt/login", "/v1/auth/token/revoke-self"])
        #expect(result.stderr.contains("; 1 credential revoked (exit 0)"), "\(result.stderr)")
        try expectRevokedWhenTheWindowClosed(log: log, origin: "minted by hashicorp-vault (login)", minted: minted)
    }

    /// The audit log `log` has a `revocation` event (`origin`) for a window that closed, revoked
    /// more than a second before the step's `exit` event (while it slept), and never `minted` in full.
    func expectRevokedWhenTheWindowClosed(log: String, origin: String, minted: String) throws {
        let written = try String(contentsOfFile: log, encoding: .utf8)
        let lines = try written.split(separator: "\n").compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let revocation = try #require(lines.first { $0["type"] as? String == "revocation" })
        #expect(revocation["why"] as? String == "window closed")
        #expect(revocation["outcome"] as? String == "revoked")
        #expect(revocation["origin"] as? String == origin)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let revoked = try #require((revocation["time"] as? String).flatMap { formatter.date(from: $0) })
        let exitTime = lines.first { $0["type"] as? String == "exit" }?["time"] as? String
        let exited = try #require(exitTime.flatMap { formatter.date(from: $0) })
        #expect(exited.timeIntervalSince(revoked) > 1, "revoked while the step slept, not at its end")
        #expect(!written.contains(minted))
    }

    /// A Google OAuth access token the step obtained through the workload identity federation
    /// exchange (gcp-sts, intercepted) is revoked at Google's OAuth revocation endpoint after a violation.
    @Test func aGoogleTokenMintedThroughTheSTSExchangeIsRevoked() throws {
        defer { directory.remove() }
        let minted = "ya" + "29." + RandomSecret.alnum(120)
        let google = try LocalHTTPServer.start(tls: authority, tlsNames: ["sts.googleapis.com", "oauth2.googleapis.com"]) { request in
            if request.uri == "/v1/token" {
                return .json(#"{"access_token": "\#(minted)", "issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "token_type": "Bearer", "expires_in": 3600}"#)
            }
            let revokes = request.uri == "/revoke" && String(decoding: request.body, as: UTF8.self) == "token=\(minted)"
            return ServerResponse(status: revokes ? 200 : 400, body: "")
        }
        defer { google.shutdown() }
        let policy = try directory.write("google.yaml", """
            version: 1
            isolation: required
            services:
              - service: gcp-sts
                allow: { credential: none }
            network:
              resolve: { "sts.googleapis.com:443": "127.0.0.1:\(google.port)", "oauth2.googleapis.com:443": "127.0.0.1:\(google.port)" }
              upstream_ca: \(authority.certificateFile)
            """)
        let log = directory.path("audit.jsonl")
        var environment = TestEnvironment.base
        environment["HOME"] = home
        let step = """
            curl -sS --fail -o /dev/null -X POST -H 'Content-Type: application/json' -d '{"grantType":"token-exchange"}' \
              https://sts.googleapis.com/v1/token && echo exchanged; cat ~/.aws/credentials; sleep 30
            """
        let result = try StepGuardBinary.run(["run", "--policy", policy, "--audit-log", log, "--", "sh", "-c", step], environment: environment)
        #expect(result.status == 77, "\(result.stderr)")
        #expect(result.stdout == "exchanged\n")
        #expect(google.requests.map { "\($0.method) \($0.uri)" } == ["POST /v1/token", "POST /revoke"])
        #expect(google.requests.last?.headers.contains { $0.name.lowercased() == "content-type" && $0.value == "application/x-www-form-urlencoded" } == true)
        #expect(result.stderr.contains("; 1 credential revoked (exit 77)"), "\(result.stderr)")
        let written = try String(contentsOfFile: log, encoding: .utf8)
        #expect(written.contains(#""origin":"minted by gcp-sts""#) && written.contains(#""outcome":"revoked""#))
        #expect(!written.contains(minted) && !result.stderr.contains(minted))
    }

    /// GITHUB_API_URL and VAULT_ADDR come from the job's environment, which an earlier step may have
    /// written: a token is not sent to a host the policy does not let the step reach.
    @Test func aTokenIsNotSentToAnIssuerAddressThePolicyDoesNotAllow() throws {
        defer { directory.remove() }
        let (github, vault) = try standIns()
        defer { github.shutdown(); vault.shutdown() }
        let policy = try directory.write("unlisted.yaml", """
            version: 1
            isolation: required
            credentials: { allow_vars: [VAULT_TOKEN] }
            network:
              resolve: { "api.github.test:443": "127.0.0.1:\(github.port)", "vault.test:8200": "127.0.0.1:\(vault.port)" }
              upstream_ca: \(authority.certificateFile)
            """)
        let log = directory.path("audit.jsonl")
        let (result, _) = try run(policy, "cat ~/.aws/credentials", log: log)
        #expect(result.status == 77)
        #expect(github.requests.isEmpty && vault.requests.isEmpty)
        #expect(result.stderr.contains("2 revocations failed"), "\(result.stderr)")
        #expect(try revocationEvents(log).allSatisfy { ($0["reason"] as? String)?.contains("a token is only sent where the step itself could send it") == true })
    }

    /// Drift: when the job's workload token expires while the step still runs, every token minted
    /// in the run (here a Vault login's) is revoked at that moment.
    @Test func mintedTokensAreRevokedWhenTheJobsIdentityExpires() throws {
        defer { directory.remove() }
        let issuer = TestOIDCIssuer()
        try directory.write("jwks.json", issuer.jwks)
        try directory.write("token.jwt", try issuer.token(subject: "repo:octo-org/app:ref:refs/heads/main", audience: "stepguard", age: 1, ttl: 4))
        let minted = "hv" + "s." + RandomSecret.alnum(90)
        let vault = try vaultLogin(minting: minted)
        defer { vault.shutdown() }
        let identity = issuer.identitySection() + "\n"
        let log = directory.path("audit.jsonl")
        let result = try logInAndSleep(6, policy: try vaultPolicy("expiry.yaml", vault: vault, allow: "{ credential: none }", head: identity), log: log)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "logged-in\ndone\n")
        #expect(vault.requests.map(\.uri) == ["/v1/auth/jwt/login", "/v1/auth/token/revoke-self"])
        let written = try String(contentsOfFile: log, encoding: .utf8)
        #expect(written.contains(#""why":"identity expired""#) && written.contains(#""outcome":"revoked""#), "\(written)")
        #expect(!written.contains(minted))
    }

    /// A stand-in for the GitHub API (api.github.com, through `network.resolve`): the GitHub App
    /// token exchange, `POST /app/installations/42/access_tokens` with the App's JWT, answers 201
    /// with `minted` as GitHub does; `DELETE /installation/token` answers 204 to `minted` only.
    func githubApp(minting minted: String, for appJWT: String) throws -> LocalHTTPServer {
        try LocalHTTPServer.start(tls: authority, tlsNames: ["api.github.com"]) { request in
            func bearer(_ token: String) -> Bool {
                request.headers.contains { $0.name.lowercased() == "authorization" && $0.value == "Bearer \(token)" }
            }
            let call = "\(request.method) \(request.uri)"
            if call == "POST /app/installations/42/access_tokens" && bearer(appJWT) {
                return .json(#"{"token": "\#(minted)", "expires_at": "2030-01-01T00:00:00Z", "permissions": {"contents": "read"}, "repository_selection": "selected"}"#,
                             status: 201)
            }
            return ServerResponse(status: call == "DELETE /installation/token" && bearer(minted) ? 204 : 401, body: "")
        }
    }

    /// A value shaped like a GitHub App's JWT (RS256 header, `iss` the App's id, 10 minutes): the
    /// stand-in accepts it; stepguard cannot verify it and counts it as long-lived.
    func appJWT() -> String {
        let now = Int(Date().timeIntervalSince1970)
        func base64URL(_ data: Data) -> String {
            data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
        }
        let signature = Data((0..<256).map { _ in UInt8.random(in: 0...255) })  // an RS256 signature's size
        return base64URL(Data(#"{"alg":"RS256","typ":"JWT"}"#.utf8)) + "." + base64URL(Data(#"{"iat":\#(now - 60),"exp":\#(now + 540),"iss":"12345"}"#.utf8))
            + "." + base64URL(signature)
    }

    /// What a run of ``mintAppToken(allow:then:)`` left: the run, the calls the GitHub stand-in
    /// received (`METHOD /path`), the token it minted, the App's JWT and the audit log.
    struct AppTokenRun {
        let result: ProgramResult
        let calls: [String]
        let minted: String
        let jwt: String
        let log: String
    }

    /// Runs a step that exchanges an App's JWT for an installation token at a GitHub stand-in,
    /// through the proxy (`github-app-token` intercepted, allowed by `allow`), then runs `then`.
    /// With `secrets`, the policy also names `github-actions-secrets` (same host, a workload
    /// credential required), listed before github-app-token when `secrets` is `.first`.
    func mintAppToken(allow: String, then: String, secrets: SecretsService = .notNamed) throws -> AppTokenRun {
        let minted = "gh" + "s_" + RandomSecret.alnum(36)
        let jwt = appJWT()
        let github = try githubApp(minting: minted, for: jwt)
        defer { github.shutdown() }
        try directory.write("app.jwt", jwt)
        let policy = try directory.write("app-\(UUID().uuidString.prefix(6)).yaml", """
            version: 1
            isolation: required
            services:
            \(secrets == .first ? Self.secretsService : "")
              - service: github-app-token
                allow: \(allow)
            \(secrets == .last ? Self.secretsService : "")
            network:
              resolve: { "api.github.com:443": "127.0.0.1:\(github.port)" }
              upstream_ca: \(authority.certificateFile)
            """)
        var environment = TestEnvironment.base
        environment["HOME"] = home
        let step = """
            curl -sS --fail -o /dev/null -X POST -H "Authorization: Bearer $(cat app.jwt)" -H 'Accept: application/vnd.github+json' \\
              https://api.github.com/app/installations/42/access_tokens && echo minted; \(then)
            """
        let log = directory.path("audit.jsonl")
        let result = try StepGuardBinary.run(["run", "--policy", policy, "--audit-log", log, "--", "sh", "-c", step],
                                             environment: environment, currentDirectory: directory.path)
        return AppTokenRun(result: result, calls: github.requests.map { "\($0.method) \($0.uri)" }, minted: minted, jwt: jwt, log: log)
    }

    /// Where ``mintAppToken(allow:then:secrets:)`` names `github-actions-secrets`.
    enum SecretsService { case notNamed, first, last }

    static let secretsService = """
          - service: github-actions-secrets
            allow: { credential: workload }
        """

    /// Two services on api.github.com, in either order: the App-token exchange is decided by
    /// github-app-token (its endpoint) and its mint captured for it; a PUT of an Actions secret
    /// with a long-lived token is decided by github-actions-secrets (its endpoint), denied (exit 77)
    /// without reaching the stand-in, and the violation revokes the minted token.
    @Test(arguments: [SecretsService.first, .last])
    func twoServicesOnOneHostEachDecideTheirOwnEndpoints(secrets: SecretsService) throws {
        defer { directory.remove() }
        let pat = "gh" + "p_" + RandomSecret.alnum(36)
        try directory.write("pat", pat)
        let put = #"curl -s -o /dev/null -X PUT -H "Authorization: Bearer $(cat pat)" -d '{"encrypted_value":"eA==","key_id":"1"}' "#
            + "https://api.github.com/repos/acme/app/actions/secrets/DEPLOY_KEY; sleep 30"
        let run = try mintAppToken(allow: "{ methods: [POST], credential: any }", then: put, secrets: secrets)
        #expect(run.result.status == 77, "\(run.result.stderr)")
        #expect(run.result.stdout == "minted\n", "\(run.result.stderr)")
        #expect(run.calls == ["POST /app/installations/42/access_tokens", "DELETE /installation/token"], "the PUT never reached the API")
        let events = try String(contentsOfFile: run.log, encoding: .utf8).split(separator: "\n").compactMap { line in
            try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        }
        let services = events.filter { $0["type"] as? String == "service" }
        #expect(services.contains { $0["decision"] as? String == "allow" && $0["service"] as? String == "github-app-token"
            && $0["path"] as? String == "/app/installations/42/access_tokens" }, "\(services)")
        #expect(services.contains { $0["decision"] as? String == "deny" && $0["service"] as? String == "github-actions-secrets"
            && $0["method"] as? String == "PUT" && $0["credential"] as? String == "long-lived" }, "\(services)")
        let revoked = events.filter { $0["type"] as? String == "revocation" }
        #expect(revoked.count == 1 && revoked.first?["origin"] as? String == "minted by github-app-token", "\(revoked)")
        #expect(revoked.first?["outcome"] as? String == "revoked", "\(revoked)")
        let written = try String(contentsOfFile: run.log, encoding: .utf8) + run.result.stderr + run.result.stdout
        #expect(!written.contains(run.minted) && !written.contains(pat) && !written.contains(run.jwt), "a token was written in full")
    }

    /// A GitHub App installation token the step minted (the exchange intercepted through
    /// `github-app-token`) is revoked after a violation with `DELETE /installation/token`, like
    /// GITHUB_TOKEN; the token is never written.
    @Test func aGitHubAppTokenMintedDuringTheStepIsRevokedAfterAViolation() throws {
        defer { directory.remove() }
        let run = try mintAppToken(allow: "{ methods: [POST], credential: any }", then: "cat ~/.aws/credentials; sleep 30")
        #expect(run.result.status == 77, "\(run.result.stderr)")
        #expect(run.result.stdout == "minted\n", "\(run.result.stderr)")
        #expect(run.calls == ["POST /app/installations/42/access_tokens", "DELETE /installation/token"])
        #expect(run.result.stderr.contains("; 1 credential revoked (exit 77)"), "\(run.result.stderr)")
        let events = try revocationEvents(run.log)
        #expect(events.count == 1)
        #expect(events.first?["origin"] as? String == "minted by github-app-token")
        #expect(events.first?["kind"] as? String == "GitHub installation token")
        #expect(events.first?["endpoint"] as? String == "https://api.github.com/installation/token")
        #expect(events.first?["outcome"] as? String == "revoked" && events.first?["status"] as? Int == 204, "\(events)")
        #expect(events.first?["why"] as? String == "after a tripwire violation", "\(events)")
        let written = try String(contentsOfFile: run.log, encoding: .utf8) + run.result.stderr + run.result.stdout
        #expect(!written.contains(run.minted) && !written.contains(run.jwt), "a token was written in full")
    }

    /// Drift: a GitHub App token minted through `github-app-token` is revoked when the service's
    /// window closes while the step still sleeps.
    @Test func aGitHubAppTokenIsRevokedWhenItsWindowCloses() throws {
        defer { directory.remove() }
        let run = try mintAppToken(allow: "{ methods: [POST], credential: any, window: 2s }", then: "sleep 4; echo done")
        #expect(run.result.status == 0, "\(run.result.stderr)")
        #expect(run.result.stdout == "minted\ndone\n")
        #expect(run.calls == ["POST /app/installations/42/access_tokens", "DELETE /installation/token"])
        #expect(run.result.stderr.contains("; 1 credential revoked (exit 0)"), "\(run.result.stderr)")
        try expectRevokedWhenTheWindowClosed(log: run.log, origin: "minted by github-app-token", minted: run.minted)
    }
}
