import Foundation
import StepGuardServerTestSupport
import StepGuardTestSupport
import Synchronization
import Testing

/// Transparent capture under isolation: clients that ignore the proxy variables. The step connects
/// to documentation addresses (192.0.2.0/24) that exist only inside its own network namespace, where
/// every TCP connection is redirected to stepguard; `network.resolve` sends the allowed ones to
/// servers on the host's loopback. Nothing leaves loopback.
@Suite final class CaptureTests {
    /// Each test's own directory and echo server (a fresh suite instance per test).
    let directory: TemporaryDirectory
    let echo: LoopbackServer

    init() throws {
        directory = try TemporaryDirectory()
        echo = try Self.echoServer()
    }

    deinit {
        echo.stop()
        directory.remove()
    }

    /// A TCP server on 127.0.0.1 that serves one connection at a time on a thread of its own:
    /// `greeting` first (if any), then one read, answered with `prefix` and the bytes read; it
    /// counts connections and the bytes it received.
    final class LoopbackServer: Sendable {
        let fd: Int32
        let port: Int
        private let accepted = Atomic<Int>(0)
        private let bytesReceived = Atomic<Int>(0)
        var connections: Int { accepted.load(ordering: .relaxed) }
        var received: Int { bytesReceived.load(ordering: .relaxed) }

        init(greeting: String? = nil, prefix: String) throws {
            (fd, port) = try LoopbackSocket.listen()
            let thread = Thread { [self] in
                while true {
                    let client = accept(fd, nil, nil)
                    if client < 0 { return }
                    accepted.add(1, ordering: .relaxed)
                    if let greeting { _ = write(client, greeting, greeting.utf8.count) }
                    var buffer = [UInt8](repeating: 0, count: 4096)
                    let count = read(client, &buffer, buffer.count)
                    if count > 0 {
                        bytesReceived.add(count, ordering: .relaxed)
                        let reply = Array(prefix.utf8) + buffer[0..<count]
                        _ = write(client, reply, reply.count)
                    }
                    close(client)
                }
            }
            thread.start()
        }

        func stop() { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
    }

    /// Answers each line with `echo:` and the line.
    static func echoServer() throws -> LoopbackServer { try LoopbackServer(prefix: "echo:") }

    /// Speaks first (like SSH, SMTP or MySQL): a greeting line, then answers with `got:`.
    static func greetingServer() throws -> LoopbackServer {
        try LoopbackServer(greeting: "220 greeting from the server\n", prefix: "got:")
    }

    /// A python3 step that waits for the greeting of a server that speaks first at `host:port`,
    /// prints it and whether it came within 3 s, then says `HELO builder` (a line, as SMTP's
    /// clients end theirs: an unended `WORD word` could still become an HTTP request line, which
    /// a tunnel with services holds until it ends) and prints the answer.
    static func greetingClient(_ host: String, _ port: Int) -> [String] {
        let script = """
            import socket, time
            start = time.monotonic()
            s = socket.create_connection(("\(host)", \(port)), timeout=5)
            greeting = s.makefile("rb").readline()
            print(greeting.decode().strip(), time.monotonic() - start < 3, flush=True)
            s.sendall(b"HELO builder\\r\\n")
            print(s.recv(100).decode().strip(), flush=True)
            """
        return ["python3", "-c", script]
    }

    /// A python3 step that talks to each `host:port` without any proxy and prints one line per
    /// attempt: `HOST:PORT echo:ping`, or the error and how long it took to come.
    static func talker(_ targets: [(String, Int)]) -> [String] {
        let list = targets.map { "(\"\($0.0)\", \($0.1))" }.joined(separator: ", ")
        let script = """
            import socket, time
            for host, port in [\(list)]:
                start = time.monotonic()
                try:
                    s = socket.create_connection((host, port), timeout=5)
                    s.sendall(b"ping")
                    data = s.recv(100)
                    print(f"{host}:{port} {data.decode() or 'closed'}", flush=True)
                    s.close()
                except OSError as error:
                    print(f"{host}:{port} {type(error).__name__} after {time.monotonic() - start:.2f}s", flush=True)
            """
        return ["python3", "-c", script]
    }

    /// A policy under isolation (tripwires off) that allows `allow` (host:port entries), routes
    /// `resolve` (host:port → that port on 127.0.0.1) and, with `dns`, names a DNS upstream on 127.0.0.1.
    static func capturePolicy(allow: [String], resolve: [String: Int] = [:], dns: Int? = nil, onViolation: String = "fail") -> String {
        let routes = resolve.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \"127.0.0.1:\($0.value)\"" }.joined(separator: ", ")
        return """
            version: 1
            isolation: required
            on_violation: \(onViolation)
            tripwires: off
            egress:
              default: deny
              allow: [\(allow.map { "\"\($0)\"" }.joined(separator: ", "))]
            network:
              resolve: { \(routes) }
            \(dns.map { "  dns: 127.0.0.1:\($0)" } ?? "")
            """
    }

    /// 192.0.2.10:7000 allowed, 192.0.2.10:7001 routed but not allowed; both to the echo server.
    static func policy(echoPort: Int, onViolation: String = "fail") -> String {
        capturePolicy(allow: ["192.0.2.10:7000"], resolve: ["192.0.2.10:7000": echoPort, "192.0.2.10:7001": echoPort], onViolation: onViolation)
    }

    @Test func aClientIgnoringProxyVariablesReachesAnAllowedAddressAndIsResetElsewhere() throws {
        let policy = try directory.write("policy.yaml", Self.policy(echoPort: echo.port))
        let audit = directory.path("audit.jsonl")
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--audit-log", audit, "--"]
                                          + Self.talker([("192.0.2.10", 7000), ("192.0.2.10", 7001)]))
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "192.0.2.10:7000 echo:ping", "\(run.stdout) \(run.stderr)")
        // The port the policy does not allow is reset at once (not a hang, not a timeout).
        #expect(lines.count == 2 && lines[1].hasPrefix("192.0.2.10:7001 ConnectionResetError after 0."), "\(run.stdout)")
        #expect(echo.connections == 1, "only the allowed connection reached the server")
        #expect(run.status == 77, "a denied captured connection is a violation: \(run.stderr)")
        let events = try AuditLogFile.events(audit)
        let egress = events.filter { $0["type"] as? String == "egress" }
        #expect(egress.contains { $0["decision"] as? String == "allow" && $0["port"] as? Int == 7000 && $0["method"] as? String == "TCP" })
        #expect(egress.contains { $0["decision"] as? String == "deny" && $0["port"] as? Int == 7001 && $0["host"] as? String == "192.0.2.10" })
        let isolation = events.first { $0["type"] as? String == "isolation" }?["reason"] as? String ?? ""
        #expect(isolation.contains("every TCP connection is captured"), "\(isolation)")
    }

    /// A hostile step's sibling of a plain TCP connect: a Multipath TCP socket (`IPPROTO_MPTCP`)
    /// travels as TCP subflows, so it is captured and decided like TCP — allowed to 7000 and
    /// relayed, refused at 7001 (a violation).
    @Test(.enabled(if: (try? String(contentsOfFile: "/proc/sys/net/mptcp/enabled", encoding: .utf8))?.hasPrefix("1") == true,
                   "needs MPTCP enabled"))
    func multipathTCPIsCapturedLikeTCP() throws {
        let policy = try directory.write("policy.yaml", Self.policy(echoPort: echo.port))
        let script = """
            import socket
            for port in (7000, 7001):
                try:
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)  # IPPROTO_MPTCP
                    s.settimeout(5)
                    s.connect(("192.0.2.10", port))
                    s.sendall(b"ping")
                    print(port, s.recv(100).decode() or "closed", flush=True)
                except OSError as error:
                    print(port, type(error).__name__, flush=True)
            """
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--", "python3", "-c", script])
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "7000 echo:ping", "\(run.stdout) \(run.stderr)")
        #expect(lines.count == 2 && lines[1].hasPrefix("7001 Connection"), "\(run.stdout)")
        #expect(echo.connections == 1, "only the allowed connection reached the server")
        #expect(run.status == 77, "\(run.stderr)")
    }

    /// Every captured connection leaves a NAT entry in the namespace's connection-tracking table
    /// after it ends; with the kernel's TIME_WAIT of 120 s a step opening thousands of connections a
    /// second would fill the table and have its new connections dropped. The entries of ended
    /// connections go within seconds, and ports in TIME_WAIT are reused (the kernel's default
    /// reuses them only towards loopback, and a client dialling one address ran out of ports).
    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/proc/net/nf_conntrack"), "needs the conntrack table in /proc"))
    func connectionTrackingEntriesOfEndedConnectionsDoNotPileUp() throws {
        let policy = try directory.write("policy.yaml", Self.policy(echoPort: echo.port))
        let script = """
            import socket, time
            print("time_wait", open("/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_time_wait").read().strip(),
                  open("/proc/sys/net/ipv4/tcp_tw_reuse").read().strip(), flush=True)
            def tracked():  # listing the table also evicts its expired entries
                return len(open("/proc/net/nf_conntrack").read().splitlines())
            for _ in range(1000):
                s = socket.create_connection(("192.0.2.10", 7000), timeout=5)
                s.sendall(b"ping"); s.recv(100); s.close()
            try:
                print("after 1000 connections", tracked() >= 900, flush=True)
            except PermissionError:  # the table is listed only with CAP_NET_ADMIN (root on the host)
                raise SystemExit(0)
            start = time.monotonic()
            while tracked() > 100 and time.monotonic() - start < 20:
                time.sleep(0.2)
            print("tracked", tracked(), "after", round(time.monotonic() - start), "s", flush=True)
            """
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--", "python3", "-c", script])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(echo.connections == 1000)
        let lines = run.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        let timeWait = lines.first.flatMap { $0.count == 3 ? Int($0[1]) : nil }
        #expect(timeWait.map { $0 <= 10 } == true, "TIME_WAIT in the step's namespace: \(run.stdout)")
        // Ports in TIME_WAIT are reused towards captured addresses too, not only towards loopback.
        #expect(lines.first?.last == "1", "tcp_tw_reuse in the step's namespace: \(run.stdout)")
        guard getuid() == 0 else { return }
        #expect(lines.dropFirst().first == ["after", "1000", "connections", "True"], "\(run.stdout)")
        let seconds = lines.count == 3 ? Int(lines[2][3]) : nil
        #expect(seconds.map { $0 < 15 } == true, "entries of ended connections still tracked: \(run.stdout)")
    }

    /// A policy that allows 192.0.2.10:7025 (to `port`) and names a service, so that tunnels and
    /// captured connections are held until their first client bytes are inspected. The service's
    /// hosts are mapped to loopback: stepguard resolves them at start (to know them by address),
    /// and that lookup must not leave the machine.
    static func greetingPolicy(port: Int) -> String {
        """
        version: 1
        isolation: required
        on_violation: fail
        tripwires: off
        egress: { default: deny, allow: ["192.0.2.10:7025"] }
        services:
          - service: sigstore-fulcio
            allow: { credential: none }
        network:
          resolve: { "192.0.2.10:7025": "127.0.0.1:\(port)", "fulcio.sigstore.dev:443": "127.0.0.1:9", "fulcio.sigstage.dev:443": "127.0.0.1:9" }
        """
    }

    /// With `services:` in the policy a captured connection's first client bytes are inspected
    /// before any goes upstream; a server that speaks first must still reach its client (the
    /// client waits for the greeting) — before, the client waited until its own timeout.
    @Test func aServerThatSpeaksFirstIsHeardWhileTheClientsFirstBytesAreInspected() throws {
        let server = try Self.greetingServer()
        defer { server.stop() }
        let policy = try directory.write("policy.yaml", Self.greetingPolicy(port: server.port))
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--"] + Self.greetingClient("192.0.2.10", 7025))
        #expect(run.stdout == "220 greeting from the server True\ngot:HELO builder\n", "\(run.stdout) \(run.stderr)")
        #expect(run.status == 0, "\(run.stderr)")
    }

    /// The sibling a hostile step tries: read the greeting, then send a TLS ClientHello naming a
    /// service through that connection, to reach it uninspected. Still denied, and none of its
    /// bytes reach the server.
    @Test func aClientHelloForAServiceAfterAServerGreetingIsStillDenied() throws {
        let server = try Self.greetingServer()
        defer { server.stop() }
        let policy = try directory.write("policy.yaml", Self.greetingPolicy(port: server.port))
        let script = """
            import socket, ssl
            \(PythonTLS.clientHello(serverName: "fulcio.sigstore.dev"))
            s = socket.create_connection(("192.0.2.10", 7025), timeout=5)
            print(s.makefile("rb").readline().decode().strip(), flush=True)
            s.sendall(hello)
            try:
                print("answer", s.recv(100), flush=True)
            except OSError as error:
                print(type(error).__name__, flush=True)
            """
        let audit = directory.path("audit.jsonl")
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--audit-log", audit, "--", "python3", "-c", script])
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "220 greeting from the server", "\(run.stdout) \(run.stderr)")
        #expect(lines.last == "ConnectionResetError" || lines.last == "answer b''", "\(run.stdout)")
        #expect(server.received == 0, "the ClientHello never reached the server")
        #expect(run.status == 77, "\(run.stderr)")
        let denials = try AuditLogFile.events(audit).filter { $0["decision"] as? String == "deny" }
        #expect(denials.contains { ($0["reason"] as? String ?? "").contains("sigstore-fulcio") }, "\(denials)")
    }

    /// UDP other than DNS goes nowhere: the sender is refused at once (ICMP port unreachable) and
    /// each destination is recorded; a violation only where a TCP connection would be denied too
    /// (a QUIC attempt to an allowed host falls back to TCP and does not stop the build).
    @Test(arguments: [(7000, false), (4433, true)])
    func udpOtherThanDNSIsDroppedAndRecorded(port: Int, violation: Bool) throws {
        let policy = try directory.write("policy.yaml", Self.policy(echoPort: echo.port))
        let audit = directory.path("audit.jsonl")
        let send = """
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(5)
            s.connect(("192.0.2.10", \(port)))
            s.send(b"quic initial?")
            try:
                s.recv(100)
                print("answered")
            except ConnectionRefusedError:
                print("refused")
            """
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--audit-log", audit, "--", "python3", "-c", send])
        #expect(run.stdout == "refused\n", "\(run.stdout) \(run.stderr)")
        #expect(run.status == (violation ? 77 : 0), "\(run.stderr)")
        let drops = try AuditLogFile.events(audit).filter { $0["type"] as? String == "egress" && $0["decision"] as? String == "deny" }
        #expect(drops.contains { $0["host"] as? String == "192.0.2.10" && $0["port"] as? Int == port }, "\(drops)")
    }

    /// A connection to a denied address on a TLS or HTTP port waits for the host its first bytes
    /// name; one that closes without naming any is still a recorded violation (no silent probing).
    @Test func aDeniedAddressProbedWithoutAnyBytesIsStillAViolation() throws {
        let policy = try directory.write("policy.yaml", Self.policy(echoPort: echo.port))
        let audit = directory.path("audit.jsonl")
        let probe = "import socket\ns = socket.create_connection((\"192.0.2.10\", 443), timeout=5)\ns.close()\nprint(\"probed\")"
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--audit-log", audit, "--", "python3", "-c", probe])
        #expect(run.stdout == "probed\n", "\(run.stderr)")
        #expect(run.status == 77, "\(run.stderr)")
        let denials = try AuditLogFile.events(audit).filter { $0["decision"] as? String == "deny" }
        #expect(denials.contains { $0["host"] as? String == "192.0.2.10" && $0["port"] as? Int == 443 }, "\(denials)")
    }

    @Test func ipv6ConnectionsAreCapturedToo() throws {
        let policy = try directory.write("policy.yaml", Self.capturePolicy(allow: ["[2001:db8::10]:7000"], resolve: ["[2001:db8::10]:7000": echo.port]))
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--"] + Self.talker([("2001:db8::10", 7000), ("2001:db8::11", 7000)]))
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "2001:db8::10:7000 echo:ping", "\(run.stdout) \(run.stderr)")
        #expect(lines.last?.hasPrefix("2001:db8::11:7000 ConnectionResetError") == true, "\(run.stdout)")
        #expect(echo.connections == 1)
        #expect(run.status == 77)
    }

    /// `mode: audit` decides and records captured connections and names like requests, blocks none.
    @Test func auditModeRecordsDeniedConnectionsAndNamesAndBlocksNothing() throws {
        // In audit mode the denied name is looked up: by a stand-in on loopback (never the host's resolver).
        let upstream = try CaptureClientTests.PythonDNSStandIn(directory: directory, answering: [:])
        defer { upstream.stop() }
        let policy = try directory.write("policy.yaml", Self.capturePolicy(
            allow: ["192.0.2.10:7000"], resolve: ["192.0.2.10:7000": echo.port, "192.0.2.10:7001": echo.port], dns: upstream.port)
            .replacingOccurrences(of: "version: 1", with: "version: 1\nmode: audit"))
        let audit = directory.path("audit.jsonl")
        let talk = try directory.write("talk.py", Self.talker([("192.0.2.10", 7001)])[2])
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--audit-log", audit, "--", "sh", "-c",
                                           "getent hosts unlisted.capture.example >/dev/null; echo \"getent $?\"; python3 \(talk)"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("192.0.2.10:7001 echo:ping"), "relayed in audit mode: \(run.stdout)")
        let denials = try AuditLogFile.events(audit).filter { $0["decision"] as? String == "deny" }
        #expect(denials.contains { $0["port"] as? Int == 7001 && $0["method"] as? String == "TCP" }, "\(denials)")
        #expect(denials.contains { $0["host"] as? String == "unlisted.capture.example" && $0["method"] as? String == "DNS" }, "\(denials)")
        #expect(try upstream.queries().contains("unlisted.capture.example"), "audit mode looks the denied name up")
    }

    @Test func onViolationKillStopsTheStepAtTheFirstDeniedConnection() throws {
        let policy = try directory.write("policy.yaml", Self.policy(echoPort: echo.port, onViolation: "kill"))
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--"]
                                          + Self.talker([("192.0.2.10", 7001), ("192.0.2.10", 7000)]))
        #expect(run.status == 77, "\(run.stderr)")
        #expect(!run.stdout.contains("echo:ping"), "the step was stopped before its next connection: \(run.stdout)")
        #expect(echo.connections == 0)
    }

    /// Root inside its namespaces, the step tries to undo capture: drop the routes and the
    /// redirect, open raw sockets, and connect to the capture listener itself. None of it works,
    /// and its connections are still decided.
    @Test func aHostileStepCannotUndoCapture() throws {
        let policy = try directory.write("policy.yaml", Self.policy(echoPort: echo.port))
        let attack = """
            import socket, subprocess
            for command in (["ip", "route", "del", "local", "default", "table", "local"],
                            ["ip", "-6", "route", "del", "local", "default", "table", "local"],
                            ["ip", "link", "set", "lo", "down"]):
                result = subprocess.run(command, capture_output=True)
                print("ip refused" if result.returncode != 0 else "ip changed", flush=True)
            for kind in (socket.IPPROTO_TCP, socket.IPPROTO_UDP, socket.IPPROTO_RAW):
                try:
                    socket.socket(socket.AF_INET, socket.SOCK_RAW, kind)
                    print("raw socket opened", flush=True)
                except PermissionError:
                    print("raw refused", flush=True)
            # Taking over the resolver's or the capture listener's ports: refused (privileged ports,
            # and ours are bound; the step's capabilities do not cover the namespace).
            for kind, address in ((socket.SOCK_DGRAM, ("0.0.0.0", 53)), (socket.SOCK_STREAM, ("127.0.0.53", 53)),
                                  (socket.SOCK_STREAM, ("127.0.0.1", 1023)), (socket.SOCK_STREAM, ("0.0.0.0", 1023))):
                try:
                    socket.socket(socket.AF_INET, kind).bind(address)
                    print("bound", address, flush=True)
                except OSError:
                    print("bind refused", flush=True)
            # The capture listener itself, reached without a redirect: reset, it leads nowhere.
            try:
                s = socket.create_connection(("127.0.0.1", 1023), timeout=5)
                s.sendall(b"CONNECT 127.0.0.1:\(echo.port) HTTP/1.1\\r\\n\\r\\n")
                print("listener", s.recv(100) or b"closed", flush=True)
            except OSError as error:
                print("listener", type(error).__name__, flush=True)
            """
        let attackScript = try directory.write("attack.py", attack)
        let talk = Self.talker([("192.0.2.10", 7000)])
        let talkScript = try directory.write("talk.py", talk[2])
        // Run as root (CI does): the step is root in its own namespaces.
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--", "sh", "-c", "python3 \(attackScript); python3 \(talkScript)"])
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.filter { $0 == "ip refused" }.count == 3, "every route and link change is refused: \(run.stdout) \(run.stderr)")
        #expect(lines.filter { $0 == "raw refused" }.count == 3, "\(run.stdout)")
        #expect(lines.filter { $0 == "bind refused" }.count == 4, "\(run.stdout)")
        #expect(lines.contains { $0.hasPrefix("listener") && !$0.contains("200") }, "\(run.stdout)")
        #expect(lines.last == "192.0.2.10:7000 echo:ping", "capture still holds: \(run.stdout) \(run.stderr)")
        #expect(echo.connections == 1)
        #expect(run.status == 0, "nothing was denied: the listener's own connection was reset, not decided: \(run.stderr)")
    }

    /// A resolver daemon reached through the filesystem (here a stand-in listening at nscd's socket
    /// path) would answer names around stepguard's resolver: under capture its socket is covered,
    /// without isolation it is reached. The stand-in lives in a mount namespace of the test's own (a
    /// tmpfs over /run), so tests running beside it never see the path appear or vanish.
    @Test(.enabled(if: getuid() == 0, "needs root for a mount namespace of its own"))
    func resolverDaemonSocketsAreCoveredUnderCapture() throws {
        let ask = try directory.write("ask.py", """
            import socket
            try:
                s = socket.socket(socket.AF_UNIX); s.connect("/run/nscd/socket"); print(s.recv(10).decode())
            except OSError as e:
                print(type(e).__name__)
            """)
        let daemon = try directory.write("nscd.py", """
            import os, socket
            s = socket.socket(socket.AF_UNIX); s.bind("/run/nscd/socket.tmp"); s.listen()
            os.rename("/run/nscd/socket.tmp", "/run/nscd/socket")
            while True:
                c, _ = s.accept(); c.sendall(b"answer"); c.close()
            """)
        let on = try directory.write("on.yaml", "version: 1\nisolation: required\n")
        let off = try directory.write("off.yaml", "version: 1\nisolation: off\n")
        let script = """
            mount -t tmpfs stepguard-test-run /run && mkdir /run/nscd || exit 1
            python3 \(daemon) </dev/null >/dev/null 2>&1 & daemon=$!
            trap 'kill $daemon' EXIT
            while [ ! -S /run/nscd/socket ]; do sleep 0.01; done
            \(StepGuardBinary.path) run --policy \(on) -- python3 \(ask); echo "isolated exit $?"
            \(StepGuardBinary.path) run --policy \(off) -- python3 \(ask)
            """
        let run = try ProgramRun.start("/usr/bin/unshare", ["--mount", "--propagation", "private", "/bin/sh", "-c", script]).wait()
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines == ["ConnectionRefusedError", "isolated exit 0", "answer"],
                "covered under capture (and not a tripwire); without isolation the daemon answers: \(run.stdout) \(run.stderr)")
    }

    @Test func captureWorksForAnUnprivilegedUser() throws {
        let policy = try directory.write("policy.yaml", Self.policy(echoPort: echo.port))
        chmod(policy, 0o644)
        guard let run = try UnprivilegedTests.runAsNobody(["--policy", policy, "--"] + Self.talker([("192.0.2.10", 7000), ("192.0.2.10", 7001)]),
                                                          in: directory) else { return }
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "192.0.2.10:7000 echo:ping", "\(run.stdout) \(run.stderr)")
        #expect(lines.last?.contains("ConnectionResetError") == true, "\(run.stdout)")
        #expect(run.status == 77)
    }
}
