import Foundation
import StepGuardServerTestSupport
import StepGuardTestSupport
import Testing

/// CI runs as root, users often do not: the same steps through the proxy, run as `nobody`.
/// (A socket option that only root may set once made the proxy drop every connection of an
/// unprivileged run, while every test run as root passed.)
@Suite struct UnprivilegedTests {
    /// Runs `stepguard run` as nobody (only when the tests run as root; otherwise they already are unprivileged).
    static func runAsNobody(_ arguments: [String], in directory: TemporaryDirectory) throws -> ProgramResult? {
        guard getuid() == 0 else { return nil }
        chmod(directory.path, 0o755)
        var environment = TestEnvironment.base
        environment["HOME"] = directory.path
        return try ProgramRun.start("/usr/bin/setpriv", ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--",
                                                         StepGuardBinary.path, "run"] + arguments,
                                    environment: environment).wait()
    }

    @Test(arguments: ["off", "required"])
    func theProxyServesAndDeniesForAnUnprivilegedUser(isolation: String) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let server = try LocalHTTPServer.start { request in ServerResponse(body: "hello \(request.uri)") }
        defer { server.shutdown() }
        let policy = try directory.write("policy.yaml", """
            version: 1
            isolation: \(isolation)
            on_violation: fail
            egress: { default: deny, allow: ["127.0.0.1:\(server.port)"] }
            """, mode: 0o644)
        let step = "curl -sS -m 10 http://127.0.0.1:\(server.port)/allowed; echo; curl -sS -m 10 -o /dev/null -w '%{http_code}' http://127.0.0.1:9/denied"
        guard let run = try Self.runAsNobody(["--policy", policy, "--", "sh", "-c", step], in: directory) else { return }
        #expect(run.stdout == "hello /allowed\n403", "stdout: \(run.stdout); stderr: \(run.stderr)")
        #expect(run.status == 77)
        #expect(run.stderr.contains("DENY egress"))
        #expect(server.requests.map(\.uri) == ["/allowed"])
    }
}
