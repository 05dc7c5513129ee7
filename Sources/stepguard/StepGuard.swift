import ArgumentParser

@main
struct StepGuard: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stepguard", abstract: "Runtime enforcer for CI/CD steps.", subcommands: [ScanCommand.self])
}
