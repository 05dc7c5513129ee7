import ArgumentParser
import StepGuardPolicy

// Options that several subcommands take, declared once and used through `@OptionGroup`.

/// `--format text|json`, for commands that print either lines for people or one JSON object
/// (`identity verify`, `doctor`).
struct TextOrJSONOption: ParsableArguments {
    /// The two forms of output.
    enum Format: String, ExpressibleByArgument, CaseIterable { case text, json }

    @Option(name: .long, help: ArgumentHelp("Output format: text or json.", valueName: "format"))
    var format: Format = .text

    /// Whether the JSON form was asked for.
    var json: Bool { format == .json }
}

/// `--step NAME`: the step whose overrides (the policy's `steps:` section) apply.
struct StepOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Apply this step's overrides from the policy's steps: section.", valueName: "name"))
    var step: String?
}

/// `--policy FILE` and `--step NAME`: the policy a command applies, as `run` reads it.
struct PolicyOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Policy file (default: the built-in policy; see `stepguard policy show`).", valueName: "file"))
    var policy: String?

    @OptionGroup var stepOption: StepOption

    /// The policy (the built-in one without `--policy`) with the step's overrides; prints the
    /// errors and exits 78 when it is invalid.
    func load() throws -> Policy { try loadPolicy(file: policy, step: stepOption.step) }
}
