import StepGuardCore
import StepGuardServerTestSupport
import StepGuardTestSupport
import Foundation
import StepGuardEgress


@testable import StepGuardIdentity

/// A loopback HTTPS server (fixtures/identity/oidc_server.py) with a certificate issued by a
/// per-test `CertificateAuthority`. Serves files from `root` and fake CI token endpoints.
final class LocalHTTPSServer: @unchecked Sendable {
    // @unchecked: immutable after init except `process`, which is only touched by `stop()`.
    let root: TemporaryDirectory
    let port: Int
    let caFile: String
    private let process: Process

    var baseURL: String { "https://127.0.0.1:\(port)" }

    static var fixtures: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("fixtures/identity").path
    }

    init() throws {
        root = try TemporaryDirectory(prefix: "stepguard-identity")
        let tls = try TemporaryDirectory(prefix: "stepguard-identity")
        let ca = try CertificateAuthority(commonName: "stepguard identity test CA")
        let leaf = try ca.issueServerCertificate(for: "127.0.0.1")
        let der = try leaf.certificateDER
        let pem = "-----BEGIN CERTIFICATE-----\n" + Data(der).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed]) + "\n-----END CERTIFICATE-----\n"
        try tls.write("ca.pem", try ca.certificatePEM)
        try tls.write("server.pem", pem)
        try tls.write("server.key", leaf.privateKeyPEM, mode: 0o600)
        caFile = tls.path + "/ca.pem"

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.fixtures + "/oidc_server.py", "--cert", tls.path + "/server.pem", "--key", tls.path + "/server.key", "--root", root.path]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        self.process = process
        var line = Data()
        while !line.contains(0x0A) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        guard let port = Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            process.terminate()
            throw IdentityError(.jwks, "test server did not start", remedy: "check python3")
        }
        self.port = port
    }

    /// A server that serves `jwks` as `jwks.json` (at ``jwksURL``) from the start.
    convenience init(jwks: String) throws {
        try self.init()
        write("jwks.json", jwks)
    }

    /// The URL of `jwks.json`.
    var jwksURL: String { baseURL + "/jwks.json" }

    func write(_ name: String, _ text: String) { _ = try? root.write(name, text) }

    func read(_ name: String) -> String? {
        FileManager.default.contents(atPath: root.path + "/" + name).map { String(decoding: $0, as: UTF8.self) }
    }

    /// How many times `path` was requested.
    func count(_ path: String) throws -> Int {
        let response = try CurlTransport(caFile: caFile).perform(HTTPRequest(url: baseURL + "/_count" + path), purpose: .jwks)
        return Int(String(decoding: response.body, as: UTF8.self)) ?? -1
    }

    var transport: CurlTransport { CurlTransport(timeout: 3, connectTimeout: 2, caFile: caFile) }

    func stop() {
        // SIGKILL: a child spawned by the test runner may inherit a mask that blocks SIGTERM.
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        root.remove()
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}
