import Crypto
import FoundationEssentials
import Glibc
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
    ///
    /// With `permittedHosts` (host names, globs or IP literals), the CA carries critical name
    /// constraints: clients refuse any certificate it issues for another name, so even a stolen key
    /// could only impersonate those hosts. An empty list permits no real name at all.
    public init(commonName: String, validity: TimeInterval = 24 * 3600, permittedHosts: [String]? = nil) throws {
        let constraints = permittedHosts.map(Self.nameConstraints)
        let key = P256.Signing.PrivateKey(compactRepresentable: false)  // one key generation, not a search for a compact one
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
                if let constraints { Critical(constraints) }
                SubjectKeyIdentifier(hash: Certificate.PublicKey(key.publicKey))
            },
            issuerPrivateKey: Certificate.PrivateKey(key)
        )
    }

    /// Issues a server certificate for `host` and any `otherNames` (DNS names or IP literals) with a fresh key.
    public func issueServerCertificate(for host: String, otherNames: [String] = [], validity: TimeInterval = 3600) throws -> IssuedCertificate {
        let key = P256.Signing.PrivateKey(compactRepresentable: false)  // one key generation, not a search for a compact one
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

    /// Name constraints permitting exactly the names `hosts` can match: for a glob, the domain below
    /// its last wildcard label (`*.vault.azure.net` → `vault.azure.net` and its subdomains); for an
    /// IP literal, that address alone. Each name type left without an entry gets one that matches
    /// nothing real (the reserved `invalid` domain, 0.0.0.0/32, ::/128), so it stays constrained.
    static func nameConstraints(permitting hosts: [String]) -> NameConstraints {
        var domains: [String] = []
        var unconstrainedDomains = false
        var v4: [ASN1OctetString] = []
        var v6: [ASN1OctetString] = []
        for host in hosts {
            if let ip = ipAddressBytes(host) {
                let range = ip + [UInt8](repeating: 0xFF, count: ip.count)
                if ip.count == 4 { v4.append(ASN1OctetString(contentBytes: ArraySlice(range))) } else { v6.append(ASN1OctetString(contentBytes: ArraySlice(range))) }
                continue
            }
            let labels = host.lowercased().split(separator: ".")
            let literalSuffix = labels.reversed().prefix { !$0.contains("*") && !$0.contains("?") }.reversed()
            if literalSuffix.isEmpty { unconstrainedDomains = true } else { domains.append(literalSuffix.joined(separator: ".")) }
        }
        var permitted: [GeneralName] = []
        if !unconstrainedDomains { permitted += (domains.isEmpty ? ["invalid"] : domains).map { .dnsName($0) } }
        permitted += (v4.isEmpty ? [ASN1OctetString(contentBytes: [0, 0, 0, 0, 255, 255, 255, 255])] : v4).map { .ipAddress($0) }
        permitted += (v6.isEmpty ? [ASN1OctetString(contentBytes: ArraySlice([UInt8](repeating: 0, count: 16) + [UInt8](repeating: 255, count: 16)))] : v6)
            .map { .ipAddress($0) }
        return NameConstraints(permittedSubtrees: permitted)
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
    /// The issued certificate.
    public let certificate: Certificate
    /// The certificate's private key (in memory only).
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
