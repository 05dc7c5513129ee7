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
        let environment = TestEnvironment.with(["HOME": directory.path])
        return try StepGuardBinary.runAsNobody(["run"] + arguments, environment: environment)
    }

    @Test(arguments: ["off", "required"])
    func theProxyServesAndDeniesForAnUnprivilegedUser(isolation: String) throws {
        let stage = try TestStage(handler: { request in ServerResponse(body: "hello \(request.uri)") })
        let policy = try stage.directory.write("policy.yaml", """
            version: 1
            isolation: \(isolation)
            on_violation: fail
            egress: { default: deny, allow: ["127.0.0.1:\(stage.server.port)"] }
            """, mode: 0o644)
        let step = "curl -sS -m 10 http://127.0.0.1:\(stage.server.port)/allowed; echo; curl -sS -m 10 -o /dev/null -w '%{http_code}' http://127.0.0.1:9/denied"
        guard let run = try Self.runAsNobody(["--policy", policy, "--", "sh", "-c", step], in: stage.directory) else { return }
        #expect(run.stdout == "hello /allowed\n403", "stdout: \(run.stdout); stderr: \(run.stderr)")
        #expect(run.status == 77)
        #expect(run.stderr.contains("DENY egress"))
        #expect(stage.server.requests.map(\.uri) == ["/allowed"])
    }
}
