import Foundation
import StepGuardTestSupport
import Testing
import X509
@testable import StepGuardEgress

/// The per-run CA carries name constraints, so that it can only vouch for the intercepted hosts.
/// Verification is done by OpenSSL (`openssl verify`), as clients do.
@Suite struct CertificateAuthorityTests {
    @Test func constraintsFollowTheServiceHosts() {
        let constraints = CertificateAuthority.nameConstraints(permitting: ["fulcio.sigstore.dev", "*.vault.azure.net", "kms.*.amazonaws.com", "127.0.0.1"])
        #expect(constraints.permittedDNSDomains.sorted() == ["amazonaws.com", "fulcio.sigstore.dev", "vault.azure.net"])
        #expect(constraints.permittedIPRanges.map { Array($0.bytes) } == [[127, 0, 0, 1, 255, 255, 255, 255], [UInt8](repeating: 0, count: 16) + [UInt8](repeating: 255, count: 16)])
        let none = CertificateAuthority.nameConstraints(permitting: [])
        #expect(Array(none.permittedDNSDomains) == ["invalid"])
        #expect(none.permittedIPRanges.map { Array($0.bytes) }.first == [0, 0, 0, 0, 255, 255, 255, 255])
    }

    @Test func openSSLAcceptsPermittedHostsAndRefusesOthers() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let authority = try CertificateAuthority(commonName: "constrained test CA", permittedHosts: ["*.vault.azure.net", "localhost"])
        let caPath = try directory.write("ca.pem", try authority.certificatePEM)
        func verify(_ host: String) throws -> ProgramResult {
            let leaf = try authority.issueServerCertificate(for: host)
            let leafPath = try directory.write("\(host).pem", try leaf.certificate.serializeAsPEM().pemString)
            return try ProgramRun.start("/usr/bin/openssl", ["verify", "-CAfile", caPath, leafPath]).wait()
        }
        #expect(try verify("team.vault.azure.net").status == 0)
        #expect(try verify("localhost").status == 0)
        let outside = try verify("github.com")
        #expect(outside.status != 0)
        #expect((outside.stdout + outside.stderr).contains("permitted subtree violation"))
        #expect(try verify("127.0.0.1").status != 0)
    }

    @Test func withoutServicesNoCAIsMadeAndTheStepsTrustSettingsStand() async throws {
        let session = try await Egress.loopbackSession()
        defer { session.stop() }
        #expect(session.certificateAuthorityPEM == nil)
        #expect(session.trustBundlePath == nil)
        for name in ["SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "AWS_CA_BUNDLE", "GIT_SSL_CAINFO"] {
            #expect(session.environment[name] == nil, "\(name)")
        }
        #expect(session.environment["HTTPS_PROXY"] == "http://127.0.0.1:\(session.port)")
    }
}
