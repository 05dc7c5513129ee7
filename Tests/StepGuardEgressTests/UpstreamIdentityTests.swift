@testable import StepGuardEgress
import Testing

/// The DNS-name match an intercepted upstream's certificate must pass (RFC 6125, wildcards strict).
struct UpstreamIdentityTests {
    @Test(arguments: [
        ("fulcio.sigstore.dev", "fulcio.sigstore.dev"),
        ("Fulcio.Sigstore.Dev.", "fulcio.sigstore.dev"),
        ("fulcio.sigstore.dev", "FULCIO.sigstore.dev."),
        ("vault.corp.example", "*.corp.example"),
    ])
    func namesThatMatch(host: String, dnsName: String) {
        #expect(UpstreamIdentity.matches(host: host, dnsName: dnsName))
    }

    @Test(arguments: [
        ("fulcio.sigstore.dev", "rekor.sigstore.dev"),
        ("a.b.corp.example", "*.corp.example"),     // a wildcard stands for one label only
        ("corp.example", "*.corp.example"),         // and for a label that exists
        ("example", "*.example"),                   // no wildcard over a single-label suffix
        ("fulcio.sigstore.dev", "f*.sigstore.dev"),  // partial-label wildcards are not honoured
        ("fulcio.sigstore.dev", "*"),
        ("127.0.0.1", "127.0.0.1.evil"),
        ("", ""),
    ])
    func namesThatDoNotMatch(host: String, dnsName: String) {
        #expect(!UpstreamIdentity.matches(host: host, dnsName: dnsName))
    }
}
