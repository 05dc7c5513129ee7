import Crypto
import Foundation
import SwiftASN1
import X509

/// An in-memory certificate authority that issues short-lived TLS server certificates.
///
/// `stepguard run` makes one per run to intercept calls to signing and secret services; the tests
/// make one to stand up local HTTPS servers. The private key lives only in this value's memory:
/// nothing here writes it to disk.
public struct CertificateAuthority: Sendable {
    /// The CA certificate, to be trusted by clients.
    public let certificate: Certificate
    private let privateKey: P256.Signing.PrivateKey

    /// The CA certificate in PEM form, ready to append to a trust bundle.
    public var certificatePEM: String {
        get throws { try certificate.serializeAsPEM().pemString }
    }

    /// Makes a new CA with a fresh P-256 key, valid from a minute ago for `validity`.
    public init(commonName: String, validity: TimeInterval = 24 * 3600) throws {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName {
            OrganizationName("stepguard")
            CommonName(commonName)
        }
        let now = Date()
        self.privateKey = key
        self.certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: now.addingTimeInterval(-60),
            notValidAfter: now.addingTimeInterval(validity),
            issuer: name,
            subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: Certificate.PublicKey(key.publicKey))
            },
            issuerPrivateKey: Certificate.PrivateKey(key)
        )
    }

    /// Issues a server certificate for `host` and any `otherNames` (DNS names or IP literals) with a fresh key.
    public func issueServerCertificate(for host: String, otherNames: [String] = [], validity: TimeInterval = 3600) throws -> IssuedCertificate {
        let key = P256.Signing.PrivateKey()
        let now = Date()
        let subjectNames: [GeneralName] = ([host] + otherNames).map { name in
            if let ip = Self.ipAddressBytes(name) {
                return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(ip)))
            }
            return .dnsName(name)
        }
        let leaf = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: now.addingTimeInterval(-60),
            notValidAfter: now.addingTimeInterval(validity),
            issuer: certificate.subject,
            subject: try DistinguishedName { CommonName(String(host.prefix(64))) },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames(subjectNames)
                AuthorityKeyIdentifier(keyIdentifier: try? certificate.extensions.subjectKeyIdentifier?.keyIdentifier)
            },
            issuerPrivateKey: Certificate.PrivateKey(privateKey)
        )
        return IssuedCertificate(certificate: leaf, privateKey: key)
    }

    private static func ipAddressBytes(_ host: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }
}

/// A certificate issued by a ``CertificateAuthority`` with its private key.
public struct IssuedCertificate: Sendable {
    public let certificate: Certificate
    public let privateKey: P256.Signing.PrivateKey

    /// DER bytes of the certificate.
    public var certificateDER: [UInt8] {
        get throws {
            var serializer = DER.Serializer()
            try serializer.serialize(certificate)
            return serializer.serializedBytes
        }
    }

    /// The private key in PEM (PKCS#8) form. Keep it in memory; never write it to disk.
    public var privateKeyPEM: String { privateKey.pemRepresentation }
}
