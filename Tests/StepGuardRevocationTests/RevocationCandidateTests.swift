import StepGuardCore
import Foundation
import StepGuardEgress
@testable import StepGuardRevocation
import Testing

/// Which of the credentials a step held revocation concerns, and how each would be revoked.
@Suite struct RevocationCandidateTests {
    static func alnum(_ count: Int) -> String {
        String((0..<count).map { _ in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".randomElement()! })
    }

    @Test func theEnvironmentsRevocableAndNonRevocableCredentials() throws {
        let installation = "gh" + "s_" + Self.alnum(36)
        let payload = Base64URL.encode(Array(#"{"iss":"https://issuer.test","exp":1900000000}"#.utf8))
        let jwt = "eyJhbGciOiJSUzI1NiJ9." + payload + "." + Self.alnum(40)
        let environment = [
            "GITHUB_TOKEN": installation, "GH_TOKEN": installation,  // one token, once
            "VAULT_TOKEN": "hv" + "b." + Self.alnum(120), "VAULT_ADDR": "https://vault.test:8200",
            "AWS_SESSION_TOKEN": Self.alnum(200), "AWS_CREDENTIAL_EXPIRATION": "2030-01-01T00:00:00Z",
            "ID_TOKEN": jwt, "PATH": "/usr/bin",
        ]
        let held = CredentialRevocation.held(environment: environment, minted: [])
        #expect(held.map(\.kind).sorted() == ["AWS STS session credentials", "GitHub installation token", "JWT (an OIDC ID token or the like)",
                                              "Vault batch token"])
        let github = try #require(held.first { $0.kind == "GitHub installation token" })
        #expect(github.endpoint == "https://api.github.com/installation/token")
        #expect(github.request?.method == .delete)
        #expect(github.request?.headers.contains { $0.0 == "Authorization" && $0.1 == "Bearer \(installation)" } == true)
        #expect(!github.redacted.contains(installation))
        #expect(held.filter { $0.kind != "GitHub installation token" }.allSatisfy { $0.endpoint == nil })
        #expect(held.first { $0.kind.hasPrefix("JWT") }?.notRevocable?.contains("2030-03-17T17:46:40Z") == true)
        #expect(held.first { $0.kind.hasPrefix("AWS") }?.notRevocable?.contains("expires at 2030-01-01T00:00:00Z") == true)
    }

    @Test func aVaultServiceTokenIsRevokedAtVaultAddrAndOnlyThere() throws {
        let token = "hv" + "s." + Self.alnum(90)
        let withAddress = CredentialRevocation.held(environment: ["VAULT_TOKEN": token, "VAULT_ADDR": "https://vault.test:8200/",
                                                                  "VAULT_NAMESPACE": "ci"], minted: [])
        #expect(withAddress.first?.endpoint == "https://vault.test:8200/v1/auth/token/revoke-self")
        #expect(withAddress.first?.request?.headers.contains { $0.0 == "X-Vault-Namespace" && $0.1 == "ci" } == true)
        let without = CredentialRevocation.held(environment: ["VAULT_TOKEN": token], minted: [])
        #expect(without.first?.endpoint == nil)
        #expect(without.first?.notRevocable?.contains("VAULT_ADDR is not set") == true)
    }

    /// A GitHub App installation token minted through `github-app-token` is revoked like
    /// GITHUB_TOKEN, at api.github.com where it was minted, whatever GITHUB_API_URL says.
    @Test func aMintedGitHubAppTokenIsRevokedAtGitHubsAPI() throws {
        let minted = MintedCredentials(lifetime: 600)
        let token = "gh" + "s_" + Self.alnum(36)
        minted.remember(token, service: "github-app-token", now: Date())
        let held = CredentialRevocation.held(environment: ["GITHUB_API_URL": "https://ghes.example.test/api/v3"], minted: minted.held())
        let app = try #require(held.first)
        #expect(held.count == 1)
        #expect(app.kind == "GitHub installation token")
        #expect(app.origin == "minted by github-app-token")
        #expect(app.endpoint == "https://api.github.com/installation/token")
        #expect(app.request?.method == .delete)
        #expect(app.request?.headers.contains { $0.0 == "Authorization" && $0.1 == "Bearer \(token)" } == true)
    }

    @Test func mintedTokensByService() {
        let minted = MintedCredentials(lifetime: 600)
        let now = Date()
        minted.remember("pyp" + "i-" + Self.alnum(60), service: "pypi-upload", now: now)
        minted.remember("ya" + "29." + Self.alnum(100), service: "gcp-iamcredentials", now: now.addingTimeInterval(1))
        minted.remember("np" + "m_" + Self.alnum(36), service: "npm-publish", now: now.addingTimeInterval(2))
        let held = CredentialRevocation.held(environment: [:], minted: minted.held(now: now.addingTimeInterval(3)))
        #expect(held.map(\.origin) == ["minted by pypi-upload", "minted by gcp-iamcredentials", "minted by npm-publish"])
        #expect(held.map(\.endpoint) == [nil, "https://oauth2.googleapis.com/revoke", nil])
        #expect(held[0].notRevocable?.contains("15 minutes") == true)
        #expect(minted.held(now: now.addingTimeInterval(700)).isEmpty, "past their lifetime they are no longer held")
    }
}
