import Foundation
import StepGuardServerTestSupport
import StepGuardTestSupport
import Testing

/// Hole 4 through the built `stepguard run`: python's http.client in the step sends paths as
/// written (origin-form, and absolute-form inside the tunnel) to a Vault stand-in allowed only
/// `/v1/secret/data/ci/*`.
@Suite(.serialized) struct PathNormalisationBinaryTests {
    @Test func pathsOutsideTheAllowedGlobAreDeniedAndTheDecidedPathIsForwarded() throws {
        let vault = try VaultStandIn()
        let policy = vault.policy(allow: [#"{ methods: [GET], paths: ["/v1/secret/data/ci/*"], credential: any }"#])
        let denied = ["/v1/secret/data/ci/../prod/db", "/v1/secret/data/ci/%2e%2e/prod/db", "/v1/secret/data/ci/..%2f..%2fsys/raw",
                      "/v1/secret/data/ci/%2E%2E/prod/db", "/v1/secret/data/ci/..;/prod/db", "/v1/secret/data/ci/%c0%ae%c0%ae/prod/db",
                      "/v1/secret/data/ci/%252e%252e/prod/db", "/v1/secret/data/ci\\..\\prod\\db", "/v1/secret/data/ci/%zz",
                      "https://vault.example.test:8200/v1/secret/data/ci/../prod/db"]
        let allowed = ["/v1/secret/data/ci//app", "/v1/secret/data/ci/./app", "/v1/secret/data/ci/%61pp?version=1",
                       "https://vault.example.test:8200/v1/secret/data/ci/%2e/app"]
        let paths = (denied + allowed).map { "r'\($0)'" }.joined(separator: ", ")
        let script = """
        python3 - <<'PY'
        import http.client, os, ssl, urllib.parse
        proxy = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
        for path in [\(paths)]:
            connection = http.client.HTTPSConnection(proxy.hostname, proxy.port, context=ssl.create_default_context(), timeout=10)
            connection.set_tunnel("vault.example.test", 8200)
            connection.request("GET", path, headers={"X-Vault-Token": "hvs.decoy"})
            response = connection.getresponse()
            print(response.status, response.getheader("X-StepGuard-Decision", "-"))
            connection.close()
        PY
        """
        let (result, events) = try vault.stage.run(policy, script)
        let expected = String(repeating: "403 deny\n", count: denied.count) + String(repeating: "200 -\n", count: allowed.count)
        #expect(result.stdout == expected, "\(result.stderr)")
        #expect(result.status == 77)
        // The upstream saw only the normalised paths that were decided.
        #expect(vault.requests.map(\.uri) == ["/v1/secret/data/ci/app", "/v1/secret/data/ci/app", "/v1/secret/data/ci/app?version=1", "/v1/secret/data/ci/app"])
        let refusals = events.filter { $0["decision"] as? String == "deny" }
        #expect(refusals.count == denied.count)
        #expect(refusals.allSatisfy { $0["type"] as? String == "service" && $0["service"] as? String == "hashicorp-vault" })
    }
}
