import Foundation
import StepGuardTestSupport
import Testing

/// Secrets made at run time from random characters (never committed as literals).
enum RandomSecret {
    static func string(_ alphabet: String, _ count: Int) -> String {
        let characters = Array(alphabet)
        return String((0..<count).map { _ in characters.randomElement()! })
    }
    static func alnum(_ count: Int) -> String { string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", count) }
    static func base32(_ count: Int) -> String { string("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", count) }
    static func hex(_ count: Int) -> String { string("0123456789abcdef", count) }
    /// A GitHub classic personal access token's shape.
    static func githubPAT() -> String { "gh" + "p_" + alnum(36) }
    /// A long-lived AWS access key id's shape.
    static func awsKeyID() -> String { "AK" + "IA" + base32(16) }
    /// A temporary (STS) AWS access key id's shape.
    static func awsTemporaryKeyID() -> String { "AS" + "IA" + base32(16) }
    /// An AWS secret access key's shape (40 characters of base64).
    static func awsSecretKey() -> String { string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", 40) }
}

/// Issue #16, hole 8: `strip` and `deny` recognise secrets by variable name as well as by value,
/// look through base64, hex and case changes, join alike-named pieces, and treat a pair as one.
@Suite struct CredentialFormTests {
    func run(policy: String? = nil, _ extra: [String: String], step: String, in directory: TemporaryDirectory) throws -> ProgramResult {
        var arguments = ["run", "--audit-log", directory.path("audit.jsonl")]
        if let policy { arguments += ["--policy", try directory.write("policy.yaml", policy)] }
        return try StepGuardBinary.run(arguments + ["--", "/bin/sh", "-c", step], environment: TestEnvironment.base.merging(extra) { $1 })
    }

    /// Hostile forms of a long-lived secret, each under a name that says nothing about secrets.
    static let disguises: [(String, @Sendable () -> [String: String])] = [
        ("base64", { ["BLOB": Data(RandomSecret.githubPAT().utf8).base64EncodedString()] }),
        ("base64url without padding", { ["BLOB": Data((RandomSecret.githubPAT() + "!").utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")] }),
        ("hex", { ["BLOB": Data(RandomSecret.githubPAT().utf8).map { String(format: "%02x", $0) }.joined()] }),
        ("base64 of hex", { ["BLOB": Data(Data(RandomSecret.githubPAT().utf8).map { String(format: "%02X", $0) }.joined().utf8).base64EncodedString()] }),
        ("upper-cased", { ["BLOB": RandomSecret.githubPAT().uppercased()] }),
        ("prefix re-cased", { ["BLOB": "gH" + "P_" + RandomSecret.alnum(36)] }),
        ("percent-encoded", { ["BLOB": RandomSecret.githubPAT().utf8.map { String(format: "%%%02X", $0) }.joined()] }),
        ("base64 behind a label", { ["BLOB": "base64:" + Data(RandomSecret.githubPAT().utf8).base64EncodedString()] }),
        ("Vault AppRole secret id", { ["VAULT_SECRET_ID": RandomSecret.hex(8) + "-" + RandomSecret.hex(4) + "-" + RandomSecret.hex(4) + "-" + RandomSecret.hex(4) + "-" + RandomSecret.hex(12)] }),
        ("split in two", { let pat = RandomSecret.githubPAT(); return ["BLOB_1": String(pat.prefix(20)), "BLOB_2": String(pat.dropFirst(20))] }),
        ("base64 service-account key", { ["GOOGLE_CREDENTIALS_B64": Data("""
            {"type": "service_account", "project_id": "demo-\(RandomSecret.hex(6))", "private_key_id": "\(RandomSecret.hex(40))", "client_email": "ci@demo.iam.gserviceaccount.com"}
            """.utf8).base64EncodedString()] }),
        ("secret by name only", { ["DB_PASSWORD": RandomSecret.alnum(12)] }),
        ("token by name only", { ["INTERNAL_API_TOKEN": RandomSecret.alnum(48)] }),
    ]

    @Test(arguments: disguises.indices)
    func disguisedLongLivedSecretRefusesToStart(_ index: Int) throws {
        let (label, make) = Self.disguises[index]
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let variables = make()
        let marker = directory.path("ran")
        let result = try run(variables, step: "touch \(marker)", in: directory)
        #expect(result.status == 77, "\(label): \(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: marker), "\(label)")
        for (name, value) in variables {
            #expect(result.stderr.contains(name), "\(label): \(name) is not named in: \(result.stderr)")
            #expect(!result.stderr.contains(value) && (try? directory.read("audit.jsonl"))?.contains(value) != true, "\(label): value leaked")
        }
    }

    @Test func awsSecretKeyIsStrippedWithItsKeyID() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let result = try run(policy: "version: 1\ncredentials: { long_lived: strip }\n",
                             ["AWS_ACCESS_KEY_ID": RandomSecret.awsKeyID(), "AWS_SECRET_ACCESS_KEY": RandomSecret.awsSecretKey(), "AWS_REGION": "eu-west-1"],
                             step: #"echo "id=${AWS_ACCESS_KEY_ID:-unset} secret=${AWS_SECRET_ACCESS_KEY:-unset} region=$AWS_REGION""#, in: directory)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "id=unset secret=unset region=eu-west-1\n")
        let log = try directory.read("audit.jsonl")
        for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            #expect(log.contains(#""variable":"\#(name)""#), "\(log)")
        }
        #expect(!log.contains(#""variable":"AWS_REGION""#))
    }

    @Test func passwordIsStrippedWithItsUserName() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let result = try run(policy: "version: 1\ncredentials: { long_lived: strip }\n",
                             ["REGISTRY_USER": "deploy", "REGISTRY_PASSWORD": RandomSecret.alnum(10)],
                             step: #"echo "user=${REGISTRY_USER:-unset} password=${REGISTRY_PASSWORD:-unset}""#, in: directory)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "user=unset password=unset\n")
    }

    /// No false alarm: temporary AWS keys (what OIDC role assumption hands a job), GitLab's
    /// job-scoped tokens, GITHUB_TOKEN's installation token and ordinary CI variables run under
    /// the default policy (`long_lived: deny`).
    @Test func shortLivedAndOrdinaryVariablesStillRun() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let issuer = TestOIDCIssuer()
        let jobJWT = try issuer.token(subject: "project_path:group/app:ref_type:branch:ref:main", audience: "https://gitlab.example.com", ttl: 3 * 3600)
        let marker = directory.path("ran")
        let result = try run([
            "AWS_ACCESS_KEY_ID": RandomSecret.awsTemporaryKeyID(), "AWS_SECRET_ACCESS_KEY": RandomSecret.awsSecretKey(),
            "AWS_SESSION_TOKEN": "IQoJb3Jp" + "Z2luX2Vj" + RandomSecret.alnum(300),  // the start of real STS session tokens
            "CI_JOB_TOKEN": "glcbt-" + RandomSecret.alnum(3) + "_" + RandomSecret.alnum(20), "CI_REGISTRY_USER": "gitlab-ci-token",
            "CI_REGISTRY_PASSWORD": "glcbt-" + RandomSecret.alnum(3) + "_" + RandomSecret.alnum(20), "CI_JOB_JWT_V2": jobJWT,
            "GITHUB_TOKEN": "gh" + "s_" + RandomSecret.alnum(36), "GITHUB_SHA": RandomSecret.hex(40), "TOKEN_TTL": "3600",
            "SECRET_NAME": "prod-db-credentials", "VAULT_TOKEN_PATH": "/run/secrets/vault", "NPM_CONFIG_CACHE": "/tmp/npm",
        ], step: "touch \(marker)", in: directory)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(FileManager.default.fileExists(atPath: marker))
    }
}
