import ArgumentParser

/// The `stepguard` command line: a thin layer over the domain libraries. Its entry point is
/// main.swift (`--version` answered before the concurrency runtime starts).
struct StepGuard: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "stepguard",
        abstract: "Enforce policy on a CI/CD step while it runs.",
        discussion: """
        stepguard wraps a build step: it checks the job's workload identity and the step's \
        environment before the step starts, and decides every outbound request while it runs. \
        A denied action does not happen, and the step fails with exit 77.

        Examples:
          stepguard run --policy rules/policies/release.yaml --step publish -- npm publish
          stepguard policy check rules/policies/*.yaml
          stepguard policy show --step publish rules/policies/release.yaml
          stepguard identity verify --policy rules/policies/release.yaml
          stepguard scan --staged
          stepguard workflow check .github/workflows
          stepguard doctor --policy rules/policies/release.yaml
          stepguard help run
        """,
        version: version,
        subcommands: [RunCommand.self, PolicyCommand.self, IdentityCommand.self, ScanCommand.self, WorkflowCommand.self, DoctorCommand.self]
    )
}
