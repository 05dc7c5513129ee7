import StepGuardServerTestSupport
import Foundation
import StepGuardPolicy
import StepGuardTestSupport
import Testing
@testable import StepGuardIdentity

@Suite("CI token sources", .serialized)
struct TokenSourceTests {
    let issuer = JOSEFixture.shared

    @Test func detectsTheProvider() {
        #expect(TokenSource.detect(environment: ["GITHUB_ACTIONS": "true"]) == .github)
        #expect(TokenSource.detect(environment: ["GITLAB_CI": "true"]) == .gitlab)
        #expect(TokenSource.detect(environment: ["BUILDKITE": "true"]) == .buildkite)
        #expect(TokenSource.detect(environment: ["CIRCLECI": "true"]) == .circleci)
        #expect(TokenSource.detect(environment: ["TF_BUILD": "True"]) == .azure)
        #expect(TokenSource.detect(environment: ["CI": "true"]) == nil)
    }

    @Test func github() async throws {
        let server = try LocalHTTPSServer()
        defer { server.stop() }
        let token = issuer.token()
        server.write("github-bearer", "request-token-123")
        server.write("github-token", token)
        let environment = [
            "GITHUB_ACTIONS": "true",
            "ACTIONS_ID_TOKEN_REQUEST_URL": server.baseURL + "/github/token?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "request-token-123",
        ]
        let acquirer = TokenAcquirer(options: TokenAcquisitionOptions(transport: server.transport))
        let got = try await acquirer.acquire(source: nil, audience: "step guard/x", environment: environment)
        #expect(got == token)
        #expect(server.read("github-last-query") == "api-version=2.0&audience=step%20guard%2Fx")

        var wrong = environment
        wrong["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] = "stale"
        let error = await expectRejectedAsync(.tokenSource) { _ = try await acquirer.acquire(source: .github, audience: "a", environment: wrong) }
        #expect(error?.detail.contains("HTTP 401") == true)
        #expect(error?.description.contains("stale") == false)
        #expect(error?.description.contains("api-version") == false) // the query is not shown

        var missing = environment
        missing["ACTIONS_ID_TOKEN_REQUEST_URL"] = nil
        let unavailable = await expectRejectedAsync(.tokenUnavailable) { _ = try await acquirer.acquire(source: .github, audience: "a", environment: missing) }
        #expect(unavailable?.remedy.contains("id-token: write") == true)
    }

    @Test func azure() async throws {
        let server = try LocalHTTPSServer()
        defer { server.stop() }
        let token = issuer.token(alg: .ES256)
        server.write("azure-bearer", "system-access")
        server.write("azure-token", token)
        let environment = ["TF_BUILD": "True", "SYSTEM_OIDCREQUESTURI": server.baseURL + "/azure/token", "SYSTEM_ACCESSTOKEN": "system-access"]
        let acquirer = TokenAcquirer(options: TokenAcquisitionOptions(transport: server.transport))
        #expect(try await acquirer.acquire(source: nil, audience: "stepguard", environment: environment) == token)
        #expect(server.read("azure-last-query") == "api-version=7.1-preview.1")
        #expect(try server.count("/azure/token") == 1)

        let missing = await expectRejectedAsync(.tokenUnavailable) {
            _ = try await acquirer.acquire(source: .azure, audience: "a", environment: ["SYSTEM_OIDCREQUESTURI": server.baseURL + "/azure/token"])
        }
        #expect(missing?.detail.contains("SYSTEM_ACCESSTOKEN") == true)
    }

    @Test func tokenEndpointUnreachableFailsClosed() async throws {
        let server = try LocalHTTPSServer()
        let url = server.baseURL + "/github/token"
        server.stop()
        let acquirer = TokenAcquirer(options: TokenAcquisitionOptions(transport: server.transport))
        let error = await expectRejectedAsync(.tokenSource) {
            _ = try await acquirer.acquire(source: .github, audience: "a", environment: ["ACTIONS_ID_TOKEN_REQUEST_URL": url, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "t"])
        }
        #expect(error?.detail.contains("curl error 7") == true)
    }

    @Test func environmentVariableSources() async throws {
        let acquirer = TokenAcquirer()
        let token = issuer.token()
        #expect(try await acquirer.acquire(source: nil, audience: "a", environment: ["GITLAB_CI": "true", "STEPGUARD_ID_TOKEN": token + "\n"]) == token)
        #expect(try await acquirer.acquire(source: nil, audience: "a", environment: ["CIRCLECI": "true", "CIRCLE_OIDC_TOKEN_V2": token]) == token)
        #expect(try await acquirer.acquire(source: .environment("MY_JWT"), audience: "a", environment: ["MY_JWT": token]) == token)
        let error = await expectRejectedAsync(.tokenUnavailable) { _ = try await acquirer.acquire(source: .gitlab, audience: "stepguard", environment: [:]) }
        #expect(error?.detail.contains("STEPGUARD_ID_TOKEN") == true)
        #expect(error?.remedy.contains("id_tokens") == true)
        await expectRejectedAsync(.tokenUnavailable) { _ = try await acquirer.acquire(source: nil, audience: "a", environment: ["CIRCLECI": "true"]) }
        await expectRejectedAsync(.tokenUnavailable) { _ = try await acquirer.acquire(source: nil, audience: "a", environment: [:]) }
        await expectRejectedAsync(.tokenSource) { _ = try await acquirer.acquire(source: .environment("E"), audience: "a", environment: ["E": "  \n"]) }
    }

    @Test func fileSource() async throws {
        let dir = try TemporaryDirectory(prefix: "stepguard-identity")
        defer { dir.remove() }
        let token = issuer.token()
        try dir.write("token", token + "\n")
        let acquirer = TokenAcquirer()
        #expect(try await acquirer.acquire(source: .file(dir.path + "/token"), audience: "a", environment: [:]) == token)
        await expectRejectedAsync(.tokenUnavailable) { _ = try await acquirer.acquire(source: .file(dir.path + "/none"), audience: "a", environment: [:]) }
        await expectRejectedAsync(.tokenSource) { _ = try await acquirer.acquire(source: .file(dir.path), audience: "a", environment: [:]) }
    }

    /// A fake `buildkite-agent` on PATH.
    func fakeAgent(_ script: String) throws -> TemporaryDirectory {
        let dir = try TemporaryDirectory(prefix: "stepguard-identity")
        try dir.write("buildkite-agent", "#!/bin/sh\n" + script, mode: 0o755)
        return dir
    }

    @Test func buildkite() async throws {
        let token = issuer.token()
        let dir = try fakeAgent("""
            [ "$1 $2 $3 $4" = "oidc request-token --audience stepguard" ] || { echo "bad args: $*" >&2; exit 2; }
            echo '\(token)'
            """)
        defer { dir.remove() }
        let environment = ["BUILDKITE": "true", "PATH": dir.path + ":/usr/bin:/bin"]
        #expect(try await TokenAcquirer().acquire(source: nil, audience: "stepguard", environment: environment) == token)
        let error = await expectRejectedAsync(.tokenSource) { _ = try await TokenAcquirer().acquire(source: .buildkite, audience: "other", environment: environment) }
        #expect(error?.detail.contains("exited with status 2: bad args: oidc request-token --audience other") == true)
    }

    @Test func buildkiteTimeoutAndMissingAgent() async throws {
        let dir = try fakeAgent("sleep 30\n")
        defer { dir.remove() }
        let acquirer = TokenAcquirer(options: TokenAcquisitionOptions(commandTimeout: 0.5))
        let started = Date()
        let error = await expectRejectedAsync(.tokenSource) {
            _ = try await acquirer.acquire(source: .buildkite, audience: "a", environment: ["PATH": dir.path + ":/usr/bin:/bin"])
        }
        #expect(error?.detail.contains("did not finish within") == true)
        #expect(Date().timeIntervalSince(started) < 10)
        await expectRejectedAsync(.tokenUnavailable) { _ = try await acquirer.acquire(source: .buildkite, audience: "a", environment: ["PATH": "/nonexistent"]) }
    }

    @Test func acquireAndVerifyEndToEnd() async throws {
        let server = try LocalHTTPSServer(jwks: issuer.jwks())
        defer { server.stop() }
        server.write("github-bearer", "rt")
        server.write("github-token", issuer.token())
        let store = KeyStore(location: .url(server.jwksURL), transport: server.transport, options: KeyStoreOptions(cacheDirectory: nil))
        let verifier = IdentityVerifier(rules: defaultRules(claims: ["repository": [.glob(try! Glob("acme/*"))]]), keyStore: store,
                                        tokenSource: .github, acquisition: TokenAcquisitionOptions(transport: server.transport),
                                        now: { Date(timeIntervalSince1970: JOSEFixture.now) })
        let environment = ["ACTIONS_ID_TOKEN_REQUEST_URL": server.baseURL + "/github/token", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "rt"]
        let identity = try await verifier.acquireAndVerify(environment: environment)
        #expect(identity?.claims["repository"] == "acme/app")
        #expect(server.read("github-last-query") == "audience=stepguard")

        // No token available: required → rejected; not required → nil.
        await expectRejectedAsync(.tokenUnavailable) { _ = try await verifier.acquireAndVerify(environment: [:]) }
        let optional = IdentityVerifier(rules: defaultRules(), keyStore: store, tokenSource: .github, required: false)
        #expect(try await optional.acquireAndVerify(environment: [:]) == nil)
        // A token that is there but invalid is rejected even when not required.
        server.write("github-token", issuer.token(claims: JOSEFixture.claims(["aud": "other"])))
        let optionalWithToken = IdentityVerifier(rules: defaultRules(), keyStore: store, tokenSource: .github, required: false,
                                                 acquisition: TokenAcquisitionOptions(transport: server.transport),
                                                 now: { Date(timeIntervalSince1970: JOSEFixture.now) })
        await expectRejectedAsync(.audience) { _ = try await optionalWithToken.acquireAndVerify(environment: environment) }
    }
}
