import Foundation
import StepGuardTestSupport
import Testing
import StepGuardSecrets

/// Issue #22's misses, in the shapes real code carries them, scanned by the built binary: private
/// keys whose lines carry a prefix or are escaped or concatenated, compose-style `- KEY=value` and
/// Kubernetes `- name:`/`value:` environment lists, and a default user:password pair in a URL — and,
/// beside each, the documentation and placeholders that must stay quiet.
@Suite struct KeyMaterialScanTests {
    /// A PEM/OpenSSH/PGP armour line (`-----BEGIN RSA PRIVATE KEY-----`), assembled at run time so
    /// that this file never holds one.
    static func armour(_ edge: String, _ kind: String) -> String {
        "-----\(edge) \(kind)" + "-----"
    }

    /// `count` base64 body lines of `width` characters, different for every `seed`.
    static func body(_ count: Int, width: Int = 64, seed: UInt64) -> [String] {
        (0..<count).map { ExampleTemplate.expand("{b64:\(width)}", seed: seed &* 100 &+ UInt64($0)) }
    }

    /// A block of `kind` with every line wrapped by `line` (prefix, suffix) and joined by `separator`.
    static func block(_ kind: String, seed: UInt64, lines: Int = 3, width: Int = 64,
                      separator: String = "\n", _ line: (String) -> String) -> String {
        ([armour("BEGIN", kind)] + body(lines, width: width, seed: seed) + [armour("END", kind)]).map(line).joined(separator: separator)
    }

    struct Finding: Hashable, CustomStringConvertible {
        var rule: String
        var path: String
        var line: Int
        var description: String { "\(path):\(line) \(rule)" }
    }

    /// Scans `dir` with `--format json`; the findings, and the raw output for secret checks.
    func scan(_ dir: TemporaryDirectory) throws -> (findings: Set<Finding>, output: String, status: Int32) {
        let r = try ProgramRun.run(StepGuardBinary.path, ["scan", "--format", "json", "."], in: dir.url)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stderr)")
        let findings = try #require(json["findings"] as? [[String: Any]])
        let set = Set(findings.compactMap { f -> Finding? in
            guard let rule = f["rule_id"] as? String, let path = f["path"] as? String, let line = f["line"] as? Int else { return nil }
            return Finding(rule: rule, path: path, line: line)
        })
        return (set, r.stdout + r.stderr, r.status)
    }

    /// Expects exactly `expected`, naming what is missing and what is unexpected.
    func expectFindings(_ found: Set<Finding>, _ expected: Set<Finding>, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(found == expected, "missing: \(expected.subtracting(found)), unexpected: \(found.subtracting(expected))",
                sourceLocation: sourceLocation)
    }

    @Test func privateKeysWithLinePrefixesEscapesAndConcatenationAreFound() throws {
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        var written: [String] = []
        func write(_ path: String, _ text: String) throws {
            try dir.write(path, text)
            written.append(text)
        }
        let rsa = "RSA PRIVATE KEY", pkcs8 = "PRIVATE KEY", ec = "EC PRIVATE KEY"
        let openssh = "OPENSSH PRIVATE KEY", pgp = "PGP PRIVATE KEY BLOCK"
        // Kotlin raw string with trimMargin.
        try write("src/Keys.kt", "object Keys {\n    val pem = \"\"\"\n"
            + Self.block(rsa, seed: 1) { "        |\($0)" } + "\n        \"\"\".trimMargin()\n}\n")
        // Javadoc comment.
        try write("src/Signer.java", "/**\n * Test signer.\n"
            + Self.block(ec, seed: 2) { " * \($0)" } + "\n */\nclass Signer {}\n")
        // Java string literals joined with +, one per line.
        try write("src/KeyFixture.java", "class KeyFixture {\n    static final String PEM =\n"
            + Self.block(pkcs8, seed: 3, separator: " +\n") { "        \"\($0)\\n\"" } + ";\n}\n")
        // JavaScript single-quoted literals joined with +.
        try write("lib/fixture.js", "const pem =\n"
            + Self.block(rsa, seed: 4, separator: " +\n") { "  '\($0)\\n'" } + ";\n")
        // Shell comment, OpenSSH key (70-character lines).
        try write("deploy.sh", "#!/bin/sh\n"
            + Self.block(openssh, seed: 5, width: 70) { "# \($0)" } + "\necho deploy\n")
        // Go line comment.
        try write("pkg/sign.go", "package sign\n\n"
            + Self.block(pkcs8, seed: 6) { "// \($0)" } + "\nfunc Sign() {}\n")
        // JSON value with \n escapes, PGP block with a blank line after the armour.
        let pgpLines = [Self.armour("BEGIN", pgp), ""] + Self.body(3, seed: 7) + [Self.armour("END", pgp)]
        try write("config/signing.json", "{\n  \"gpg_key\": \"" + pgpLines.joined(separator: "\\n") + "\\n\"\n}\n")
        // Markdown table: one key line per row.
        try write("docs/KEYS.md", "# Test keys\n\n| Line |\n|---|\n" + Self.block(ec, seed: 8) { "| \($0) |" } + "\n")

        let expected: Set<Finding> = [
            Finding(rule: "private-key-pem", path: "src/Keys.kt", line: 3),
            Finding(rule: "private-key-pem", path: "src/Signer.java", line: 3),
            Finding(rule: "private-key-pem", path: "src/KeyFixture.java", line: 3),
            Finding(rule: "private-key-pem", path: "lib/fixture.js", line: 2),
            Finding(rule: "openssh-private-key", path: "deploy.sh", line: 2),
            Finding(rule: "private-key-pem", path: "pkg/sign.go", line: 3),
            Finding(rule: "pgp-private-key-block", path: "config/signing.json", line: 2),
            Finding(rule: "private-key-pem", path: "docs/KEYS.md", line: 5),
        ]
        let result = try scan(dir)
        #expect(result.status == 1, "\(result.output)")
        expectFindings(result.findings, expected)
        for text in written {
            for bodyLine in text.split(separator: "\n") where bodyLine.count > 60 {
                // No body line of a key appears in the output (the findings are redacted).
                let run = bodyLine.split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "+" || $0 == "/") }).max { $0.count < $1.count } ?? ""
                if run.count >= 40 { #expect(!result.output.contains(run)) }
            }
        }
    }

    /// An armour line without its END followed by a large base64 blob (a truncated key, a test
    /// vector) used to exhaust the regex match limit, and the scan then stopped quietly for the
    /// rest of the file: the key after it was not reported.
    @Test func aKeyAfterAnUnclosedArmourLineAndALargeBlobIsFound() throws {
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        let rsa = "RSA PRIVATE KEY"
        let blob = Self.body(16_000, width: 76, seed: 20)  // 1.2 MB of base64 lines
        try dir.write("vectors.txt", "# truncated: \(Self.armour("BEGIN", rsa))\n" + blob.joined(separator: "\n")
            + "\n\nthe key:\n" + Self.block(rsa, seed: 21) { $0 } + "\n")
        let result = try scan(dir)
        #expect(result.status == 1, "\(result.output)")
        #expect(result.findings == [Finding(rule: "private-key-pem", path: "vectors.txt", line: 16_004)], "\(result.findings)")
    }

    @Test func armourLinesWithoutAKeyAndMismatchedBlocksStayQuiet() throws {
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        let rsa = "RSA PRIVATE KEY"
        // Documentation that names the armour lines, with prose (all in the key alphabet) between.
        try dir.write("docs/tls.md", """
        # Configuring TLS

        # Paste the key, from the line \(Self.armour("BEGIN", rsa)) through
        # the base64 lines of the body, down to the final line
        # \(Self.armour("END", rsa)), into the field named TLS key
        """)
        // Code that holds the armour lines as constants.
        try dir.write("pem.go", "const header = \"\(Self.armour("BEGIN", rsa))\"\n"
            + "const note = \"the lines between the header and the footer are base64\"\n"
            + "const footer = \"\(Self.armour("END", rsa))\"\n")
        // A BEGIN of one type closed by an END of another is not a key block.
        try dir.write("broken.txt", ([Self.armour("BEGIN", rsa)] + Self.body(3, seed: 9) + [Self.armour("END", "EC PRIVATE KEY")])
            .map { " * \($0)" }.joined(separator: "\n") + "\n")
        // A public key in the same shapes.
        try dir.write("Pub.kt", Self.block("PUBLIC KEY", seed: 10) { "    |\($0)" } + "\n")
        let result = try scan(dir)
        #expect(result.status == 0, "\(result.output)")
        #expect(result.findings.isEmpty, "\(result.findings)")
    }

    @Test func composeEnvironmentListsAreClassifiedLikeMappings() throws {
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        let password = ExampleTemplate.expand("{alnum:24}", seed: 11)
        let jwtSecret = ExampleTemplate.expand("{alnum:32}", seed: 12)
        let token = ExampleTemplate.expand("{alnum:28}", seed: 13)
        try dir.write("docker-compose.yml", """
        services:
          db:
            image: postgres:16
            environment:
              - POSTGRES_USER=app
              - POSTGRES_PASSWORD=\(password)
              - POSTGRES_DB=app
          api:
            environment:
              - "JWT_SECRET=\(jwtSecret)"
              - 'API_TOKEN=\(token)'
              - DATABASE_PASSWORD=${POSTGRES_PASSWORD}
              - "REDIS_PASSWORD=$REDIS_PASSWORD"
              - TOKEN_TTL=3600
              - SECRET_NAME=prod-db-credentials
        """)
        // The mapping form was found before; the list form must give the same verdicts.
        try dir.write("compose-mapping.yml", """
        services:
          db:
            environment:
              POSTGRES_PASSWORD: \(password)
              DATABASE_PASSWORD: ${POSTGRES_PASSWORD}
        """)
        // Kubernetes: name and value on two lines.
        let apiKey = ExampleTemplate.expand("{alnum:32}", seed: 14)
        try dir.write("k8s/deployment.yaml", """
        spec:
          containers:
            - name: api
              env:
                - name: LOG_LEVEL
                  value: debug
                - name: STRIPE_API_KEY
                  value: "\(apiKey)"
                - name: DB_PASSWORD
                  valueFrom:
                    secretKeyRef: {name: db, key: password}
                - name: SESSION_SECRET
                  value: ${SESSION_SECRET}
                - name: TOKEN_TTL
                  value: "3600"
        """)
        let result = try scan(dir)
        let expected: Set<Finding> = [
            Finding(rule: "generic-env-list-secret", path: "k8s/deployment.yaml", line: 8),
            Finding(rule: "generic-env-secret", path: "docker-compose.yml", line: 6),
            Finding(rule: "generic-env-secret", path: "docker-compose.yml", line: 10),
            Finding(rule: "generic-env-secret", path: "docker-compose.yml", line: 11),
            Finding(rule: "generic-env-secret", path: "compose-mapping.yml", line: 4),
        ]
        expectFindings(result.findings, expected)
        for secret in [password, jwtSecret, token, apiKey] { #expect(!result.output.contains(secret)) }
    }

    @Test func defaultPasswordPairsInURLsAreWeakCredentialsButPlaceholdersAreNot() throws {
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        // user:password pairs assembled at run time.
        func pair(_ user: String, _ password: String) -> String { user + ":" + password }
        try dir.write("ci.env", """
        JENKINS_URL=https://\(pair("admin", "admin"))@ci.acme-builds.net/job/release
        ROUTER=http://\(pair("root", "toor"))@10.20.0.1:8080/cgi-bin
        """)
        try dir.write("README.md", """
        Clone with https://\(pair("user", "password"))@git.acme-builds.net/repo.git or
        https://${USER}:${PASS}@git.acme-builds.net/repo.git; the local console is
        http://\(pair("admin", "admin"))@localhost:3000/ and http://\(pair("admin", "admin"))@127.0.0.1:15672/,
        the docs use http://\(pair("admin", "admin"))@grafana.test/ and http://\(pair("admin", "admin"))@example.com/.
        """)
        let result = try scan(dir)
        let expected: Set<Finding> = [
            Finding(rule: "url-default-credentials", path: "ci.env", line: 1),
            Finding(rule: "url-default-credentials", path: "ci.env", line: 2),
        ]
        expectFindings(result.findings, expected)
    }
}
