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
        // Started detached (not a child of the test process: Foundation's reaper would block on it).
        let arguments = ["-D", "-e", "-f", "/dev/null", "-h", directory.path("host_key"),
                         "-o", "ListenAddress=127.0.0.1:\(port)", "-o", "AuthorizedKeysFile=\(directory.path("client_key.pub"))",
                         "-o", "PidFile=none", "-o", "UsePAM=no", "-o", "StrictModes=no", "-o", "PermitRootLogin=prohibit-password"]
        let started = try ProgramRun.start("/bin/sh", ["-c", "/usr/sbin/sshd \(arguments.joined(separator: " ")) </dev/null >\(directory.path("sshd.log")) 2>&1 & echo $!"]).wait()
        let sshd = try #require(pid_t(started.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), "\(started.stderr)")
        defer { kill(sshd, SIGTERM) }
        try waitUntilListening(port: port)

        let policy = try directory.write("policy.yaml", """
            version: 1
            isolation: required
            on_violation: fail
            tripwires: off
            egress:
              default: deny
              allow: ["192.0.2.22:22"]
            network:
              resolve: { "192.0.2.22:22": "127.0.0.1:\(port)" }
            """)
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
