import Foundation
import StepGuardServerTestSupport
import StepGuardTestSupport
import Testing

/// Bypass attempts under `isolation: required`. Every target is on the host's loopback: if
/// isolation were broken, nothing would leave the machine. Each test also runs the same step with
/// `isolation: off` as a control, proving the attempt would have worked without isolation.
@Suite struct IsolationBypassTests {
    let directory: TemporaryDirectory
    let required: String
    let off: String

    init() throws {
        directory = try TemporaryDirectory()
        required = try directory.write("required.yaml", "version: 1\nisolation: required\n")
        off = try directory.write("off.yaml", "version: 1\nisolation: off\n")
    }

    @Test func directTCPConnectIgnoringProxyVariablesFails() throws {
        defer { directory.remove() }
        let server = try LocalHTTPServer.start { _ in ServerResponse(body: "reached") }
        defer { server.shutdown() }
        let step = ["curl", "-sS", "--noproxy", "*", "-m", "5", "\(server.url)/direct"]
        let blocked = try StepGuardBinary.run(["run", "--policy", required, "--"] + step)
        #expect(blocked.status == 7, "curl exit 7: could not connect; stderr: \(blocked.stderr)")
        #expect(blocked.stderr.contains("isolated"))
        #expect(server.requests.isEmpty)
        let control = try StepGuardBinary.run(["run", "--policy", off, "--"] + step)
        #expect(control.stdout == "reached")
        #expect(server.requests.count == 1)
    }

    @Test func ipv6ConnectToHostLoopbackFails() throws {
        defer { directory.remove() }
        let server = try LocalHTTPServer.start(host: "::1") { _ in ServerResponse(body: "reached") }
        defer { server.shutdown() }
        let step = ["curl", "-sS", "-g", "--noproxy", "*", "-m", "5", "http://[::1]:\(server.port)/v6"]
        let blocked = try StepGuardBinary.run(["run", "--policy", required, "--"] + step)
        #expect(blocked.status != 0)
        #expect(server.requests.isEmpty)
        let control = try StepGuardBinary.run(["run", "--policy", off, "--"] + step)
        #expect(control.stdout == "reached")
    }

    @Test func udpDatagramToHostLoopbackIsNotDelivered() throws {
        defer { directory.remove() }
        let listener = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                guard bind(listener, raw, length) == 0, getsockname(listener, raw, &length) == 0 else { throw TestSupportError.timedOut("bind", 0) }
            }
        }
        let port = UInt16(bigEndian: address.sin_port)
        let send = "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'dns?', ('127.0.0.1', \(port)))"
        // Loopback delivers a datagram during sendto(), so once the step has ended it is queued or it never will be.
        func received() -> Bool {
            var buffer = [UInt8](repeating: 0, count: 16)
            return recv(listener, &buffer, buffer.count, Int32(MSG_DONTWAIT)) > 0
        }
        let blocked = try StepGuardBinary.run(["run", "--policy", required, "--", "python3", "-c", send])
        #expect(blocked.status == 0)
        #expect(!received())
        _ = try StepGuardBinary.run(["run", "--policy", off, "--", "python3", "-c", send])
        #expect(received())
    }

    @Test func credentialStoresAppearEmpty() throws {
        defer { directory.remove() }
        let home = directory.path("home")
        try directory.write("home/.aws/credentials", "[default]\naws_access_key_id = test-only-not-a-key\n")
        try directory.write("home/.ssh/id_ed25519", "test-only private key material\n")
        try directory.write("home/.npmrc", "//registry.npmjs.org/:_authToken=test-only\n")
        try directory.write("home/workspace/notes.txt", "still visible\n")
        let environment = TestEnvironment.with(["HOME": home])
        let step = ["/bin/sh", "-c", "cat ~/.aws/credentials ~/.ssh/id_ed25519 ~/.npmrc 2>&1; ls -A ~/.aws ~/.ssh; cat ~/workspace/notes.txt; echo built > ~/workspace/out.txt"]
        // What the step sees, not whether it trips (TripwireTests): the tripwires are off here.
        let untripped = try directory.write("untripped.yaml", "version: 1\nisolation: required\ntripwires: off\n")
        let isolated = try StepGuardBinary.run(["run", "--policy", untripped, "-v", "--"] + step, environment: environment)
        #expect(isolated.status == 0)
        #expect(!isolated.stdout.contains("test-only"))
        #expect(isolated.stdout.contains("No such file or directory"))
        #expect(isolated.stdout.contains("still visible"))
        #expect(isolated.stderr.contains("hidden: \(home)/.aws, \(home)/.ssh, \(home)/.npmrc"))
        #expect(try directory.read("home/workspace/out.txt") == "built\n")
        #expect(try directory.read("home/.aws/credentials").contains("test-only"), "the host's file is untouched")
        let control = try StepGuardBinary.run(["run", "--policy", off, "--"] + step, environment: environment)
        #expect(control.stdout.contains("test-only"))
    }

    @Test(.enabled(if: getuid() == 0, "needs root to make a setuid-root helper"))
    func setuidHelperCannotGainRoot() throws {
        defer { directory.remove() }
        let source = try directory.write("helper.c", "#include <stdio.h>\n#include <unistd.h>\nint main(void){ setuid(0); printf(\"euid=%d\\n\", (int)geteuid()); return 0; }\n")
        let helper = directory.path("helper")
        let compile = try ProgramRun.start("/usr/bin/cc", ["-o", helper, source]).wait()
        #expect(compile.status == 0, "\(compile.stderr)")
        chmod(directory.path, 0o755)
        chmod(helper, 0o4755)
        chmod(required, 0o644)
        chmod(off, 0o644)
        func asNobody(_ command: String) throws -> ProgramResult {
            try ProgramRun.start("/usr/sbin/runuser", ["-u", "nobody", "--", "/bin/sh", "-c", command]).wait()
        }
        let direct = try asNobody(helper)
        #expect(direct.stdout == "euid=0\n", "control: the helper does gain root when run directly (\(direct.stderr))")
        let guarded = try asNobody("\(StepGuardBinary.path) run --policy \(required) -- \(helper)")
        #expect(guarded.status == 0, "\(guarded.stderr)")
        #expect(guarded.stdout == "euid=65534\n")
        let unisolated = try asNobody("\(StepGuardBinary.path) run --policy \(off) -- \(helper)")
        #expect(unisolated.stdout == "euid=65534\n", "no_new_privs holds without isolation too")
    }

    @Test func requiredIsolationThatIsImpossibleRunsNothing() throws {
        defer { directory.remove() }
        // A user namespace whose limit of nested user namespaces is 0 is a machine without them.
        let marker = directory.path("ran")
        let auto = try directory.write("auto.yaml", "version: 1\nisolation: auto\n")
        for file in [directory.path, required, auto] { chmod(file, 0o755) }
        func withoutUserNamespaces(_ policy: String) throws -> ProgramResult {
            let script = "echo 0 > /proc/sys/user/max_user_namespaces && exec \"$0\" run --policy \"$1\" -- /bin/sh -c \"touch $2\""
            return try ProgramRun.start("/usr/bin/unshare", ["-U", "--map-current-user", "/bin/sh", "-c", script,
                                                             StepGuardBinary.path, policy, marker]).wait()
        }
        let result = try withoutUserNamespaces(required)
        #expect(result.status == 69)
        #expect(result.stderr.contains("cannot isolate the step: creating user, network, mount and PID namespaces failed"))
        #expect(result.stderr.contains("kernel.apparmor_restrict_unprivileged_userns=0"))
        #expect(!FileManager.default.fileExists(atPath: marker))
        let fallback = try withoutUserNamespaces(auto)
        #expect(fallback.status == 0)
        #expect(fallback.stderr.contains("NOT isolated (isolation: auto fell back to proxy variables only)"))
        #expect(FileManager.default.fileExists(atPath: marker))
    }
}
