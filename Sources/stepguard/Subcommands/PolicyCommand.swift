import ArgumentParser
import StepGuardAudit
import StepGuardEgress
import StepGuardPolicy

/// `stepguard policy check|show`.
struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Validate policy files and show the effective policy of a step.",
        subcommands: [Check.self, Show.self]
    )

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check",
            abstract: "Validate policy files; list every problem with file:line:col.",
            discussion: """
            Checks what `stepguard run` checks before it starts a step: the policy's syntax and \
            values, the services it names against the service catalog (rules/services), and that \
            network.upstream_ca is a PEM file of CA certificates — for the policy and for each of \
            its steps. Exits 0 when every file is valid and 78 when any is not.

            Examples:
              stepguard policy check rules/policies/release.yaml
              stepguard policy check rules/policies/*.yaml
            """
        )

        @Argument(help: "Policy files to check.")
        var files: [String]

        func run() throws {
            guard !files.isEmpty else { throw ValidationError("name at least one policy file, e.g. stepguard policy check policy.yaml") }
            var failed = false
            for file in files {
                do {
                    let policy = try PolicyLoader.load(file: file)
                    let problems = Self.runProblems(policy)
                    guard problems.isEmpty else {
                        failed = true
                        for problem in problems { printErr(problem.description) }
                        printErr("\(file): \(problems.count) error\(problems.count == 1 ? "" : "s")")
                        continue
                    }
                    printOut("\(file): ok (\(policy.steps.count) step override\(policy.steps.count == 1 ? "" : "s"))")
                } catch {
                    failed = true
                    printErr(error.description)
                    printErr("\(file): \(error.diagnostics.count) error\(error.diagnostics.count == 1 ? "" : "s")")
                }
            }
            if failed { throw ExitCode(ExitStatus.config) }
        }

        /// What `stepguard run` would refuse the policy or any of its steps for. Steps only add
        /// services to the base policy, so each service rule and the upstream CA are checked once.
        static func runProblems(_ policy: Policy) -> [EgressError] {
            var everyRule = policy
            everyRule.services += policy.steps.keys.sorted().flatMap { policy.steps[$0]?.services ?? [] }
            return EgressSession.problems(in: everyRule)
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show",
            abstract: "Print the effective policy (every default filled in) after a step's overrides.",
            discussion: """
            Without a file, shows the built-in default policy that `stepguard run` uses when it is given no --policy.

            Examples:
              stepguard policy show rules/policies/release.yaml
              stepguard policy show --step publish rules/policies/release.yaml
              stepguard policy show
            """
        )

        @OptionGroup var stepOption: StepOption

        @Argument(help: "The policy file (default: the built-in policy).")
        var file: String?

        func run() throws {
            let policy = try loadPolicy(file: file, step: stepOption.step)
            printOut(policy.renderedYAML(), terminator: "")
        }
    }
}

/// Loads `file` (or the built-in default) and applies `step`; prints diagnostics and exits 78 when invalid.
func loadPolicy(file: String?, step: String?) throws -> Policy {
    do {
        let base = try file.map(PolicyLoader.load(file:)) ?? Policy.builtInDefault()
        return try base.effective(forStep: step)
    } catch {
        printErr(error.description)
        printErr("stepguard: the policy is invalid; nothing was run. Fix the errors above (stepguard policy check FILE lists them all).")
        throw ExitCode(ExitStatus.config)
    }
}
