import Foundation
import StepGuardTestSupport
import Testing

/// A hostile step denied in a loop (`on_violation: fail` lets it go on) cannot make stepguard keep or
/// print every denial: past the first 1,000 they are counted and logged, and the verdict still
/// counts them all.
@Suite struct DenialFloodTests {
    @Test func aStepDeniedThousandsOfTimesIsCountedNotPrintedEachTime() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let policy = try directory.write("policy.yaml", "version: 1\non_violation: fail\nisolation: off\negress:\n  allow: [\"allowed.test:443\"]\n")
        let log = directory.path + "/audit.jsonl"
        let total = 2_500
        // Raw CONNECTs to the proxy (loopback): each is denied, nothing is looked up or dialled.
        let flood = """
        import os, socket
        host, port = os.environ["HTTPS_PROXY"].split("//")[1].rstrip("/").rsplit(":", 1)
        for i in range(\(total)):
            s = socket.create_connection((host, int(port)))
            s.sendall(b"CONNECT denied%d.test:443 HTTP/1.1\\r\\nHost: denied%d.test:443\\r\\n\\r\\n" % (i, i))
            assert s.recv(4096).startswith(b"HTTP/1.1 403"), i
            s.close()
        """
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--audit-log", log, "--", "python3", "-c", flood], timeout: 120)
        #expect(run.status == 77, "\(run.stderr.suffix(2000))")
        let lines = run.stderr.split(separator: "\n")
        #expect(lines.filter { $0.hasPrefix("stepguard: DENY egress") }.count == 1_000)
        #expect(lines.contains { $0.hasPrefix("stepguard: more than 1000 denials: later ones are only counted, not printed (each is in the audit log \(log))") })
        #expect(run.stderr.contains("denied0.test:443 is not in egress.allow; egress.default is deny (+\(total - 1) more)"), "\(run.stderr.suffix(600))")
        let logged = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        #expect(logged.filter { $0.contains("\"decision\":\"deny\"") && $0.contains("\"type\":\"egress\"") }.count == total)
    }
}
