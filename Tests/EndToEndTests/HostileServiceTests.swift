import Foundation
import StepGuardServerTestSupport
import StepGuardTestSupport
import Testing

/// Issue #16, hole 2: a service the policy intercepts must not be reachable uninspected by its
/// address, by another name leading to its address, or through a TLS tunnel whose ClientHello names
/// no server or another one — even when an egress rule happens to allow the address. Through the
/// built `stepguard run`, with python and curl in the step; every address is loopback.
@Suite(.serialized) struct HostileServiceTests {
    /// Python in the step: `tunnel(authority, sni)` opens a CONNECT tunnel through the step's proxy,
    /// then (when it is established) TLS with `sni` (None: no SNI), and sends a GET for a path Vault's
    /// policy denies with `Host: vault.example.test:8200`; prints the CONNECT status and what came back.
    static let tunnelClient = #"""
    import os, socket, ssl, urllib.parse
    proxy = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
    def tunnel(authority, sni, tls=True):
        s = socket.create_connection((proxy.hostname, proxy.port), timeout=10)
        s.sendall(b"CONNECT " + authority.encode() + b" HTTP/1.1\r\nHost: " + authority.encode() + b"\r\n\r\n")
        status = s.recv(4096).split(b"\r\n")[0].decode().split(" ")[1]
        if status != "200":
            return print(authority, sni, status)
        request = b"GET /v1/secret/data/prod/db HTTP/1.1\r\nHost: vault.example.test:8200\r\nX-Vault-Token: hvs.decoy\r\nConnection: close\r\n\r\n"
        try:
            if tls:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                s = context.wrap_socket(s, server_hostname=sni)
            s.sendall(request)
            answer = s.recv(4096)
            print(authority, sni, status, answer.split(b"\r\n")[0].decode() if answer else "closed")
        except (ssl.SSLError, OSError):
            print(authority, sni, status, "closed")

    """#

    static func python(_ body: String) -> String { "python3 - <<'PY'\n\(tunnelClient)\(body)\nPY\n" }

    static let vaultService = """
    services:
      - service: hashicorp-vault
        hosts: [vault.example.test]
        allow:
          - { methods: [GET], paths: ["/v1/secret/data/ci/*"], credential: any }
    """

    /// With Vault at vault.example.test (TLS) and an egress rule allowing its address, tunnels to it
    /// by address (every spelling), by an alias `network.resolve` maps to it, with no SNI or a
    /// different one are refused; Vault sees only the request made by its name, which is decided.
    @Test func aServiceIsNotReachableByAddressAliasOrMissingSNI() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let authority = try TestCertificateAuthority(directory: directory, name: "upstream CA")
        let vault = try LocalHTTPServer.start(tls: authority, tlsNames: ["vault.example.test"], handler: BinaryServiceTests.echoJSON)
        defer { vault.shutdown() }
        // Another TLS server that is no service, on the same loopback address.
        let other = try LocalHTTPServer.start(tls: authority, tlsNames: ["other.example.test"], handler: BinaryServiceTests.echoJSON)
        defer { other.shutdown() }
        let policy = """
        version: 1
        on_violation: fail
        egress: { default: deny, allow: ["127.0.0.1", "alias.example.test", "other.example.test"] }
        \(Self.vaultService)
        network:
          resolve:
            "vault.example.test:8200": "127.0.0.1:\(vault.port)"
            "alias.example.test:443": "127.0.0.1:\(vault.port)"
            "other.example.test:443": "127.0.0.1:\(other.port)"
          upstream_ca: \(authority.certificateFile)
        """
        let script = Self.python("""
        tunnel("127.0.0.1:\(vault.port)", None)
        tunnel("127.0.0.1:\(vault.port)", "alias.example.test")
        tunnel("[::ffff:127.0.0.1]:\(vault.port)", None)
        tunnel("2130706433:\(vault.port)", None)
        tunnel("alias.example.test:443", "alias.example.test")
        tunnel("other.example.test:443", "other.example.test")
        tunnel("other.example.test:443", None)
        tunnel("other.example.test:443", "vault.example.test")
        tunnel("127.0.0.1:\(other.port)", None)
        """) + """
        curl -s -o /dev/null -w '%{http_code}\\n' -H 'X-Vault-Token: hvs.decoy' https://vault.example.test:8200/v1/secret/data/ci/app
        """
        let (result, events) = try RunEgressTests.run(policy, script, directory: directory)
        let vaultAddress = "127.0.0.1:\(vault.port)"
        #expect(result.stdout == """
        \(vaultAddress) None 403
        \(vaultAddress) alias.example.test 403
        [::ffff:127.0.0.1]:\(vault.port) None 403
        2130706433:\(vault.port) None 403
        alias.example.test:443 alias.example.test 403
        other.example.test:443 other.example.test 200 HTTP/1.1 200 OK
        other.example.test:443 None 200 closed
        other.example.test:443 vault.example.test 200 closed
        127.0.0.1:\(other.port) None 200 closed
        200

        """, "\(result.stderr)")
        #expect(result.status == 77)
        // Vault saw only the request by its name (decided); the other server only the one naming it.
        #expect(vault.requests.map(\.uri) == ["/v1/secret/data/ci/app"])
        #expect(other.requests.count == 1)
        let byAddress = events.filter { $0["rule"] as? String == "built-in: services are reached by name" }
        #expect(byAddress.count == 5, "\(events)")
        #expect(byAddress.allSatisfy { $0["decision"] as? String == "deny" && ($0["reason"] as? String)?.contains("hashicorp-vault") == true })
        let sni = events.filter { $0["rule"] as? String == "built-in: SNI must equal the CONNECT host" }
        #expect(sni.map { $0["sni"] as? String } == [nil, "vault.example.test", nil], "\(sni)")
    }

    /// Vault served over plain HTTP: absolute-form `http://ADDRESS/…` with `Host: vault.example.test`,
    /// and a CONNECT tunnel to its address carrying plain HTTP, are refused while an egress rule
    /// allows the address; a request by its name is decided as Vault's.
    @Test func aPlainHTTPServiceIsNotReachableByAddress() throws {
        let stage = try TestStage(handler: BinaryServiceTests.echoJSON)
        let vault = stage.server
        let policy = """
        version: 1
        on_violation: fail
        egress: { default: allow, allow: ["127.0.0.1"] }
        \(Self.vaultService)
        network:
          resolve: { "vault.example.test:8200": "127.0.0.1:\(vault.port)" }
        """
        let curl = "\(BinaryServiceTests.code) -H 'X-Vault-Token: hvs.decoy'"
        let script = """
        \(curl) -H 'Host: vault.example.test:8200' http://127.0.0.1:\(vault.port)/v1/secret/data/prod/db
        \(curl) -H 'Host: vault.example.test:8200' http://localhost:\(vault.port)/v1/secret/data/prod/db
        \(curl) http://vault.example.test:8200/v1/secret/data/prod/db
        \(curl) http://vault.example.test:8200/v1/secret/data/ci/app

        """ + Self.python("""
        tunnel("127.0.0.1:\(vault.port)", None, tls=False)
        """)
        let (result, events) = try stage.run(policy, script)
        #expect(result.stdout == """
        403 deny
        403 deny
        403 deny
        200 \("")
        127.0.0.1:\(vault.port) None 403

        """, "\(result.stderr)")
        #expect(result.status == 77)
        #expect(vault.requests.map(\.uri) == ["/v1/secret/data/ci/app"])
        // (localhost may also be refused as a loopback name the policy does not allow by name.)
        let byAddress = events.filter { $0["rule"] as? String == "built-in: services are reached by name" }
        #expect(byAddress.filter { $0["host"] as? String == "127.0.0.1" }.map { $0["method"] as? String } == ["GET", "CONNECT"], "\(events)")
    }
}

extension HostileServiceTests {
    /// A service host that is looked up (not mapped by `network.resolve`): every port of the addresses
    /// it resolves to is the service's. `localhost` stands in for a service name in DNS.
    @Test func everyPortOfAResolvedServiceAddressIsRefused() throws {
        let stage = try TestStage()
        let other = stage.server
        let policy = """
        version: 1
        on_violation: fail
        egress: { default: deny, allow: ["127.0.0.1"] }
        \(Self.vaultService.replacingOccurrences(of: "hosts: [vault.example.test]", with: "hosts: [localhost]"))
        """
        let script = """
        \(BinaryServiceTests.code) http://127.0.0.1:\(other.port)/

        """ + Self.python("""
        tunnel("127.0.0.1:\(other.port)", None, tls=False)
        """)
        let (result, events) = try stage.run(policy, script)
        #expect(result.stdout == "403 deny\n127.0.0.1:\(other.port) None 403\n", "\(result.stderr)")
        #expect(other.requests.isEmpty)
        let refusals = events.filter { $0["rule"] as? String == "built-in: services are reached by name" }
        #expect(refusals.count == 2 && refusals.allSatisfy { ($0["reason"] as? String)?.contains("hashicorp-vault") == true }, "\(events)")
    }
}
