import StepGuardCore
import FoundationEssentials
import Glibc

/// What the issuer said about a secret.
public enum VerificationStatus: String, Sendable, Codable, CaseIterable {
    /// The issuer accepted it: it works now. Revoke and rotate it first.
    case live
    /// The issuer rejected it (revoked, expired, never valid) and its format is the issuer's
    /// alone: it does not work. A rejection of a format other instances also issue (a
    /// self-managed GitLab, GitHub Enterprise Server) is ``unknown``.
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
    /// An AWS access key id is verified with the secret access key found beside it
    /// (``AWSKeyPairs``); the secret's group gets the answer about the pair.
    public func verify(_ report: ScanReport) -> [String: VerificationResult] {
        verify(report.secretGroups, pairs: AWSKeyPairs(report.findings, acrossCommits: report.awsPairsAcrossCommits))
    }

    /// Verifies `groups`; the result for each group key. Without the findings around them, an AWS
    /// key id has no secret to be verified with.
    public func verify(_ groups: [SecretGroup]) -> [String: VerificationResult] {
        verify(groups, pairs: AWSKeyPairs([]))
    }

    func verify(_ groups: [SecretGroup], pairs: AWSKeyPairs) -> [String: VerificationResult] {
        let clock = ContinuousClock()
        let start = clock.now
        let budget = Duration.milliseconds(Int64(totalTimeout * 1000))
        var lastRequest: [String: ContinuousClock.Instant] = [:]
        var sent = 0
        var results: [String: VerificationResult] = [:]
        /// One request within the limits, or why none was sent.
        func send(_ call: IssuerCall, _ credential: Credential) -> VerificationResult {
            guard sent < maximumRequests else {
                return VerificationResult(.unknown, "not verified: the limit of \(maximumRequests) requests per scan was reached")
            }
            if let last = lastRequest[call.host] {
                let wait = Duration.milliseconds(Int64(minimumInterval * 1000)) - (clock.now - last)
                if wait > .zero { DetachedThread.sleep(seconds: Double(wait.components.seconds) + Double(wait.components.attoseconds) / 1e18) }
            }
            let remaining = budget - (clock.now - start)
            guard remaining > .milliseconds(100) else {
                return VerificationResult(.unknown, "not verified: the verification time budget (\(Self.seconds(totalTimeout))) was spent")
            }
            let timeout = min(requestTimeout, Double(remaining.components.seconds) + Double(remaining.components.attoseconds) / 1e18)
            sent += 1
            lastRequest[call.host] = clock.now
            return ask(call, credential, timeout: timeout)
        }
        // AWS secret access keys get the answer about their key id's pair, whichever comes first
        // in the report (a secret above its key id, or added in a later commit); the rest, after.
        var awsSecrets: [String] = []
        for group in groups where results[group.key] == nil {
            let secret = group.first.secret
            guard let call = IssuerCall.byRule[group.first.ruleID], call.accepts(secret) else {
                if group.first.ruleID == AWSKeyPairs.secretRule {
                    awsSecrets.append(group.key)
                } else {
                    results[group.key] = VerificationResult(.unknown, "not verified: \(group.first.ruleID) has no read-only identity call stepguard asks")
                }
                continue
            }
            guard Self.isSendable(secret) else {
                results[group.key] = VerificationResult(.unknown, "not verified: the value has characters a header cannot carry")
                continue
            }
            guard case .awsSigV4 = call.authentication else {
                results[group.key] = send(call, Credential(secret: secret))
                continue
            }
            // An AWS key id: signed with each secret access key found beside it (nearest first)
            // until AWS says which; SignatureDoesNotMatch only says that key was not the one.
            let candidates = pairs.secrets(near: group)
            guard !candidates.isEmpty else {
                results[group.key] = VerificationResult(.unknown, "not verified: an AWS access key id alone cannot be verified (sts:GetCallerIdentity must be signed with its secret access key, and no \(AWSKeyPairs.secretRule) was found within \(AWSKeyPairs.maximumDistance) lines of it in the same file)")
                continue
            }
            var result = VerificationResult(.unknown, "not verified")
            var mismatches = 0
            for candidate in candidates {
                guard Self.isSendable(candidate.secret) else { continue }
                result = askAWS(call, Credential(secret: secret, signingSecret: candidate.secret), send)
                if result.detail.hasSuffix(AWSKeyPairs.mismatch) { mismatches += 1; continue }
                if result.status != .unknown, results[candidate.group] == nil || results[candidate.group]?.status == .revoked {
                    results[candidate.group] = VerificationResult(result.status, "with the access key id beside it: " + result.detail)
                }
                break
            }
            if mismatches > 0 && mismatches == candidates.count {
                result = VerificationResult(.unknown, "\(call.issuer) knows this key id (SignatureDoesNotMatch), but the secret access key\(mismatches > 1 ? "s" : "") found beside it \(mismatches > 1 ? "are" : "is") not its secret: the key may be live")
            }
            results[group.key] = result
        }
        for key in awsSecrets where results[key] == nil {
            results[key] = VerificationResult(.unknown, "not verified: a secret access key is verified with the AWS access key id found beside it, and none was (or none AWS answered about)")
        }
        return results
    }

    /// An AWS key pair: the global STS endpoint, then, if it does not know the key id, the other
    /// public partitions' (China, GovCloud), whose keys look the same. Revoked only when all
    /// of them say InvalidClientTokenId.
    func askAWS(_ global: IssuerCall, _ credential: Credential, _ send: (IssuerCall, Credential) -> VerificationResult) -> VerificationResult {
        let first = send(global, credential)
        guard first.status == .revoked else { return first }
        for partition in IssuerCall.awsOtherPartitions {
            let answer = send(partition, credential)
            if answer.status != .revoked { return answer.status == .unknown && !answer.detail.hasSuffix(AWSKeyPairs.mismatch)
                ? VerificationResult(.unknown, "\(first.detail), and \(answer.detail)") : answer }
        }
        return VerificationResult(.revoked, "AWS STS rejected it in every public partition (\(([global] + IssuerCall.awsOtherPartitions).map(\.host).joined(separator: ", ")): 403 InvalidClientTokenId, no such active key id)")
    }

    /// What is sent: the credential, and for AWS the secret access key it is signed with.
    struct Credential {
        var secret: String
        var signingSecret: String? = nil
    }

    /// One request to `call` with `credential`, read as ``VerificationResult``.
    func ask(_ call: IssuerCall, _ credential: Credential, timeout: Double) -> VerificationResult {
        var headers = call.headers.map { ($0.name, $0.value) }
        switch call.authentication {
        case .bearer: headers.append(("Authorization", "Bearer \(credential.secret)"))
        case .header(let name): headers.append((name, credential.secret))
        case .awsSigV4(let region, let service):
            let signer = AWSSigV4(accessKeyID: credential.secret, secretAccessKey: credential.signingSecret ?? "", region: region, service: service)
            var signed = headers + [("Host", call.host), ("X-Amz-Date", AWSSigV4.amzDate(Int(Date().timeIntervalSince1970)))]
            signed.append(("Authorization", signer.authorization(method: call.method, path: call.path, headers: signed, body: Array(call.body.utf8))))
            headers = signed.filter { $0.0 != "Host" }  // the client sends Host from the URL
        }
        let asked = "\(call.issuer) (\(call.method) \(call.url))"
        let response: HTTPResponse
        do {
            response = try transport.send(HTTPRequest(method: call.method == "POST" ? .post : .get, url: call.url, headers: headers, body: Array(call.body.utf8)), timeout: timeout)
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
        case .awsSTS:
            if status == 200 { return VerificationResult(.live, "\(asked) accepted it (GetCallerIdentity: 200)") }
            let code = Self.xmlElement("Code", in: response.body)
            if status == 403 && code == "InvalidClientTokenId" {
                return VerificationResult(.revoked, "\(asked) rejected it (403 InvalidClientTokenId: AWS has no such active key id)")
            }
            if status == 403 && code == "SignatureDoesNotMatch" {
                return VerificationResult(.unknown, "\(asked) answered 403 " + AWSKeyPairs.mismatch)
            }
            return VerificationResult(.unknown, "\(asked) answered \(status)\(code.map { " " + Self.printable($0) } ?? "")")
        case .status, .statusForbiddenIsLive:
            if (200..<300).contains(status) { return VerificationResult(.live, "\(asked) accepted it (\(status))") }
            if status == 401 {
                if let others = call.otherIssuers {
                    return VerificationResult(.unknown, "rejected by \(call.host) (401); \(others) may have issued it: the format does not tell")
                }
                return VerificationResult(.revoked, "\(asked) rejected it (401)")
            }
            if status == 403 && call.answer == .statusForbiddenIsLive {
                return VerificationResult(.live, "\(asked) authenticated it but refused this resource (403): the key works")
            }
            return VerificationResult(.unknown, "\(asked) answered \(status)")
        }
    }

    /// The text of the first `<name>` element of an XML body (AWS error codes), if any.
    static func xmlElement(_ name: String, in body: [UInt8]) -> String? {
        let text = String(decoding: body.prefix(64 * 1024), as: UTF8.self)
        guard let open = text.scalarRange(of: "<\(name)>") else { return nil }
        let rest = String(text[open.upperBound...])
        guard let close = rest.scalarRange(of: "</\(name)>") else { return nil }
        return String(rest[..<close.lowerBound])
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
