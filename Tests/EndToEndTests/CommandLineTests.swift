import Foundation
import StepGuardTestSupport
import Testing

@Suite struct HelpAndVersionTests {
    @Test func versionAndHelp() throws {
        let version = try StepGuardBinary.run(["--version"])
        #expect(version.status == 0)
        #expect(version.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ".").count == 3)
        let help = try StepGuardBinary.run(["--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("SUBCOMMANDS") && help.stdout.contains("run") && help.stdout.contains("Examples"))
    }

    /// `--version` is answered before Swift concurrency starts (issue #17: start-up): it runs where no
    /// thread can be created — as nobody with RLIMIT_NPROC 1 — and prints what ArgumentParser prints.
    /// (Before, the runtime's first worker thread could not start and `--version` hung.)
    @Test func versionStartsNoThreads() throws {
        let limited = try ProgramRun.start("/usr/bin/setpriv", StepGuardBinary.asNobody + ["/usr/bin/prlimit", "--nproc=1", "--", StepGuardBinary.path, "--version"])
            .wait(timeout: 20)
        #expect(limited.status == 0)
        let parsed = try StepGuardBinary.run(["--version", "--version"])
        #expect(parsed.status == 0)
        #expect(!limited.stdout.isEmpty && limited.stdout == parsed.stdout)
    }

    @Test(arguments: [["help", "run"], ["run", "--help"], ["help", "policy", "check"], ["policy", "show", "--help"],
                      ["help", "scan"], ["identity", "verify", "--help"]])
    func everySubcommandHasHelpWithExamples(arguments: [String]) throws {
        let result = try StepGuardBinary.run(arguments)
        #expect(result.status == 0)
        #expect(result.stdout.contains("Examples:"))
        #expect(result.stdout.contains("USAGE"))
    }
}

@Suite struct PolicyCommandTests {
    @Test func checkListsEveryErrorAndExits78() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let good = try directory.write("good.yaml", "version: 1\n")
        let bad = try directory.write("bad.yaml", "version: 1\nmode: loud\negress:\n  allow: [10.0.0.0/99]\n")
        let result = try StepGuardBinary.run(["policy", "check", good, bad])
        #expect(result.status == 78)
        #expect(result.stdout.contains("\(good): ok"))
        #expect(result.stderr.contains("\(bad):2:7: error:"))
        #expect(result.stderr.contains("\(bad):4:11: error: bad egress.allow entry"))
        #expect(result.stderr.contains("\(bad): 2 errors"))
        #expect(try StepGuardBinary.run(["policy", "check", good]).status == 0)
    }

    /// `check` refuses what `run` would refuse before starting a step — an unknown service, a
    /// service without hosts in a step's overrides, an upstream_ca that is no CA file — each once.
    @Test func checkFindsWhatRunWouldRefuse() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try directory.write("not-a-ca.pem", "just text\n")
        let policy = try directory.write("services.yaml", """
        version: 1
        services:
          - service: sigstore-fulcoi
            allow: { credential: workload }
        network:
          upstream_ca: not-a-ca.pem
        steps:
          secrets:
            services:
              - service: hashicorp-vault
                allow: { credential: workload }
        """)
        let result = try StepGuardBinary.run(["policy", "check", policy])
        #expect(result.status == 78)
        #expect(result.stderr.contains("\(policy):3:14: error: unknown service 'sigstore-fulcoi' in services. Did you mean 'sigstore-fulcio'?"), "\(result.stderr)")
        #expect(result.stderr.contains("\(policy):10:"), "\(result.stderr)")
        #expect(result.stderr.contains("service 'hashicorp-vault' has no fixed host"))
        #expect(result.stderr.contains("network.upstream_ca '\(directory.path("not-a-ca.pem"))' cannot be used"), "\(result.stderr)")
        #expect(result.stderr.contains("\(policy): 3 errors"))
        #expect(!result.stdout.contains("ok"))
        let run = try StepGuardBinary.run(["run", "--policy", policy, "--", "/bin/true"])
        #expect(run.status == 78, "run refuses the same policy: \(run.stderr)")
    }

    @Test func shippedPoliciesAreValid() throws {
        let directory = StepGuardBinary.packageRoot.appendingPathComponent("rules/policies")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".yaml") }
        #expect(!files.isEmpty)
        let result = try StepGuardBinary.run(["policy", "check"] + files.map { directory.appendingPathComponent($0).path })
        #expect(result.status == 0, "\(result.stderr)")
    }

    @Test func showAppliesStepOverrides() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let policy = try directory.write("p.yaml", "version: 1\negress:\n  allow: [github.com]\nsteps:\n  publish:\n    egress: { allow: [registry.npmjs.org] }\n")
        let base = try StepGuardBinary.run(["policy", "show", policy])
        #expect(base.stdout.contains("allow: [\"github.com\"]"))
        let step = try StepGuardBinary.run(["policy", "show", "--step", "publish", policy])
        #expect(step.status == 0)
        #expect(step.stdout.contains("allow: [\"github.com\", \"registry.npmjs.org\"]"))
        let builtIn = try StepGuardBinary.run(["policy", "show"])
        #expect(builtIn.stdout.contains("<built-in default>") && builtIn.stdout.contains("long_lived: deny"))
    }
}
