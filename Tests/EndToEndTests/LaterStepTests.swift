import Foundation
import StepGuardTestSupport
import Testing

/// Issue #16, hole 11: a step must not change how the job's later steps are guarded or run —
/// through `$GITHUB_ENV`, `$GITHUB_PATH` or `$STEPGUARD_STEP`.
@Suite struct LaterStepTests {
    /// What a hostile step does to the runner files, and whether it is a violation.
    static let writes: [(label: String, script: String, violation: String?)] = [
        ("STEPGUARD_STEP line", #"echo STEPGUARD_STEP=debug >> "$GITHUB_ENV""#, "STEPGUARD_STEP"),
        ("LD_PRELOAD heredoc", #"printf 'LD_PRELOAD<<EOF_1\n/tmp/evil.so\nEOF_1\n' >> "$GITHUB_ENV""#, "LD_PRELOAD"),
        ("NODE_OPTIONS after a harmless entry", #"printf 'GREETING=hi\nnode_options=--require /tmp/x.js\n' >> "$GITHUB_ENV""#, "node_options"),
        ("GITHUB_TOKEN", #"echo "GITHUB_TOKEN=ghs_replaced" >> "$GITHUB_ENV""#, "GITHUB_TOKEN"),
        ("LD_PRELOAD behind a byte-order mark", #"printf '\357\273\277LD_PRELOAD=/tmp/evil.so\n' >> "$GITHUB_ENV""#, "LD_PRELOAD"),
        ("LD_PRELOAD behind CRLF line ends", #"printf 'GREETING=hi\r\nLD_PRELOAD=/tmp/evil.so\r\n' >> "$GITHUB_ENV""#, "LD_PRELOAD"),
        ("a directory on GITHUB_PATH", #"echo /tmp/evil-bin >> "$GITHUB_PATH""#, "$GITHUB_PATH"),
        ("an unterminated heredoc", #"printf 'BASH_ENV_X<<END\n/tmp/x\n' >> "$GITHUB_ENV""#, "cannot parse"),
        ("a line that is no entry", #"echo 'just words' >> "$GITHUB_ENV""#, "cannot parse"),
        ("the file truncated", #": > "$GITHUB_ENV""#, "was truncated"),
        ("the file replaced", #"printf 'EARLIER=1\nBASH_ENV=/tmp/x\n' > "$GITHUB_ENV.new"; mv "$GITHUB_ENV.new" "$GITHUB_ENV""#, "replaced by another file"),
        ("the file replaced by a symlink", #"rm "$GITHUB_ENV"; ln -s /tmp/elsewhere "$GITHUB_ENV""#, "other than a regular file"),
        ("a harmless entry", #"echo GREETING=hello >> "$GITHUB_ENV"; printf 'NOTES<<EOF\nline\nEOF\n' >> "$GITHUB_ENV""#, nil),
    ]

    @Test(arguments: writes.indices)
    func runnerFileWrites(_ index: Int) throws {
        let (label, script, violation) = Self.writes[index]
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let githubEnv = try directory.write("set_env", "EARLIER=1\n")
        let githubPath = try directory.write("add_path", "")
        let policy = try directory.write("policy.yaml", "version: 1\nisolation: off\n")
        let result = try StepGuardBinary.run(["run", "--policy", policy, "--audit-log", directory.path("audit.jsonl"), "--", "/bin/sh", "-c", script],
                                             environment: TestEnvironment.base.merging(["GITHUB_ENV": githubEnv, "GITHUB_PATH": githubPath]) { $1 })
        guard let violation else {
            #expect(result.status == 0, "\(label): \(result.stderr)")
            #expect(try directory.read("set_env").contains("GREETING=hello\n"), "\(label): a harmless entry is kept")
            return
        }
        #expect(result.status == 77, "\(label): \(result.stderr)")
        #expect(result.stderr.contains("BLOCKED — persistence"), "\(label): \(result.stderr)")
        #expect(result.stderr.contains(violation), "\(label): \(result.stderr)")
        #expect(try directory.read("audit.jsonl").contains(#""type":"persistence","decision":"deny""#), "\(label)")
        let attributes = try FileManager.default.attributesOfItem(atPath: githubEnv)
        if attributes[.type] as? FileAttributeType == .typeRegular, !label.contains("replaced") {
            // Still the runner's file: what the step appended is gone, what was there before stays.
            #expect(try directory.read("set_env") == "EARLIER=1\n", "\(label)")
            #expect(try directory.read("add_path") == "", "\(label)")
        }
    }

    @Test func gitlabDotenvReportIsCheckedLikeGitHubEnv() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let policy = try directory.write("policy.yaml", "version: 1\nisolation: off\n")
        let report = directory.path("build.env")
        let result = try StepGuardBinary.run(["run", "--policy", policy, "--dotenv-report", report, "--", "/bin/sh", "-c",
                                              "printf 'VERSION=1.2.3\\nSTEPGUARD_STEP=debug\\n' > \(report)"])
        #expect(result.status == 77, "\(result.stderr)")
        #expect(result.stderr.contains("STEPGUARD_STEP") && result.stderr.contains("the dotenv report"), "\(result.stderr)")
        #expect(try directory.read("build.env") == "", "the report the step created is emptied")
        let harmless = try StepGuardBinary.run(["run", "--policy", policy, "--dotenv-report", report, "--", "/bin/sh", "-c",
                                                "echo VERSION=1.2.3 > \(report)"])
        #expect(harmless.status == 0, "\(harmless.stderr)")
    }

    /// A policy with a step override that only switches to audit mode, and one that only adds a destination.
    func policy(in directory: TemporaryDirectory) throws -> String {
        try directory.write("policy.yaml", """
            version: 1
            isolation: off
            steps:
              debug: { mode: audit }
              fetch: { egress: { allow: ["127.0.0.1:1"] } }
            """)
    }

    @Test func stepguardStepFromTheEnvironmentMayNotLoosenThePolicy() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let policy = try policy(in: directory)
        let marker = directory.path("ran")
        let environment = TestEnvironment.base.merging(["STEPGUARD_STEP": "debug"]) { $1 }
        let result = try StepGuardBinary.run(["run", "--policy", policy, "--", "touch", marker], environment: environment)
        #expect(result.status == 77, "\(result.stderr)")
        #expect(result.stderr.contains("BLOCKED — persistence") && result.stderr.contains("mode: audit"), "\(result.stderr)")
        #expect(!result.stderr.contains("audit mode"), "the refusal is enforced, not merely recorded: \(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: marker))

        let explicit = try StepGuardBinary.run(["run", "--policy", policy, "--step", "debug", "--", "touch", marker], environment: environment)
        #expect(explicit.status == 0, "--step chooses the override explicitly: \(explicit.stderr)")
        let adding = try StepGuardBinary.run(["run", "--policy", policy, "--", "true"],
                                             environment: TestEnvironment.base.merging(["STEPGUARD_STEP": "fetch"]) { $1 })
        #expect(adding.status == 0, "an override that only adds a destination may come from the environment: \(adding.stderr)")
    }
}

/// Issue #16, hole 10 (stepguard's part): the caller reads the verdict from a descriptor only
/// stepguard holds, written after the step ended — not from the audit log or stderr, which the
/// step shares.
@Suite struct VerdictRecordTests {
    @Test func theVerdictRecordGoesToItsDescriptorAndTheStepCannotWriteThere() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let record = directory.path("verdict")
        let fake = "stepguard-verdict verdict=allowed exit_code=0 violations=0 mode=enforce"
        let step = "echo '\(fake)' >&3 || exit 9"
        let result = try ProgramRun.start("/bin/sh", ["-c", "exec \"$0\" run --verdict-fd 3 -- /bin/sh -c \"$1\" 3>\"$2\"", StepGuardBinary.path, step, record])
            .wait()
        #expect(result.status == 9, "the step has no descriptor 3: \(result.stderr)")
        #expect(try directory.read("verdict") == "stepguard-verdict verdict=failed exit_code=9 violations=0 mode=enforce\n")
    }

    @Test func aVerdictDescriptorThatIsNotOpenIsAUsageError() throws {
        let result = try StepGuardBinary.run(["run", "--verdict-fd", "7", "--", "true"])
        #expect(result.status == 64)
        #expect(result.stderr.contains("--verdict-fd 7"))
    }
}
