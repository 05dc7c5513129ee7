import ArgumentParser
import FoundationEssentials
import Glibc
import StepGuardAudit
import StepGuardCore
import StepGuardEgress
import StepGuardIdentity
import StepGuardPipeline
import StepGuardPolicy
import StepGuardSandbox
import StepGuardSecrets

/// `stepguard run` as a pipeline whose stages read in order: load the policy, preflight (step
/// source, identity, credentials) while the proxy starts, spawn the step, supervise it, finish.
/// Each stage either hands the next what it needs or ends the run with a ``RunEnding``; the one
/// place where an ending becomes output and an exit status is ``RunEnding/conclude(_:)``. The
/// process environment is read once, by the caller, and passed in.
struct RunPipeline {
    let invocation: RunInvocation
    let environment: [String: String]

    /// What the policy stage hands on.
    struct Loaded {
        let policy: Policy
        let trail: AuditTrail
        let stepName: String?
        let looserStep: [String]
    }

    /// What the preflight hands on when the step may start.
    struct Cleared {
        let job: VerifiedJob?
        let stepEnvironment: [String: String]
        let egress: EgressSession
    }

    /// Where the proxy's trust bundle directory is made (`$TMPDIR`, or `/tmp`), and an isolated
    /// spawn's private directory when no memory file system takes it.
    private var temporaryDirectory: String {
        SpawnOptions.temporaryDirectory(in: environment)
    }

    /// Runs every stage on the calling thread (see ``BackgroundWork``: never one of Swift
    /// concurrency's own); the ending says how the run ended.
    func run() -> RunEnding {
        do throws(RunEnding) {
            let loaded = try load()
            StartupTrace.mark("policy loaded")
            let link = StepProxyLink(supervisor: StepSupervisor(gracePeriod: .milliseconds(loaded.policy.gracePeriod.milliseconds)),
                                     trail: loaded.trail)
            let cleared = try preflight(loaded, link: link)
            defer { cleared.egress.stop(processExits: true) }  // stepguard exits right after the step
            return try superviseStep(loaded, cleared, link: link)
        } catch {
            return error
        }
    }

    // MARK: Stages

    /// Stage 1: the policy (file, built-in default, step overrides, `--mode`) and the audit trail.
    private func load() throws(RunEnding) -> Loaded {
        let stepName = invocation.step ?? environment["STEPGUARD_STEP"].flatMap { $0.isEmpty ? nil : $0 }
        var policy: Policy
        let looserStep: [String]
        do {
            policy = try loadPolicy(file: invocation.policy, step: stepName)
            if let mode = invocation.mode { policy.mode = EnforcementMode(rawValue: mode)! }
            (policy, looserStep) = try Preflight.looserStepFromEnvironment(policy, file: invocation.policy, step: stepName,
                                                                          explicit: invocation.step != nil, mode: invocation.mode)
        } catch {
            throw .exit(ExitStatus.config)  // loadPolicy has printed why
        }
        do {
            let trail = try AuditTrail(
                context: .init(policy: policy.source, step: stepName, auditOnly: policy.mode == .audit, command: invocation.command[0]),
                logPath: invocation.auditLog, verbose: invocation.verbose)
            return Loaded(policy: policy, trail: trail, stepName: stepName, looserStep: looserStep)
        } catch {
            throw .invalidConfiguration(error.description)
        }
    }

    /// Stage 2: the step source, the job's identity and the environment's credentials, and the
    /// proxy: started meanwhile when the policy names services, else once they have passed. The
    /// step may start only once both are done.
    private func preflight(_ loaded: Loaded, link: StepProxyLink) throws(RunEnding) -> Cleared {
        let (policy, trail) = (loaded.policy, loaded.trail)
        let preflight = Preflight(policy: policy, trail: trail)
        let stepSourcePassed = preflight.checkStepFromEnvironment(loaded.stepName, loosenings: loaded.looserStep)
        let identityPassed: Bool
        let job: VerifiedJob?
        let environment = environment
        let verified: Result<(passed: Bool, identity: VerifiedJob?), IdentityError> = policy.identity == nil ? .success((true, nil))
            : waitForTask {
                do throws(IdentityError) { return .success(try await preflight.verifyIdentity(environment: environment)) } catch { return .failure(error) }
            }
        switch verified {
        case .success(let outcome): (identityPassed, job) = outcome
        case .failure(let error): throw .invalidConfiguration("\(error.description); nothing was run")
        }
        let temporaryDirectory = temporaryDirectory
        let startEgress = { @Sendable () -> Result<EgressSession, EgressError> in
            do throws(EgressError) {
                return .success(try EgressSession.start(
                    policy: policy, identity: job.map { JobIdentity($0.identity) }, trail: trail,
                    verifier: job.map { IdentityWorkloadVerifier(verifier: $0.verifier, job: $0.identity) },
                    detector: BuiltInRulesOnFirstUse(), temporaryDirectory: temporaryDirectory, deferThreads: true,
                    stopStep: link.stopStep))
            } catch {
                return .failure(error)
            }
        }
        // With services the proxy makes a CA (about a millisecond): it starts on a thread of its own
        // while the environment is checked. Without, its start (about 0.3 ms) costs less than
        // handing it to another thread, which on a 2-vCPU VM began running 0.85 ms after it was
        // made (bench/start-stages.py): it starts here, once the preflight has passed.
        let egressInBackground = identityPassed && !policy.services.isEmpty ? BackgroundWork(name: "stepguard egress", startEgress) : nil
        func stopEgress() {
            if case .success(let session)? = egressInBackground?.value { session.stop() }
        }
        let stepEnvironment: [String: String]?
        do {
            stepEnvironment = try preflight.checkCredentials(environment: environment)
            StartupTrace.mark("environment checked")
        } catch {
            stopEgress()
            throw .internalFailure("cannot load the credential rules: \(error)")
        }
        guard identityPassed, stepSourcePassed, let stepEnvironment else {
            stopEgress()
            throw .verdict(finish(loaded, stepStatus: nil, outcome: "was not started", isolation: nil))
        }
        let proxy = egressInBackground?.value ?? startEgress()
        StartupTrace.mark("proxy started")
        switch proxy {
        case .success(let egress): return Cleared(job: job, stepEnvironment: stepEnvironment, egress: egress)
        case .failure(let error): throw .egressUnavailable(error)
        }
    }

    /// Stages 3 and 4: spawn the step (isolated as the policy asks), hand the proxy its listener,
    /// arm the tripwires, and supervise it until it and all its descendants have ended; then finish.
    private func superviseStep(_ loaded: Loaded, _ cleared: Cleared, link: StepProxyLink) throws(RunEnding) -> RunEnding {
        let (policy, trail, egress) = (loaded.policy, loaded.trail, cleared.egress)
        // What the step must not have leaves stepguard's own environment block too (/proc/PID/environ).
        ProcessEnvironment.wipe(Set(environment.keys).subtracting(cleared.stepEnvironment.keys))
        let laterSteps = LaterStepFiles(environment: environment, dotenvReports: invocation.dotenvReports)  // where $GITHUB_ENV/$GITHUB_PATH stand before the step
        let step = StepCommand(arguments: invocation.command, environment: cleared.stepEnvironment.merging(egress.environment) { _, proxy in proxy })
        let options = spawnOptions(policy, home: environment["HOME"], proxyPort: UInt16(egress.port), keeping: invocation.keepFDs,
                                   protecting: invocation.auditLog.map { [URL(fileURLWithPath: $0).standardizedFileURL.path] } ?? [],
                                   temporaryDirectory: temporaryDirectory)
        let containment = Containment()
        let revocation = RevocationGuard(policy: policy, trail: trail, stepEnvironment: cleared.stepEnvironment, egress: egress,
                                         identityExpiry: cleared.job?.identity.expiresAt)
        let termination: StepTermination
        StartupTrace.mark("spawning")
        do {
            termination = try link.supervisor.run(step, options: options) { [policy] started in
                StartupTrace.mark("step started")
                egress.startServing()
                link.handOver(started, to: egress)
                StartupTrace.mark("proxy listeners handed over")
                containment.record(started, request: options.isolation, trail: trail)
                TripwireGuard.arm(started, policy: policy, trail: trail, supervisor: link.supervisor).map(containment.note)
                var subject: [String: AuditValue] = ["pid": .int(Int(started.pid)), "program": .string(step.arguments[0]),
                                                    "arguments": .int(step.arguments.count - 1)]
                if let limit = started.processLimit { subject["process_limit"] = .string(limit) }
                trail.record(AuditEvent(type: .process, decision: .allow, reason: "step started", subject: subject))
                ExecutableCode.collapseIntoHugePages()  // for the next runs, while this step runs
            }
        } catch {
            throw .spawnFailed(error, trail: trail)
        }
        // Stage 5: what the step left behind, revocation after a violation, the verdict.
        StartupTrace.mark("step ended")
        if let tampering = trail.logTampering() {
            trail.record(AuditEvent(type: .isolation, decision: .deny, reason: "\(tampering); the step must not touch stepguard's audit log",
                                    rule: "built-in: audit log integrity"))
        }
        Preflight(policy: policy, trail: trail).recordLaterStepChanges(laterSteps)
        trail.record(AuditEvent(type: .exit, decision: .allow, reason: "step \(termination)",
                                subject: ["exit_code": .int(Int(termination.exitCode))]))
        revocation.stepEnded()
        return .verdict(finish(loaded, stepStatus: termination.exitCode, outcome: termination.description, isolation: containment.summary))
    }

    /// The verdict, written to the trail (line, summary) and the `--verdict-fd` record.
    private func finish(_ loaded: Loaded, stepStatus: Int32?, outcome: String, isolation: String?) -> Verdict {
        let verdict = Verdict(stepExitCode: stepStatus, outcome: outcome, events: loaded.trail.recorded,
                              unkeptViolations: loaded.trail.unkeptViolations, auditOnly: loaded.policy.mode == .audit, isolation: isolation, exitCode: ExitStatus.run)
        loaded.trail.finish(verdict, environment: environment)
        invocation.writeRecord(of: verdict)
        return verdict
    }
}

/// How a run ended: the one place where that becomes output on stderr and an exit status.
enum RunEnding: Error {
    /// The verdict (already written to the trail and the record).
    case verdict(Verdict)
    /// The configuration cannot be used; nothing was run.
    case invalidConfiguration(String)
    /// The proxy cannot start; nothing was run.
    case egressUnavailable(EgressError)
    /// The step could not be started or supervised.
    case spawnFailed(SandboxError, trail: AuditTrail)
    /// stepguard itself failed.
    case internalFailure(String)
    /// Already reported; exit with this status.
    case exit(Int32)

    /// Prints what the trail did not already say and throws the exit status (none for 0).
    func conclude() throws {
        let status: Int32
        switch self {
        case .verdict(let verdict):
            status = verdict.exitCode
        case .invalidConfiguration(let message):
            printErr("stepguard: \(message)")
            status = ExitStatus.config
        case .egressUnavailable(let error):
            printErr("stepguard: \(error.description); nothing was run")
            status = ExitStatus.of(error)
        case .spawnFailed(let error, let trail):
            switch error {
            case .isolationUnavailable:
                trail.record(AuditEvent(type: .isolation, decision: .deny, reason: error.description, rule: "isolation: required"))
            case .limitUnavailable:
                trail.record(AuditEvent(type: .isolation, decision: .deny, reason: error.description, rule: "limits.processes"))
            default:
                printErr("stepguard: \(error.description)")
            }
            status = ExitStatus.of(error)
        case .internalFailure(let message):
            printErr("stepguard: \(message)")
            status = ExitStatus.software
        case .exit(let code):
            status = code
        }
        if status != 0 { throw ExitCode(status) }
    }
}

/// The hand-over between the sandbox and the proxy: the proxy stops the step on a violation with
/// `on_violation: kill` (or when it fails), and once the step has started, the proxy serves the
/// listener made inside the step's network namespace — or the step is stopped (fail closed).
final class StepProxyLink: Sendable {
    let supervisor: StepSupervisor
    private let trail: AuditTrail

    init(supervisor: StepSupervisor, trail: AuditTrail) {
        self.supervisor = supervisor
        self.trail = trail
    }

    /// What the proxy calls to stop the step.
    var stopStep: @Sendable () -> Void { { [supervisor] in supervisor.stop() } }

    /// Gives the proxy the step's in-namespace listener, if the step is isolated.
    func handOver(_ started: StartedStep, to egress: EgressSession) {
        guard let listener = started.proxyListener else { return }
        do {
            try egress.serve(listeningSocket: listener)
            if let capture = started.capture {
                try egress.serveResolver(udp: [capture.dnsUDP4, capture.dnsUDP6].compactMap { $0 }, tcp: capture.dnsTCP,
                                         raw4: capture.rawUDP4, raw6: capture.rawUDP6)
                egress.serveCapture(listeners: [capture.listener4, capture.listener6].compactMap { $0 })
            }
        } catch {
            trail.record(AuditEvent(type: .isolation, decision: .deny, reason: "\(error); the step is stopped (fail closed)",
                                    rule: "built-in: fail closed"))
            supervisor.stop()
        }
    }
}
