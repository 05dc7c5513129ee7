import StepGuardCore
import ArgumentParser
import FoundationEssentials
import Glibc
import StepGuardAudit
import StepGuardEgress
import StepGuardIdentity
import StepGuardPolicy
import StepGuardSandbox
import StepGuardSecrets

/// `stepguard doctor`: what this machine gives stepguard, each with a remedy when missing.
struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check what this machine gives stepguard: isolation, process limits, libraries, trust store.",
        discussion: """
        Probes each facility the way `stepguard run` and `stepguard scan` use it — an isolated step \
        is really started — and prints one line each, with what to do when it is missing. With \
        --policy it also says whether that policy's requirements (isolation: required, \
        limits.processes) would let a step start here.

        Exit status: 0 when every facility is there or the policy's requirements are met; 69 when \
        the policy requires something this machine cannot give (the message `run` would give); \
        78 when the policy is invalid.

        Examples:
          stepguard doctor
          stepguard doctor --policy rules/policies/release.yaml
          stepguard doctor --format json
        """
    )

    @Option(name: .long, help: ArgumentHelp("Also check that this policy's requirements can be met here.", valueName: "file"))
    var policy: String?

    @OptionGroup var output: TextOrJSONOption

    func run() throws {
        let policy = try self.policy.map { try loadPolicy(file: $0, step: nil) }
        let (isolation, isolationError) = MachineProbe.isolation(environment: ProcessInfo.processInfo.environment)
        let processLimit = MachineProbe.processLimit()
        let checks = [isolation, processLimit, MachineProbe.landlock(), Self.libgit2(), Self.libcurl(), Self.trustStore(), MachineProbe.codePages()]
        var refusals: [String] = []
        if let policy {
            if let isolationError, policy.isolation != .off {
                if case .isolationUnavailable = isolationError {
                    // Only `required` refuses: `auto` starts the step without isolation.
                    if policy.isolation == .required { refusals.append("isolation: required cannot be met: \(isolationError.description)") }
                } else {
                    refusals.append("an isolated step cannot be started here: \(isolationError.description)")
                }
            }
            if let maximum = policy.limits.processes, processLimit.status == .missing {
                refusals.append("limits.processes: \(maximum) cannot be met: \(processLimit.detail)")
            }
        }
        switch output.format {
        case .text:
            for check in checks {
                printOut("\(check.status.rawValue + String(repeating: " ", count: max(0, 8 - check.status.rawValue.count))) \(check.name): \(check.detail)")
                if let remedy = check.remedy, check.status != .ok { printOut("         remedy: \(remedy)") }
            }
            if let file = self.policy {
                printOut(refusals.isEmpty ? "policy   \(file): a step can start here" : "policy   \(file): a step would not start here (exit 69)")
            }
        case .json:
            printOut(Self.json(checks, policy: self.policy, refusals: refusals))
        }
        for refusal in refusals { printErr("stepguard: \(refusal)") }
        if !refusals.isEmpty { throw ExitCode(ExitStatus.unavailable) }
    }

    static func libgit2() -> MachineCheck {
        let name = "libgit2 (scan --staged, --history)"
        do {
            return MachineCheck(name: name, status: .ok, detail: try Git.libraryVersion())
        } catch {
            return MachineCheck(name: name, status: .missing, detail: error.description,
                                remedy: "install the runtime libgit2 package (Debian 12: libgit2-1.5); scanning directories and stdin works without it")
        }
    }

    static func libcurl() -> MachineCheck {
        let name = "libcurl (JWKS, CI tokens)"
        do {
            return MachineCheck(name: name, status: .ok, detail: try CurlTransport.libraryVersion())
        } catch {
            return MachineCheck(name: name, status: .missing, detail: error.detail, remedy: error.remedy)
        }
    }

    static func trustStore() -> MachineCheck {
        let name = "system trust store"
        guard let bundle = EgressSession.systemTrustBundle() else {
            return MachineCheck(name: name, status: .missing, detail: "no CA bundle in \(EgressSession.systemBundles.joined(separator: ", "))",
                                remedy: "install ca-certificates: intercepted services cannot be verified upstream, and steps get only stepguard's CA")
        }
        return MachineCheck(name: name, status: .ok, detail: "\(bundle.path) (\(bundle.certificates) certificates)")
    }

    static func json(_ checks: [MachineCheck], policy: String?, refusals: [String]) -> String {
        let rows = checks.map { check in
            var fields = ["\"name\":\(JSONText.quoted(check.name))", "\"status\":\"\(check.status.rawValue)\"",
                          "\"detail\":\(JSONText.quoted(check.detail))"]
            if let remedy = check.remedy { fields.append("\"remedy\":\(JSONText.quoted(remedy))") }
            return "{" + fields.joined(separator: ",") + "}"
        }
        var object = "{\"checks\":[" + rows.joined(separator: ",") + "]"
        if let policy {
            object += ",\"policy\":{\"file\":\(JSONText.quoted(policy)),\"can_start\":\(refusals.isEmpty),"
                + "\"refusals\":[" + refusals.map(JSONText.quoted).joined(separator: ",") + "]}"
        }
        return object + "}"
    }
}
