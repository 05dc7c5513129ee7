import ArgumentParser
import FoundationEssentials
import StepGuardCore
import Glibc
import StepGuardPipeline
import StepGuardPolicy

/// `stepguard workflow check|wrap`: pipeline YAML analysis and wrapping (logic in StepGuardPipeline).
struct WorkflowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workflow",
        abstract: "Check GitHub Actions / GitLab CI files for identity and token risks; wrap steps under stepguard run.",
        subcommands: [Check.self, Wrap.self]
    )

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check",
            abstract: "Report identity and token risks in workflows with file:line:col.",
            discussion: """
            A directory means its .github/workflows/*.yml|yaml and .gitlab-ci.yml (else every *.yml|yaml in it).
            Silence one finding with a comment on its line or the line above: # stepguard: ignore[RULE-ID]

            Exit status: 0 no finding; 1 findings; 78 a file is unreadable, not valid YAML or not a workflow; \
            2 other errors (e.g. no workflow found). Nothing unparseable is ever reported clean.

            Rules: \(RuleID.allCases.map(\.rawValue).joined(separator: ", ")).

            Examples:
              stepguard workflow check .
              stepguard workflow check --format sarif .github/workflows > stepguard.sarif
              stepguard workflow check --format github .gitlab-ci.yml
            """
        )

        @Option(help: ArgumentHelp("Output format: text, json, sarif or github (workflow-command annotations).", valueName: "format"))
        var format: String = "text"

        @Argument(help: "Workflow files or repository directories (default: the current directory).")
        var paths: [String] = []

        func validate() throws {
            if FindingFormat(rawValue: format) == nil {
                throw ValidationError("--format must be one of: \(FindingFormat.allCases.map(\.rawValue).joined(separator: ", ")); got '\(format)'")
            }
        }

        func run() throws {
            let report = WorkflowChecker.check(paths: paths.isEmpty ? ["."] : paths)
            let rendered = FindingFormat(rawValue: format)!.render(report)
            printOut(rendered, terminator: "")
            if format != "text" { for error in report.errors { printErr(error.description) } }
            let code = ExitStatus.of(report)
            if code != 0 { throw ExitCode(code) }
        }
    }

    struct Wrap: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "wrap",
            abstract: "Make a workflow's run: steps run under stepguard run, changing nothing else.",
            discussion: """
            Each wrapped step gets a custom `shell: stepguard run [--step NAME] -- bash … {0}` (its run: text is not \
            touched; --step is given when the policy has an override of that name: the step's id, else its name \
            as a slug, else JOB-N), each job with a wrapped step gets a setup step, and jobs that need the OIDC token (the policy \
            has identity:, or a step signs keylessly, publishes by trusted publishing or requests the token itself) get \
            id-token: write. Jobs on Windows or macOS runners (or a runs-on that cannot be resolved) are left alone and listed. \
            Every other byte stays as it was. Without --write, prints a unified diff.

            The setup step's default ref (\(WrapOptions.defaultSetupUses)) is a placeholder: pass --ref with the full \
            commit SHA of the stepguard release you trust, so that the step is pinned.

            Exit status: 0 done (or nothing to wrap); 78 unreadable or invalid YAML; 2 not a GitHub workflow, or a \
            setup step or id-token: write that cannot be placed (then nothing is changed).

            Examples:
              stepguard workflow wrap .github/workflows/release.yml
              stepguard workflow wrap --write --only 'publish*' --policy rules/policies/release.yaml .github/workflows/release.yml
            """
        )

        @Flag(help: "Rewrite the file in place instead of printing a diff.")
        var write = false

        @Option(help: ArgumentHelp("Wrap only steps whose id, name or step name matches this glob.", valueName: "glob"))
        var only: String?

        @Option(help: ArgumentHelp("Policy file passed to stepguard run (its identity: section decides id-token: write).", valueName: "file"))
        var policy: String?

        @Option(help: ArgumentHelp("Mode passed to stepguard run: enforce or audit.", valueName: "mode"))
        var mode: String?

        @Option(help: ArgumentHelp("uses: of the setup step (pin it to a commit SHA).", valueName: "ref"))
        var setupUses: String = WrapOptions.defaultSetupUses

        @Option(help: ArgumentHelp("Full 40-character commit SHA to pin the setup step to (replaces the ref of --setup-uses).", valueName: "sha"))
        var ref: String?

        @Option(help: ArgumentHelp("version input of the setup step (a release to download with its checksum verified).", valueName: "version"))
        var setupVersion: String?

        @Argument(help: "The workflow file.")
        var file: String

        func validate() throws {
            if let mode, mode != "enforce", mode != "audit" { throw ValidationError("--mode must be 'enforce' or 'audit', not '\(mode)'") }
            if let ref, WrapOptions.pinned(setupUses, to: ref) == nil {
                throw ValidationError("--ref must be a full 40-character commit SHA, not '\(ref)' (a tag or branch can be moved)")
            }
        }

        func run() throws {
            let uses = ref.flatMap { WrapOptions.pinned(setupUses, to: $0) } ?? setupUses
            var options = WrapOptions(setupUses: uses, setupVersion: setupVersion, policy: policy, mode: mode)
            if let only {
                do { options.only = try Glob(only) } catch { throw ValidationError("--only: \(error.description)") }
            }
            if let policy { (options.policyDeclaresIdentity, options.policySteps) = WrapOptions.policyFacts(file: policy) }
            let result: WrapResult
            do { result = try WorkflowWrapper.wrap(file: file, options: options) } catch {
                printErr(error.description)
                throw ExitCode(ExitStatus.of(error))
            }
            for note in result.skipped { printErr("\(note)") }
            if !result.wrappedSteps.isEmpty, ref == nil, uses == WrapOptions.defaultSetupUses {
                printErr("\(file): note: the setup step uses \(uses), a placeholder; pin it with --ref COMMIT-SHA")
            }
            if write {
                if result.wrapped != result.original {
                    do { try Data(result.wrapped.utf8).write(to: URL(fileURLWithPath: file)) } catch {
                        printErr("\(file): error: cannot write the file: \(describeError(error)); check its permissions")
                        throw ExitCode(ExitStatus.failed)
                    }
                }
                printErr("\(file): wrapped \(result.wrappedSteps.count) step\(result.wrappedSteps.count == 1 ? "" : "s")"
                         + (result.idTokenJobs.isEmpty ? "" : "; id-token: write added to \(result.idTokenJobs.joined(separator: ", "))"))
            } else {
                printOut(result.diff, terminator: "")
            }
        }
    }
}
