import StepGuardSecretsTestSupport
import Testing
@testable import StepGuardSecrets

/// Where a key container found by structure ends (issue #22); the scans of such containers by
/// the built binary are in EndToEndTests' `KeyContainerTests`.
@Suite struct KeyContainerTests {
    @Test func extentChecksTheStructure() throws {
        func extent(_ kind: KeyContainer, _ bytes: [UInt8]) -> Range<Int>? {
            bytes.withUnsafeBytes { kind.extent($0, at: 0) }
        }
        let pfx = KeyContainerBytes.pfx(bag: 2, seed: 10)
        #expect(extent(.pkcs12, pfx) == 0..<pfx.count)
        #expect(extent(.pkcs12, pfx + [0x0A]) == 0..<pfx.count)
        #expect(extent(.pkcs12, KeyContainerBytes.pfx(bag: 3, seed: 10)) == nil)
        #expect(extent(.pkcs12, Array(pfx.dropLast())) == nil)
        #expect(extent(.jks, KeyContainerBytes.javaKeyStore(entryTag: 1, seed: 11)) != nil)
        #expect(extent(.jks, KeyContainerBytes.javaKeyStore(entryTag: 2, seed: 11)) == nil)
        #expect(extent(.derKey, KeyContainerBytes.ed25519DER(seed: 12)) != nil)
        #expect(extent(.derKey, KeyContainerBytes.ed25519DER(seed: 12) + KeyContainerBytes.random(40, seed: 13)) == nil)
        // SEC1 EC and PKCS#1 RSA shapes; a certificate (SEQUENCE of SEQUENCEs) is not a key.
        let sec1 = KeyContainerBytes.der(0x30, KeyContainerBytes.der(0x02, [0x01]) + KeyContainerBytes.der(0x04, KeyContainerBytes.random(32, seed: 14)) + KeyContainerBytes.der(0xA0, [0x06, 0x03, 0x2B, 0x65, 0x70]))
        #expect(extent(.derKey, sec1) == 0..<sec1.count)
        let rsa = KeyContainerBytes.der(0x30, KeyContainerBytes.der(0x02, [0x00]) + (0..<8).flatMap { KeyContainerBytes.der(0x02, KeyContainerBytes.random(64, seed: 20 + UInt64($0))) })
        #expect(extent(.derKey, rsa) == 0..<rsa.count)
        let certificate = KeyContainerBytes.der(0x30, KeyContainerBytes.der(0x30, KeyContainerBytes.der(0x02, [0x01]) + KeyContainerBytes.random(40, seed: 15)) + KeyContainerBytes.der(0x30, [0x06, 0x03, 0x2B, 0x65, 0x70]))
        #expect(extent(.derKey, certificate) == nil)
    }
}
