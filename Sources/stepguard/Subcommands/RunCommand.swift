import ArgumentParser
import FoundationEssentials
import StepGuardCore
import Glibc
import StepGuardAudit
import StepGuardEgress
import StepGuardPolicy
import StepGuardSandbox
import Synchronization

/// `stepguard run [options] -- COMMAND [ARGS...]`: wiring only; the decisions live in the libraries.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a build step under policy.",
        discussion: """
        Loads the policy (nothing runs when it is invalid), checks the step's environment, then runs \
        COMMAND in its own process group with stdin, stdout and stderr passed through. SIGINT, SIGTERM, \
        SIGHUP and SIGQUIT are forwarded to the step; every descendant is reaped when it ends. The \
        step inherits no other open descriptor (no socket that would lead around the proxy) unless \
        --keep-fd names it. Without --step, $STEPGUARD_STEP names the step whose overrides apply.

        Isolation (policy key isolation:, default auto: on where user namespaces work; \
        `stepguard doctor` says whether they do here): the step runs in namespaces of its own, \
        sees only its own processes, and finds filesystem.hide paths empty (opening one trips: \
        tripwires:). Its only way out is stepguard: clients that use HTTP(S)_PROXY go through the \
        proxy, and every other TCP connection is captured and decided by the same egress: and \
        services: rules (TLS by its SNI, HTTP by its Host, anything else by host:port); DNS is \
        answered by stepguard, which never forwards a name the policy denies; other UDP is dropped. \
        Without isolation only proxy-variable clients are decided, and the verdict line says so.

        Exit status: the step's own (128+N when killed by signal N) when nothing was denied; \
        77 when the policy blocked something; 64 usage error; 78 invalid policy; 69 a required \
        facility is unavailable; 70 internal error; 126/127 the command is not executable / not found.

        Examples:
          stepguard run -- make test
          stepguard run --policy rules/policies/release.yaml --step publish -- npm publish
          stepguard run --mode audit --audit-log audit.jsonl -- ./deploy.sh
        """
    )

    /// `--policy` and `--step` (without `--step`, `$STEPGUARD_STEP` names the step; see the discussion).
    @OptionGroup var policyOptions: PolicyOptions

    @Option(name: .long, help: ArgumentHelp("Override the policy's mode: enforce, or audit (decide and record, block nothing).", valueName: "mode"))
    var mode: String?

    @Option(name: .long, help: ArgumentHelp("Append one JSON object per decision to this file.", valueName: "file"))
    var auditLog: String?

    @Flag(name: .shortAndLong, help: "Print every decision, not only denials.")
    var verbose = false

    @Option(name: .customLong("keep-fd"), help: ArgumentHelp("Pass this open descriptor (3 or more) to the step, e.g. a make jobserver pipe; repeatable. The step gets no other descriptor beyond stdin, stdout and stderr.", valueName: "n"))
    var keepFDs: [Int32] = []

    @Option(name: .customLong("verdict-fd"), help: ArgumentHelp("Write one `stepguard-verdict verdict=… exit_code=… violations=…` line to this open descriptor (3 or more) once the step has ended; the step never gets it.", valueName: "n"))
    var verdictFD: Int32?

    @Option(name: .customLong("dotenv-report"), help: ArgumentHelp("A GitLab dotenv report the job declares (artifacts:reports:dotenv): what the step writes there is checked like $GITHUB_ENV; repeatable.", valueName: "file"))
    var dotenvReports: [String] = []

    @Argument(parsing: .postTerminator, help: ArgumentHelp("The step to run, after '--'.", valueName: "command"))
    var command: [String] = []

    func validate() throws {
        guard !command.isEmpty else {
            throw ValidationError("no command to run; put it after '--', e.g. stepguard run -- make test")
        }
        if let mode, EnforcementMode(rawValue: mode) == nil {
            throw ValidationError("--mode must be 'enforce' or 'audit', not '\(mode)'")
        }
        for fd in keepFDs {
            guard fd > STDERR_FILENO else {
                throw ValidationError("--keep-fd \(fd): stdin, stdout and stderr are always passed; name descriptors 3 and above")
            }
            guard fcntl(fd, F_GETFD) >= 0 else {
                throw ValidationError("--keep-fd \(fd): descriptor \(fd) is not open; open it where stepguard is started, e.g. `stepguard run --keep-fd \(fd) -- CMD \(fd)<file`")
            }
        }
        if let verdictFD {
            guard verdictFD > STDERR_FILENO, !keepFDs.contains(verdictFD), fcntl(verdictFD, F_GETFD) >= 0 else {
                throw ValidationError("--verdict-fd \(verdictFD): name an open descriptor 3 or above that --keep-fd does not pass to the step, e.g. `stepguard run --verdict-fd 3 -- CMD 3>verdict.txt`")
            }
        }
    }

    /// The options as read by ArgumentParser.
    var invocation: RunInvocation {
        RunInvocation(policy: policyOptions.policy, step: policyOptions.stepOption.step, mode: mode, auditLog: auditLog, verbose: verbose, keepFDs: keepFDs, verdictFD: verdictFD, dotenvReports: dotenvReports, command: command)
    }

    func run() async throws {
        // Off Swift concurrency's threads: the pipeline blocks its thread until the step has ended.
        let invocation = invocation
        try await runOnDedicatedThread { try invocation.run() }
    }
}

extension RunInvocation {
    /// Runs the step under policy (``RunPipeline``) on the calling thread, which must not be one of
    /// Swift concurrency's own; throws ``ExitCode`` with the exit status.
    func run() throws {
        if let verdictFD { _ = fcntl(verdictFD, F_SETFD, FD_CLOEXEC) }  // no program stepguard starts inherits it
        let ending = RunPipeline(invocation: self, environment: ProcessInfo.processInfo.environment).run()
        try ending.conclude()
    }
}

/// How `policy` asks for the step to be started; `protected` are stepguard's own files (the audit
/// log), out of an isolated step's reach; `temporaryDirectory` is the job's (`$TMPDIR`, or `/tmp`).
func spawnOptions(_ policy: Policy, home: String?, proxyPort: UInt16?, keeping descriptors: [Int32] = [],
                  protecting protected: [String] = [], temporaryDirectory: String) -> SpawnOptions {
    // Under capture the host's resolver daemons are covered too (like stepguard's own files: not
    // listed as hidden, no tripwire on them): they would answer names the policy denies.
    let isolation = policy.isolation == .off ? nil
        : IsolationRequest(proxyPort: proxyPort, hiddenPaths: IsolationRequest.expand(policy.filesystem.hide, home: home),
                           protectedFiles: protected + (proxyPort != nil ? IsolationRequest.resolverSockets : []),
                           tripwires: policy.tripwires == .on, capture: proxyPort != nil)
    var options = SpawnOptions(isolation: isolation, fallBackWithoutIsolation: policy.isolation == .auto, maxProcesses: policy.limits.processes,
                               keptDescriptors: descriptors)
    options.temporaryDirectory = temporaryDirectory
    return options
}

/// Records how the step was contained, for the audit log and the verdict line.
final class Containment: Sendable {
    private let text = Mutex<String?>(nil)

    var summary: String? { text.withLock { $0 } }

    /// Adds a caveat to the summary (e.g. "tripwires not enforced").
    func note(_ caveat: String) {
        text.withLock { $0 = $0.map { "\($0), \(caveat)" } ?? caveat }
    }

    func record(_ started: StartedStep, request: IsolationRequest?, trail: AuditTrail) {
        let summary: String
        let reason: String
        var fellBack = false
        if let request, started.isIsolated {
            let sockets = request.reachableDaemonSockets
            let caveats = (sockets.isEmpty ? [] : ["\(sockets.joined(separator: ", ")) stays reachable"])
                + (started.ownProcUnavailable == nil ? [] : ["the host's /proc is visible"])
            summary = caveats.isEmpty ? "isolated" : "isolated, but \(caveats.joined(separator: " and "))"
            let hidden = started.hidden.isEmpty ? "nothing to hide" : "hidden: \(started.hidden.joined(separator: ", "))"
            let socketNote = sockets.isEmpty ? "" : "; \(sockets.joined(separator: ", ")) stays reachable (add it to filesystem.hide to cut it off)"
            let procNote = started.ownProcUnavailable.map {
                "; the step sees the host's /proc (other processes' command lines) because mounting its own failed: \($0)"
            } ?? ""
            let capture = started.capture != nil
                ? "every TCP connection is captured and decided by the proxy, names are resolved by stepguard"
                : "only the proxy is reachable" + (started.captureFallback.map { " (transparent capture is off: \($0))" } ?? "")
            reason = "step runs in its own user, network, mount and PID namespaces; \(capture); \(hidden)\(socketNote)\(procNote)"
        } else if let fallback = started.isolationFallback {
            summary = "NOT isolated (isolation: auto fell back to proxy variables only)"
            reason = "isolation unavailable, falling back to proxy variables only (isolation: auto): \(fallback)"
            fellBack = true
        } else {
            summary = "not isolated (isolation: off)"
            reason = "isolation is off: the step shares the host's network and filesystem"
        }
        text.withLock { $0 = summary }
        trail.record(AuditEvent(type: .isolation, decision: .allow, reason: reason,
                                subject: ["isolated": .bool(started.isIsolated)].merging(fellBack ? [AuditEvent.isolationFellBack: .bool(true)] : [:]) { $1 }))
    }
}
