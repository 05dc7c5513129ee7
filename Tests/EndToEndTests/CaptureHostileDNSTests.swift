import Foundation
import StepGuardTestSupport
import Testing

/// A hostile step against the resolver of its isolated namespace and the capture around it (issue
/// #18), through the built binary, as root in its namespaces and as `nobody`: hand-made DNS
/// messages for denied names (every one carries `leak` in a label) sent over UDP and TCP to
/// stepguard's resolver and to other server addresses, IPv4 and IPv6. The `network.dns` stand-in
/// (CaptureClientTests.PythonDNSStandIn, on 127.0.0.1) must receive no query for any of them.
@Suite struct CaptureHostileDNSTests {
    /// Python that builds DNS messages by hand: `q(name_wire, …)`, `wire(*labels)`, `ask(server,
    /// message)` over UDP (the answer's rcode and the address it came from, or `none`) and
    /// `ask_tcp(server, messages, tail)` (the rcodes of the answers to pipelined messages).
    static let dnsPrelude = """
        import socket, struct
        def wire(*labels):
            return b"".join(bytes([len(l)]) + l for l in labels) + b"\\0"
        def q(name, qtype=1, qclass=1, id=0x1234, flags=0x0100, counts=(1, 0, 0, 0), extra=b""):
            return struct.pack("!HHHHHH", id, flags, *counts) + name + struct.pack("!HH", qtype, qclass) + extra
        def ask(server, message):
            s = socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(1)
            s.sendto(message, (server, 53))
            try:
                data, peer = s.recvfrom(4096)
                return (data[3] & 15, peer[0])
            except socket.timeout:
                return ("none", None)
        def ask_tcp(server, messages, tail=b""):
            s = socket.create_connection((server, 53), timeout=3)
            s.sendall(b"".join(struct.pack("!H", len(m)) + m for m in messages) + tail)
            s.shutdown(socket.SHUT_WR)
            data = b""
            try:
                while chunk := s.recv(4096):
                    data += chunk
            except OSError:
                pass
            codes = []
            while len(data) >= 2 + 12:
                length = struct.unpack("!H", data[:2])[0]
                codes.append(data[2 + 3] & 15)
                data = data[2 + length:]
            return codes
        """

    /// The hostile queries: (label, message, the rcode expected: 3 NXDOMAIN, 5 REFUSED, 1 FORMERR,
    /// 4 NOTIMP, or `none`). Each names a denied name, or an allowed one in a form no host name has.
    static let hostileQueries = """
        attacker = (b"attacker", b"example")
        allowed = (b"mirror", b"capture", b"example")
        queries = [
            ("case", q(wire(b"LEAK1", b"Attacker", b"Example")), 3),
            ("sibling of an allowed name", q(wire(b"leak2", b"capture", b"example")), 3),
            ("x-prefixed wildcard", q(wire(b"leak3wild", b"capture", b"example")), 3),
            ("dot in a label", q(wire(b"leak4.mirror", b"capture", b"example")), 5),
            ("NUL in a label", q(wire(b"leak5\\0", *allowed)), 5),
            ("bytes over 0x7f", q(wire(b"leak6\\xc3\\xa9", *allowed)), 5),
            ("space in a label", q(wire(b"leak7 x", *allowed)), 5),
            ("punycode", q(wire(b"xn--leak8-9ya", *attacker)), 3),
            ("two questions", struct.pack("!HHHHHH", 9, 0x100, 2, 0, 0, 0) + wire(*allowed) + b"\\0\\1\\0\\1"
                + wire(b"leak9", *attacker) + b"\\0\\1\\0\\1", 1),
            ("no question", struct.pack("!HHHHHH", 10, 0x100, 0, 0, 0, 0) + wire(b"leak10", *attacker) + b"\\0\\1\\0\\1", 1),
            ("forward pointer", struct.pack("!HHHHHH", 11, 0x100, 1, 0, 0, 0) + b"\\xc0\\x12\\0\\1\\0\\1" + wire(b"leak11", *attacker), 1),
            ("pointer to itself", struct.pack("!HHHHHH", 12, 0x100, 1, 0, 0, 0) + wire(b"leak12")[:-1] + b"\\xc0\\x0c\\0\\1\\0\\1", 1),
            ("label of 64 bytes", q(wire(b"leak13" + b"x" * 58, *attacker)), 1),
            ("name of 256 bytes", q(wire(b"leak14", *([b"y" * 61] * 4))), 1),
            ("EDNS with options", q(wire(b"leak15", *attacker), counts=(1, 0, 0, 1),
                extra=b"\\0\\0\\x29\\x10\\0\\0\\0\\0\\0\\0\\x0c\\0\\x08\\0\\x08\\0\\x01\\x18\\0\\xc0\\x00\\x02\\0"), 3),
            ("two additional records", q(wire(b"leak16", *attacker), counts=(1, 0, 0, 2)), 1),
            ("TXT", q(wire(b"leak17", *attacker), qtype=16), 5),
            ("TXT of an allowed name", q(wire(b"leak18", b"wild", b"capture", b"example"), qtype=16), 5),
            ("NULL", q(wire(b"leak19", *attacker), qtype=10), 5),
            ("ANY", q(wire(b"leak20", *attacker), qtype=255), 5),
            ("AXFR", q(wire(b"leak21", *attacker), qtype=252), 5),
            ("class CH", q(wire(b"leak22", b"wild", b"capture", b"example"), qclass=3), 5),
            ("class ANY", q(wire(b"leak23", b"wild", b"capture", b"example"), qclass=255), 5),
            ("SRV", q(wire(b"_leak24", b"_tcp", *attacker), qtype=33), 3),
            ("CNAME", q(wire(b"leak25", *attacker), qtype=5), 3),
            ("HTTPS", q(wire(b"leak26", *attacker), qtype=65), 3),
            ("AAAA", q(wire(b"leak27", *attacker), qtype=28), 3),
            ("opcode NOTIFY", q(wire(b"leak28", b"wild", b"capture", b"example"), flags=0x2000), 4),
            ("a response", q(wire(b"leak29", b"wild", b"capture", b"example"), flags=0x8180), "none"),
            ("header only", struct.pack("!HHHHHH", 30, 0x100, 1, 0, 0, 0), 1),
            ("truncated header", b"\\x00\\x1f\\x01", "none"),
        ]
        """

    /// Allows `mirror.capture.example:443` and `*.wild.capture.example:443`, with `network.dns` the stand-in.
    static func policy(dnsPort: Int) -> String {
        CaptureTests.capturePolicy(allow: ["mirror.capture.example:443", "*.wild.capture.example:443"], dns: dnsPort)
    }

    /// Every hostile query, to stepguard's resolver and to other server addresses (IPv4, IPv6, a
    /// pool address), over UDP; some again over TCP, pipelined, with a length that lies at the end.
    /// Each gets its expected code (no hang, nothing answered as if allowed), and the stand-in
    /// receives no query naming `leak` — while the allowed name, asked first, does reach it.
    static func attack() -> String {
        dnsPrelude + "\n" + hostileQueries + "\n" + """
        control = ask("127.0.0.53", q(wire(*allowed), id=1))
        print("control", control[0], flush=True)
        for server in ("127.0.0.53", "192.0.2.53", "198.18.0.1", "::1", "2001:db8::53"):
            for label, message, expected in queries:
                got = ask(server, message)[0]
                if got != expected:
                    print("BAD", server, label, "got", got, "expected", expected, flush=True)
        for server in ("127.0.0.53", "192.0.2.53", "2001:db8::53"):
            codes = ask_tcp(server, [q(wire(b"leak40", *attacker), id=40), q(wire(*allowed), id=41), q(wire(b"leak42", *attacker), qtype=16)],
                            tail=b"\\x01\\x00" + q(wire(b"leak43", *attacker))[:20])
            print("tcp", server, codes, flush=True)
        print("done", len(queries), flush=True)
        """
    }

    func checkAttack(_ run: ProgramResult, upstream: CaptureClientTests.PythonDNSStandIn) throws {
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "control 0", "the allowed name is answered: \(run.stdout) \(run.stderr)")
        #expect(!lines.contains { $0.hasPrefix("BAD") }, "\(lines.filter { $0.hasPrefix("BAD") })")
        for server in ["127.0.0.53", "192.0.2.53", "2001:db8::53"] {
            // The length that lies at the end gets no answer; the connection just ends.
            #expect(lines.contains("tcp \(server) [3, 0, 5]"), "\(run.stdout)")
        }
        #expect(lines.last == "done 31", "\(run.stdout)")
        let queries = try upstream.queries()
        #expect(queries.contains("mirror.capture.example"), "the stand-in is reached for the allowed name: \(queries)")
        #expect(!queries.contains { $0.contains("leak") }, "no query for a denied name left stepguard: \(queries.filter { $0.contains("leak") })")
        #expect(run.status == 77, "denied names are violations: \(run.stderr)")
    }

    @Test func hostileQueriesForDeniedNamesNeverReachTheUpstream() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let upstream = try CaptureClientTests.PythonDNSStandIn(directory: directory, answering: ["mirror.capture.example": "192.0.2.44"])
        defer { upstream.stop() }
        let policy = try directory.write("policy.yaml", Self.policy(dnsPort: upstream.port))
        let script = try directory.write("attack.py", Self.attack())
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--", "python3", script])
        try checkAttack(run, upstream: upstream)
    }

    @Test func hostileQueriesForDeniedNamesNeverReachTheUpstreamAsNobody() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let upstream = try CaptureClientTests.PythonDNSStandIn(directory: directory, answering: ["mirror.capture.example": "192.0.2.44"])
        defer { upstream.stop() }
        let policy = try directory.write("policy.yaml", Self.policy(dnsPort: upstream.port), mode: 0o644)
        let script = try directory.write("attack.py", Self.attack(), mode: 0o644)
        guard let run = try UnprivilegedTests.runAsNobody(["--policy", policy, "--", "python3", script], in: directory) else { return }
        try checkAttack(run, upstream: upstream)
    }

    /// A query sent to any server address is answered from that address — IPv6 too. Before, an
    /// IPv6 answer could leave only from an address assigned to an interface: a query to
    /// `2001:db8::53` or a pool address went unanswered and the client waited out its timeout.
    static let everyServerAddress = dnsPrelude + "\n" + """
        for server in ("127.0.0.53", "192.0.2.53", "198.18.7.7", "::1", "2001:db8::53", "fd73:6764:6e73::7"):
            code, source = ask(server, q(wire(b"localhost"), id=7))
            print(server, code, source, flush=True)
        for server in ("192.0.2.53", "2001:db8::53"):
            print("tcp", server, ask_tcp(server, [q(wire(b"localhost"), id=8)]), flush=True)
        """

    static let everyServerAnswered = ["127.0.0.53 0 127.0.0.53", "192.0.2.53 0 192.0.2.53", "198.18.7.7 0 198.18.7.7", "::1 0 ::1",
                                      "2001:db8::53 0 2001:db8::53", "fd73:6764:6e73::7 0 fd73:6764:6e73::7",
                                      "tcp 192.0.2.53 [0]", "tcp 2001:db8::53 [0]"]

    @Test func aQueryToAnyServerAddressIsAnsweredFromThatAddressIPv6Too() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let policy = try directory.write("policy.yaml", CaptureTests.capturePolicy(allow: []))
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--", "python3", "-c", Self.everyServerAddress])
        #expect(run.stdout.split(separator: "\n").map(String.init) == Self.everyServerAnswered, "\(run.stdout) \(run.stderr)")
        #expect(run.status == 0, "\(run.stderr)")
    }

    @Test func aQueryToAnyServerAddressIsAnsweredFromThatAddressAsNobody() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let policy = try directory.write("policy.yaml", CaptureTests.capturePolicy(allow: []), mode: 0o644)
        guard let run = try UnprivilegedTests.runAsNobody(["--policy", policy, "--", "python3", "-c", Self.everyServerAddress], in: directory) else { return }
        #expect(run.stdout.split(separator: "\n").map(String.init) == Self.everyServerAnswered, "\(run.stdout) \(run.stderr)")
        #expect(run.status == 0, "\(run.stderr)")
    }

    /// A step sending UDP to ever new ports: each destination was reported once a minute, so the
    /// audit log (and stderr) took one event per datagram the watcher saw. Now at most 256
    /// destinations a minute are reported one by one, then one event says so; the datagrams are
    /// dropped either way, and the step is still a violation.
    @Test func udpToEverNewDestinationsCannotFloodTheAuditLog() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let policy = try directory.write("policy.yaml", CaptureTests.capturePolicy(allow: ["192.0.2.10:7000"]))
        let audit = directory.path("audit.jsonl")
        let flood = """
            import socket, time
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for port in range(1, 4001):
                s.sendto(b"x", ("192.0.2.10", port))
                if port % 50 == 0:
                    time.sleep(0.002)  # paced, so that the watcher's socket buffer keeps every copy
            print("sent", flush=True)
            """
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--audit-log", audit, "--", "python3", "-c", flood])
        #expect(run.stdout == "sent\n", "\(run.stderr.suffix(500))")
        #expect(run.status == 77, "UDP to denied destinations is a violation")
        let drops = try AuditLogFile.events(audit).filter { $0["method"] as? String == "UDP" }
        #expect(drops.count >= 200 && drops.count <= 256 + 2, "\(drops.count) UDP events")
        #expect(drops.contains { ($0["reason"] as? String ?? "").contains("are not recorded one by one") }, "one event says the rest are not recorded")
        #expect(run.stderr.split(separator: "\n").count < 300, "stderr is bounded too: \(run.stderr.split(separator: "\n").count) lines")
    }

    /// Root in its namespaces, the step looks for another way out than capture: its network
    /// namespace has no interface but loopback (so nothing it sends at the IP level — UDP-Lite,
    /// ICMP, anything — can leave), the nf_tables rules can be neither listed nor flushed, packet
    /// sockets are refused, SO_BINDTODEVICE finds none of the host's interfaces; TCP is still
    /// captured afterwards (the echo is reached through stepguard, a denied port is reset).
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/sbin/nft"), "needs nft"))
    func theStepFindsNoWayAroundCapture() throws {
        let echo = try CaptureTests.echoServer()
        defer { echo.stop() }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let policy = try directory.write("policy.yaml", CaptureTests.policy(echoPort: echo.port))
        let hostInterfaces = try String(contentsOfFile: "/proc/net/dev", encoding: .utf8).split(separator: "\n").dropFirst(2)
            .compactMap { $0.split(separator: ":").first?.trimmingCharacters(in: .whitespaces) }.filter { $0 != "lo" }
        let probe = """
            import socket, subprocess
            print("interfaces", sorted(line.split(":")[0].strip() for line in open("/proc/net/dev").read().splitlines()[2:]), flush=True)
            for command in (["nft", "flush", "ruleset"], ["nft", "delete", "table", "inet", "stepguard"], ["nft", "list", "ruleset"]):
                print("nft", "refused" if subprocess.run(command, capture_output=True).returncode != 0 else "done", flush=True)
            try:
                socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0); print("packet socket opened", flush=True)
            except OSError:
                print("packet refused", flush=True)
            for name in \(hostInterfaces.map { "\"\($0)\"" }):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, name.encode()); print("bound to", name, flush=True)
                except OSError:
                    pass
            """
        let probeScript = try directory.write("probe.py", probe)
        let talkScript = try directory.write("talk.py", CaptureTests.talker([("192.0.2.10", 7000), ("192.0.2.10", 7001)])[2])
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--", "sh", "-c", "python3 \(probeScript); python3 \(talkScript)"])
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "interfaces ['lo']", "\(run.stdout) \(run.stderr)")
        #expect(lines.filter { $0 == "nft refused" }.count == 3, "\(run.stdout)")
        #expect(lines.contains("packet refused") && !lines.contains { $0.hasPrefix("bound to") }, "\(run.stdout)")
        #expect(lines.contains("192.0.2.10:7000 echo:ping"), "capture still holds: \(run.stdout)")
        #expect(lines.last?.hasPrefix("192.0.2.10:7001 ConnectionResetError") == true, "\(run.stdout)")
        #expect(echo.connections == 1)
        #expect(run.status == 77)
    }
}
