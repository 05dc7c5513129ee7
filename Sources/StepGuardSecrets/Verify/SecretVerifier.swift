import StepGuardCore
import FoundationEssentials
import Glibc

/// What the issuer said about a secret.
public enum VerificationStatus: String, Sendable, Codable, CaseIterable {
    /// The issuer accepted it: it works now. Revoke and rotate it first.
    case live
    /// The issuer rejected it (revoked, expired, never valid, or issued by another instance of
    /// the service, e.g. a self-managed GitLab): it does not work against this issuer.
    case revoked
    /// No answer that says either: no identity call for this rule, unreachable, time or request
    /// budget spent, rate-limited, or an answer stepguard does not know how to read.
    case unknown
}

/// The verification of one secret: the status and who said it (never the secret).
public struct VerificationResult: Sendable, Equatable {
    /// Live, revoked or unknown.
    public var status: VerificationStatus
    /// Who was asked and what it answered, or why nothing was asked.
    public var detail: String

    /// Creates a result.
    public init(_ status: VerificationStatus, _ detail: String) {
        self.status = status
        self.detail = detail
    }
}

/// Asks each secret's issuer, through its read-only identity call (``IssuerCall``), whether the
/// secret works. Opt-in (`scan --verify`), one request per distinct secret, sequential, bounded
/// in time per request and in total, in count, and in rate per host. A result never removes a
/// finding: a revoked secret is still reported (and still fails the scan), because the answer
/// comes from the network and the secret is in the code either way.
public struct SecretVerifier: Sendable {
    /// The HTTP client.
    public var transport: any HTTPClient
    /// Time limit of one request, in seconds.
    public var requestTimeout: Double = 5
    /// Time limit of all requests together, in seconds; secrets not asked by then are unknown.
    public var totalTimeout: Double = 30
    /// At most this many requests per scan; further secrets are unknown.
    public var maximumRequests = 100
    /// At least this many seconds between two requests to the same host.
    public var minimumInterval: Double = 0.25

    /// Creates a verifier over `transport`.
    public init(transport: any HTTPClient) {
        self.transport = transport
    }

    /// Verifies every group of `report`; the result for each group key (``SecretGroup/key``).
    public func verify(_ report: ScanReport) -> [String: VerificationResult] {
        verify(report.secretGroups)
    }

    /// Verifies `groups`; the result for each group key.
    public func verify(_ groups: [SecretGroup]) -> [String: VerificationResult] {
        let clock = ContinuousClock()
        let start = clock.now
        let budget = Duration.milliseconds(Int64(totalTimeout * 1000))
        var lastRequest: [String: ContinuousClock.Instant] = [:]
        var sent = 0
        var results: [String: VerificationResult] = [:]
        for group in groups where results[group.key] == nil {
            let secret = group.first.secret
            guard let call = IssuerCall.byRule[group.first.ruleID], call.accepts(secret) else {
                results[group.key] = VerificationResult(.unknown, "not verified: \(group.first.ruleID) has no read-only identity call stepguard asks")
                continue
            }
            guard Self.isSendable(secret) else {
                results[group.key] = VerificationResult(.unknown, "not verified: the value has characters a header cannot carry")
                continue
            }
            guard sent < maximumRequests else {
                results[group.key] = VerificationResult(.unknown, "not verified: the limit of \(maximumRequests) requests per scan was reached")
                continue
            }
            if let last = lastRequest[call.host] {
                let wait = Duration.milliseconds(Int64(minimumInterval * 1000)) - (clock.now - last)
                if wait > .zero { DetachedThread.sleep(seconds: Double(wait.components.seconds) + Double(wait.components.attoseconds) / 1e18) }
            }
            let remaining = budget - (clock.now - start)
            guard remaining > .milliseconds(100) else {
                results[group.key] = VerificationResult(.unknown, "not verified: the verification time budget (\(Self.seconds(totalTimeout))) was spent")
                continue
            }
            let timeout = min(requestTimeout, Double(remaining.components.seconds) + Double(remaining.components.attoseconds) / 1e18)
            sent += 1
            lastRequest[call.host] = clock.now
            results[group.key] = ask(call, secret: secret, timeout: timeout)
        }
        return results
    }

    /// One request to `call` with `secret`, read as ``VerificationResult``.
    func ask(_ call: IssuerCall, secret: String, timeout: Double) -> VerificationResult {
        var headers = call.headers.map { ($0.name, $0.value) }
        switch call.authentication {
        case .bearer: headers.append(("Authorization", "Bearer \(secret)"))
        case .header(let name): headers.append((name, secret))
        }
        let asked = "\(call.issuer) (\(call.method) \(call.url))"
        let response: HTTPResponse
        do {
            response = try transport.send(HTTPRequest(method: call.method == "POST" ? .post : .get, url: call.url, headers: headers), timeout: timeout)
        } catch {
            return VerificationResult(.unknown, "\(asked) did not answer: \(error)")
        }
        return Self.read(response, from: call, asked: asked)
    }

    /// Reads an answer of `call`.
    static func read(_ response: HTTPResponse, from call: IssuerCall, asked: String) -> VerificationResult {
        let status = response.status
        switch call.answer {
        case .slack:
            guard status == 200,
                  let object = (try? StrictJSON.parse(response.body))?.objectValue,
                  case let .bool(ok)? = object["ok"] else {
                return VerificationResult(.unknown, "\(asked) answered \(status) without a Slack API result")
            }
            if ok { return VerificationResult(.live, "\(asked) accepted it (ok: true)") }
            let error = object["error"]?.stringValue ?? ""
            let rejections: Set<String> = ["invalid_auth", "token_revoked", "account_inactive", "token_expired", "not_authed"]
            if rejections.contains(error) { return VerificationResult(.revoked, "\(asked) rejected it (\(error))") }
            return VerificationResult(.unknown, "\(asked) answered ok: false (\(error.isEmpty ? "no error given" : Self.printable(error)))")
        case .status, .statusForbiddenIsLive:
            if (200..<300).contains(status) { return VerificationResult(.live, "\(asked) accepted it (\(status))") }
            if status == 401 { return VerificationResult(.revoked, "\(asked) rejected it (401)") }
            if status == 403 && call.answer == .statusForbiddenIsLive {
                return VerificationResult(.live, "\(asked) authenticated it but refused this resource (403): the key works")
            }
            return VerificationResult(.unknown, "\(asked) answered \(status)")
        }
    }

    /// Whether `secret` can travel in a header as it is: visible ASCII only (no space, CR, LF),
    /// at most 1024 bytes. Anything else is not sent.
    static func isSendable(_ secret: String) -> Bool {
        !secret.isEmpty && secret.utf8.count <= 1024 && secret.utf8.allSatisfy { (0x21...0x7E).contains($0) }
    }

    /// At most 64 printable ASCII characters of an issuer's error code, for messages.
    static func printable(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.prefix(64).filter { (0x20...0x7E).contains($0.value) }))
    }

    static func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value)) s" : "\(value) s"
    }
}

extension Dictionary where Key == String, Value == VerificationResult {
    /// `2 live, 1 revoked, 3 unknown` (statuses with a count only).
    public var verificationSummary: String {
        let counts = VerificationStatus.allCases.compactMap { status -> String? in
            let n = values.filter { $0.status == status }.count
            return n > 0 ? "\(n) \(status.rawValue)" : nil
        }
        return counts.joined(separator: ", ")
    }
}
