import Foundation
import StepGuardServerTestSupport
import StepGuardTestSupport
import Testing
@testable import StepGuardEgress

/// Issue #16, hole 4: dot segments and encodings cannot take a request outside the `paths:` it is
/// allowed by. Intercepted paths are normalised before they are decided, what cannot be normalised
/// safely is refused, and the path forwarded is the one decided.
@Suite struct PathNormalisationTests {
    static func normal(_ target: String, encodedSlashes: Bool = false) -> String? {
        try? InterceptedPath.normalise(target, encodedSlashes: encodedSlashes)
    }

    @Test func dotSegmentsAreRemovedAndUnreservedEscapesDecoded() {
        let cases: [String: String] = [
            "/v1/secret/data/ci/../prod/db": "/v1/secret/data/prod/db",
            "/v1/secret/data/ci/%2e%2e/prod/db": "/v1/secret/data/prod/db",
            "/v1/secret/data/ci/%2E%2e/prod": "/v1/secret/data/prod",
            "/v1/secret/data/ci/./app": "/v1/secret/data/ci/app",
            "/v1/secret/data/ci//app": "/v1/secret/data/ci/app",
            "/v1/secret/data/ci/%61pp": "/v1/secret/data/ci/app",
            "/v1/secret/data/ci/a%3bb%20c": "/v1/secret/data/ci/a%3Bb%20c",
            "/v1/secret/data/ci/.": "/v1/secret/data/ci/",
            "/v1/secret/data/ci/..": "/v1/secret/data/",
            "/../../etc": "/etc",
            "/": "/",
            "/a/b/?x=../y&z=%2F": "/a/b/?x=../y&z=%2F",
            "/a/%2e%2e?q": "/?q",
            "/caf%C3%A9": "/caf%C3%A9",
        ]
        for (target, expected) in cases {
            #expect(Self.normal(target) == expected, "\(target)")
        }
    }

    @Test func whatAServerCouldReadAsAnotherPathIsRefused() {
        for target in ["/v1/secret/data/ci/..%2f..%2fsys/raw", "/v1/secret/data/ci/..%2F", "/ci/%5c..%5cprod", "/ci\\..\\prod",
                       "/ci/..;/prod", "/ci/.;x/prod", "/ci/%2e%2e;/prod", "/ci/%zz", "/ci/%4", "/ci/%", "/ci/%c0%ae%c0%ae/prod",
                       "/ci/%e2%82", "/ci/%00", "/ci/%0a", "/ci/%252e%252e/prod", "ci/app", "/ci/\u{e9}"] {
            #expect(Self.normal(target) == nil, "\(target)")
        }
    }

    @Test func encodedSlashesOnlyWhereTheCatalogAllowsThemAndNeverBesideADotSegment() {
        #expect(Self.normal("/@acme%2fpkg") == nil)
        #expect(Self.normal("/@acme%2fpkg", encodedSlashes: true) == "/@acme%2Fpkg")
        for target in ["/@acme%2f..%2fother", "/@acme%2f.", "/%2f%2fx", "/@acme%2f", "/x/..%2f"] {
            #expect(Self.normal(target, encodedSlashes: true) == nil, "\(target)")
        }
        #expect(ServiceCatalog.builtIn.definition(named: "npm-publish")?.encodedSlashes == true)
        #expect(ServiceCatalog.builtIn.definition(named: "hashicorp-vault")?.encodedSlashes == false)
    }
}
