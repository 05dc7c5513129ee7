import StepGuardPolicy

/// What `stepguard run` was asked to do: the options of ``RunCommand``, read.
struct RunInvocation: Equatable {
    var policy: String?
    var step: String?
    var mode: String?
    var auditLog: String?
    var verbose = false
    /// Descriptors above stderr passed to the step (`--keep-fd`); it gets no others.
    var keepFDs: [Int32] = []
    /// Where the verdict record goes once the step has ended (`--verdict-fd`); never the step's.
    var verdictFD: Int32?
    /// GitLab dotenv reports checked after the step like `$GITHUB_ENV` (`--dotenv-report`).
    var dotenvReports: [String] = []
    var command: [String] = []
}

extension RunInvocation {
    /// The options of `run` that take a value.
    private static let valueOptions: Set<String> = ["--policy", "--step", "--mode", "--audit-log"]

    /// Reads a plain `stepguard run` command line without ArgumentParser, or returns nil so that
    /// ArgumentParser reads it.
    ///
    /// `run` starts before every build step, and ArgumentParser's reflection-driven parsing costs
    /// milliseconds per start. A plain command line is `run`, then `--policy`, `--step`, `--mode`
    /// or `--audit-log` each followed by a value, or `-v`/`--verbose`, each at most once, then `--`
    /// and the command. Anything else (help, `--name=value`, a repeated or unknown option, a value
    /// that looks like an option, an invalid mode, no command) goes to ArgumentParser, which
    /// explains the mistake. `RunArgumentsTests` checks that both read plain command lines alike.
    init?(plainArguments arguments: [String]) {
        guard arguments.first == "run", let terminator = arguments.firstIndex(of: "--"), terminator + 1 < arguments.count else {
            return nil
        }
        var seen = Set<String>()
        var index = 1
        while index < terminator {
            let option = arguments[index]
            guard seen.insert(option == "-v" ? "--verbose" : option).inserted else { return nil }
            if option == "-v" || option == "--verbose" {
                verbose = true
                index += 1
                continue
            }
            guard Self.valueOptions.contains(option), index + 1 < terminator else { return nil }
            let value = arguments[index + 1]
            guard !value.hasPrefix("-") else { return nil }
            switch option {
            case "--policy": policy = value
            case "--step": step = value
            case "--mode": mode = value
            default: auditLog = value
            }
            index += 2
        }
        if let mode, EnforcementMode(rawValue: mode) == nil { return nil }
        command = Array(arguments[(terminator + 1)...])
    }
}
