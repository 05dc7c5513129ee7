import Foundation
import StepGuardTestSupport
import StepGuardSecretsTestSupport
import Testing
import StepGuardSecrets

/// Binary key containers found by structure (issue #22): PKCS#12 / PFX keystores, Java keystores
/// (JKS, JCEKS) and DER PKCS#8 keys, made at run time by openssl and keytool when present and
/// byte by byte always, under names that do not say what they are, scanned by the built binary in
/// a directory, staged and in history. Truststores (certificates only), other binary files that
/// start like DER, and truncated containers stay quiet.
@Suite struct KeyContainerTests {
    static let openssl = ["/usr/bin/openssl", "/usr/local/bin/openssl"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static let keytool = ["/usr/bin/keytool", "/usr/local/bin/keytool"].first { FileManager.default.isExecutableFile(atPath: $0) }

    // MARK: scanning

    struct Found: Hashable {
        var rule: String
        var path: String
    }

    /// Runs the built binary with `--format json`; findings as (rule, path), and the raw output.
    func scan(_ dir: TemporaryDirectory, _ args: [String]) throws -> (found: Set<Found>, output: String, status: Int32) {
        let r = try ProgramRun.run(StepGuardBinary.path, ["scan", "--format", "json"] + args, in: dir.url)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stderr)")
        let findings = try #require(json["findings"] as? [[String: Any]])
        let found = Set(findings.compactMap { f -> Found? in
            guard let rule = f["rule_id"] as? String, let path = f["path"] as? String else { return nil }
            return Found(rule: rule, path: path)
        })
        return (found, r.stdout + r.stderr, r.status)
    }

    /// The container files the test writes, by byte layout: what must be found and what must not.
    func writeByteBuilt(_ dir: TemporaryDirectory) throws -> (expected: Set<Found>, quiet: [String]) {
        try dir.write("deploy/signing.bin", bytes: KeyContainerBytes.pfx(bag: 2, seed: 1))
        try dir.write("deploy/release-notes.txt", bytes: KeyContainerBytes.javaKeyStore(entryTag: 1, seed: 2))
        try dir.write("deploy/blob", bytes: KeyContainerBytes.javaKeyStore(magic: [0xCE, 0xCE, 0xCE, 0xCE], entryTag: 1, seed: 3))
        try dir.write("deploy/id.key", bytes: KeyContainerBytes.ed25519DER(seed: 4))
        // Quiet: a certificate-only PFX with its bags in the clear, a JKS truststore, a truncated
        // PFX, and binary files that start like DER or like a keystore but are not one.
        try dir.write("trust/certs.p12", bytes: KeyContainerBytes.pfx(bag: 3, seed: 5))
        try dir.write("trust/cacerts", bytes: KeyContainerBytes.javaKeyStore(entryTag: 2, seed: 6))
        try dir.write("trust/cut.p12", bytes: Array(KeyContainerBytes.pfx(bag: 2, seed: 7).prefix(100)))
        try dir.write("trust/image.bin", bytes: [0x30, 0x82, 0x01, 0x00, 0x02, 0x01, 0x03, 0x30, 0x00] + KeyContainerBytes.random(200, seed: 8) + [0])
        try dir.write("trust/magic.bin", bytes: [0xFE, 0xED, 0xFE, 0xED, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 9] + KeyContainerBytes.random(64, seed: 9))
        let expected: Set<Found> = [
            Found(rule: "pkcs12-keystore", path: "deploy/signing.bin"),
            Found(rule: "java-keystore", path: "deploy/release-notes.txt"),
            Found(rule: "java-keystore", path: "deploy/blob"),
            Found(rule: "private-key-der", path: "deploy/id.key"),
        ]
        return (expected, ["trust/certs.p12", "trust/cacerts", "trust/cut.p12", "trust/image.bin", "trust/magic.bin"])
    }

    @Test func byteBuiltContainersAreFoundByStructureInADirectoryAndQuietOtherwise() throws {
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        let (expected, quiet) = try writeByteBuilt(dir)
        let r = try scan(dir, ["."])
        #expect(r.status == 1, "\(r.output)")
        #expect(r.found == expected, "missing \(expected.subtracting(r.found)), unexpected \(r.found.subtracting(expected))")
        for path in quiet { #expect(!r.found.contains { $0.path == path }, "\(path) reported") }
        // The container is never printed: not its bytes' base64, not its start.
        let base64 = Data(KeyContainerBytes.pfx(bag: 2, seed: 1)).base64EncodedString()
        #expect(!r.output.contains(String(base64.prefix(24))))
    }

    @Test func containersAreFoundStagedAndInHistory() throws {
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        try dir.initRepo()
        try dir.write("README.md", "notes\n")
        try dir.commitAll("start")
        let (expected, _) = try writeByteBuilt(dir)
        try dir.git("add", ".")
        let staged = try scan(dir, ["--staged"])
        #expect(staged.found == expected, "missing \(expected.subtracting(staged.found)), unexpected \(staged.found.subtracting(expected))")
        try dir.git("commit", "-qm", "keys")
        try dir.git("rm", "-rq", "deploy")
        try dir.git("commit", "-qm", "remove them")
        let history = try scan(dir, ["--history"])
        #expect(history.found == expected, "missing \(expected.subtracting(history.found)), unexpected \(history.found.subtracting(expected))")
    }

    /// A keystore that replaces an earlier version of the same file: libgit2 marks the change
    /// binary; the new version is still scanned whole, staged and in history.
    @Test func aKeystoreReplacingAnEarlierVersionIsFoundStaged() throws {
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        try dir.initRepo()
        try dir.write("app.p12", bytes: KeyContainerBytes.pfx(bag: 2, seed: 30))
        try dir.commitAll("first keystore")
        try dir.write("app.p12", bytes: KeyContainerBytes.pfx(bag: 2, seed: 31))
        try dir.git("add", ".")
        let staged = try scan(dir, ["--staged"])
        #expect(staged.found == [Found(rule: "pkcs12-keystore", path: "app.p12")])
        try dir.git("commit", "-qm", "second keystore")
        let r = try ProgramRun.run(StepGuardBinary.path, ["scan", "--format", "json", "--history"], in: dir.url)
        #expect(r.stdout.components(separatedBy: "\"pkcs12-keystore\"").count - 1 == 2, "both versions: \(r.stdout)")
    }

    /// Real tools: an openssl PKCS#12 with a key (its certificates encrypted, as openssl does by
    /// default), a certificate-only PKCS#12 in the clear, a DER key, and keytool's JKS, JCEKS and
    /// PKCS12 keystores with a key pair, and a JKS truststore.
    @Test func containersMadeByOpensslAndKeytoolAreFound() throws {
        guard let openssl = Self.openssl else { return }  // the byte-built tests cover the structure
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        func tool(_ path: String, _ args: [String]) throws {
            let r = try ProgramRun.run(path, args, in: dir.url)
            #expect(r.status == 0, "\(path) \(args.joined(separator: " ")): \(r.stderr)")
        }
        try FileManager.default.createDirectory(at: dir.url.appendingPathComponent("out"), withIntermediateDirectories: true)
        let pass = "pass:" + ExampleTemplate.expand("{alnum:16}")
        try tool(openssl, ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "key.pem",
                           "-out", "cert.pem", "-days", "1", "-subj", "/CN=stepguard-test"])
        try tool(openssl, ["pkcs12", "-export", "-inkey", "key.pem", "-in", "cert.pem", "-out", "out/bundle.dat", "-passout", pass])
        try tool(openssl, ["pkcs12", "-export", "-nokeys", "-in", "cert.pem", "-certpbe", "NONE", "-out", "out/trust.dat", "-passout", pass])
        try tool(openssl, ["pkey", "-in", "key.pem", "-outform", "DER", "-out", "out/key.dat"])
        var expected: Set<Found> = [Found(rule: "pkcs12-keystore", path: "out/bundle.dat"), Found(rule: "private-key-der", path: "out/key.dat")]
        if let keytool = Self.keytool {
            let storepass = ExampleTemplate.expand("{alnum:12}")
            for (type, name) in [("JKS", "store-a"), ("JCEKS", "store-b"), ("PKCS12", "store-c")] {
                try tool(keytool, ["-genkeypair", "-alias", "k", "-keyalg", "EC", "-groupname", "secp256r1", "-dname", "CN=t",
                                   "-validity", "1", "-storetype", type, "-keystore", "out/\(name)", "-storepass", storepass, "-keypass", storepass])
            }
            try tool(keytool, ["-importcert", "-noprompt", "-alias", "ca", "-file", "cert.pem", "-storetype", "JKS",
                               "-keystore", "out/truststore", "-storepass", storepass])
            expected.formUnion([Found(rule: "java-keystore", path: "out/store-a"), Found(rule: "java-keystore", path: "out/store-b"),
                                Found(rule: "pkcs12-keystore", path: "out/store-c")])
        }
        try FileManager.default.removeItem(at: dir.url.appendingPathComponent("key.pem"))  // a PEM key is another rule's
        let r = try scan(dir, ["out"])
        #expect(r.found == expected, "missing \(expected.subtracting(r.found)), unexpected \(r.found.subtracting(expected))")
    }
}
