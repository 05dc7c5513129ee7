import NIOCore
import NIOSSL
import X509

/// The check that an intercepted service's upstream certificate is for the service's *name*.
///
/// NIOSSL's own hostname check also accepts a certificate whose IP-address entry equals the
/// address the proxy connected to, even when the expected server name is a DNS name. A server
/// certified only for its address (or for another name plus its address) could then receive the
/// credential meant for the service. This check runs after the chain is verified and before any
/// byte of the request is written: the certificate must carry a DNS name entry matching the host.
enum UpstreamIdentity {
    /// The name the certificate failed to certify, with what it does name.
    struct Mismatch: Error, CustomStringConvertible {
        let host: String
        let dnsNames: [String]
        var description: String {
            let names = dnsNames.isEmpty ? "no DNS name" : "only \(dnsNames.joined(separator: ", "))"
            return "the certificate from peer does not name \(host) (it names \(names); an IP address entry does not certify a name)"
        }
    }

    /// A TLS client handler for `host` that also requires a DNS-name match (see the type's comment).
    static func clientHandler(context: NIOSSLContext, host: String) throws -> NIOSSLClientHandler {
        try NIOSSLClientHandler._makeSSLClientHandler(context: context, serverHostname: host) { certificate, channel in
            do {
                try requireDNSName(host, in: certificate.toDERBytes())
                return channel.eventLoop.makeSucceededFuture(())
            } catch {
                return channel.eventLoop.makeFailedFuture(error)
            }
        }
    }

    /// Throws unless the DER certificate's subject alternative names include a DNS name for `host`.
    static func requireDNSName(_ host: String, in der: [UInt8]) throws {
        let certificate = try Certificate(derEncoded: der)
        let alternativeNames = try certificate.extensions.subjectAlternativeNames.map(Array.init) ?? []
        let dnsNames = alternativeNames.compactMap { name -> String? in
            if case .dnsName(let dnsName) = name { dnsName } else { nil }
        }
        guard dnsNames.contains(where: { matches(host: host, dnsName: $0) }) else {
            throw Mismatch(host: host, dnsNames: dnsNames.sorted())
        }
    }

    /// RFC 6125 matching: equal ignoring case and a trailing dot, or a wildcard that is the whole
    /// left-most label standing for exactly one label of `host`.
    static func matches(host: String, dnsName: String) -> Bool {
        func normalised(_ name: String) -> String {
            let lowered = name.lowercased()
            return lowered.hasSuffix(".") ? String(lowered.dropLast()) : lowered
        }
        let (host, dnsName) = (normalised(host), normalised(dnsName))
        guard !host.isEmpty, !dnsName.isEmpty else { return false }
        guard dnsName.hasPrefix("*.") else { return host == dnsName }
        let suffix = dnsName.dropFirst(1)  // ".example.com"
        guard suffix.dropFirst().contains("."), let dot = host.firstIndex(of: ".") else { return false }
        return dot > host.startIndex && host[dot...] == suffix
    }
}
