import Crypto
import Foundation
import StepGuardAudit
import StepGuardCore
import StepGuardEgress
import StepGuardPolicy
import StepGuardSecrets
import StepGuardTestSupport
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Helpers shared by the egress tests: policies, sessions, raw sockets, clients, test JWTs.
enum Egress {
    static func policy(_ yaml: String, in directory: TemporaryDirectory? = nil) throws -> Policy {
        try PolicyLoader.load(yaml: yaml, source: "test-policy.yaml", baseDirectory: directory?.path("."))
    }

    /// The secret scanner's built-in rules, which classify tokens in flight in production.
    static let detector: (any CredentialDetector)? = try? SecretDetector.builtIn(prefilter: .keywords)

    static func trail(log: String? = nil, auditOnly: Bool = false) throws -> AuditTrail {
        try AuditTrail(context: .init(policy: "test", step: nil, auditOnly: auditOnly, command: "test"), logPath: log,
                       printer: { _ in }, annotationPrinter: { _ in })
    }

    /// Counts calls of `stopStep`.
    final class StopCounter: Sendable {
        let count = Atomic<Int>(0)
        var value: Int { count.load(ordering: .relaxed) }
        var closure: @Sendable () -> Void { { self.count.add(1, ordering: .relaxed) } }
    }

    static func session(_ policy: Policy, trail: AuditTrail, verifier: WorkloadTokenVerifier? = nil, identity: JobIdentity? = nil,
                        limits: ProxyLimits = ProxyLimits(), stop: StopCounter = StopCounter()) async throws -> EgressSession {
        try EgressSession.start(policy: policy, identity: identity, trail: trail, verifier: verifier, detector: detector, limits: limits, stopStep: stop.closure)
    }

    /// A policy that allows every loopback address, where the tests' servers listen.
    static let loopbackPolicy = "version: 1\negress: { default: allow, allow: [127.0.0.0/8] }\n"

    /// A session with ``loopbackPolicy``, recording to `trail` (a fresh one that logs nowhere when nil).
    static func loopbackSession(trail: AuditTrail? = nil, limits: ProxyLimits = ProxyLimits(),
                                stop: StopCounter = StopCounter()) async throws -> EgressSession {
        try await session(try policy(loopbackPolicy), trail: try trail ?? Egress.trail(), limits: limits, stop: stop)
    }

    /// Runs curl through the session's proxy; returns (status line code, body, stderr).
    static func curl(_ session: EgressSession, _ arguments: [String], timeout: TimeInterval = 20) throws -> ProgramResult {
        let environment = TestEnvironment.with(session.environment)
        return try ProgramRun.start("/usr/bin/curl", ["-s", "-S", "--suppress-connect-headers", "--max-time", "15"] + arguments, environment: environment).wait(timeout: timeout)
    }

    /// Sends `request` to 127.0.0.1:`port` over a plain socket and reads until the peer closes or `timeout`.
    static func raw(port: Int, _ request: String, timeout: TimeInterval = 5) -> String {
        guard let fd = LoopbackSocket.connect(port: port, receiveTimeout: Int(timeout)) else { return "" }
        defer { close(fd) }
        _ = Array(request.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        return receiveAll(fd)
    }

    /// Reads from `fd` until the peer closes (or the socket's receive timeout).
    static func receiveAll(_ fd: Int32) -> String {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            received += buffer[0..<n]
        }
        return String(decoding: received, as: UTF8.self)
    }

    /// The JSON object in the body of a raw HTTP `response` (stepguard's deny and error answers).
    static func jsonBody(_ response: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws -> [String: Any] {
        let body = try #require(response.components(separatedBy: "\r\n\r\n").last, sourceLocation: sourceLocation)
        return try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any], "\(response)", sourceLocation: sourceLocation)
    }

    static func statusCode(_ response: String) -> Int? {
        guard response.hasPrefix("HTTP/1.") else { return nil }
        return Int(response.split(separator: " ").dropFirst().first ?? "")
    }
}

/// The test issuer as the proxy's tests use it: the job identity its tokens name, and a verifier
/// that checks them as `IdentityWorkloadVerifier` does in production (signature, issuer, expiry,
/// `sub`, pinned claims).
extension TestOIDCIssuer {
    /// A token for `subject` (audience `stepguard`), signed with `key` when given (a forgery).
    func token(subject: String, claims: [String: Any] = [:], lifetime: TimeInterval = 600, issuedAt: Date = Date(),
               key: P256.Signing.PrivateKey? = nil) -> String {
        token(subject: subject, audience: "stepguard", claims: claims, issuedAt: issuedAt, lifetime: lifetime, notBefore: false, signingKey: key)
    }

    func identity(subject: String, claims: [String: ClaimValue] = [:]) -> JobIdentity {
        JobIdentity(issuer: issuer, subject: subject, claims: claims, expiresAt: Date().addingTimeInterval(600))
    }

    /// Verifies the ES256 signature, issuer, expiry, `sub` and the pinned claims.
    struct Verifier: WorkloadTokenVerifier {
        let publicKey: P256.Signing.PublicKey
        let identity: JobIdentity
        let pinned: [String]

        func check(token: String, now: Date) -> WorkloadTokenCheck {
            let parts = token.split(separator: ".")
            guard parts.count == 3, let signatureData = Self.decode(parts[2]),
                  let signature = try? P256.Signing.ECDSASignature(rawRepresentation: signatureData),
                  publicKey.isValidSignature(signature, for: Data("\(parts[0]).\(parts[1])".utf8)) else { return .unverified("bad signature") }
            guard let payload = Self.decode(parts[1]).flatMap({ try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }) else { return .unverified("bad payload") }
            guard payload["iss"] as? String == identity.issuer else { return .unverified("other issuer") }
            guard let exp = payload["exp"] as? Double, exp > now.timeIntervalSince1970 else { return .unverified("expired") }
            guard payload["sub"] as? String == identity.subject else { return .otherIdentity("sub '\(payload["sub"] ?? "")' is not '\(identity.subject)'") }
            for claim in pinned {
                if case .string(let value)? = identity.claims[claim], payload[claim] as? String != value { return .otherIdentity("claim \(claim) differs") }
            }
            return .sameIdentity
        }

        static func decode(_ text: Substring) -> Data? {
            var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            while base64.count % 4 != 0 { base64 += "=" }
            return Data(base64Encoded: base64)
        }
    }

    func verifier(for identity: JobIdentity, pinned: [String] = []) -> Verifier {
        Verifier(publicKey: publicKey, identity: identity, pinned: pinned)
    }
}

extension EgressSession {
    /// The trust bundle of a session whose policy names services; a path that does not exist
    /// (so that the client using it fails) when there is none.
    var serviceTrustBundle: String { trustBundlePath ?? "/nonexistent/stepguard-names-no-service" }
}
