import StepGuardCore
import ArgumentParser
import FoundationEssentials
import Glibc
import StepGuardSecrets

/// `stepguard scan`: find secrets in files, stdin, the staged index or the history.
struct ScanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan",
        abstract: "Find secrets in files, stdin, staged changes or git history.",
        discussion: """
        Exit codes: 0 clean, 1 secrets found, 2 the scan failed (64 for a usage error). \
        Suppress a finding with `stepguard:allow` on its line, or with its fingerprint in \
        .stepguard-ignore.yaml (with a reason and an optional expires date).

        Examples:
          stepguard scan --staged                      # the pre-commit hook
          stepguard scan src/ config/                  # files and directories
          stepguard scan --history --since v1.0.0      # every commit after v1.0.0
          git diff | stepguard scan --stdin
          stepguard scan --format sarif --output results.sarif .
          stepguard scan --verify .                    # ask issuers which secrets are live
        """
    )

    @Argument(help: "Files or directories to scan (default: .). With --history: a revision range such as main..feature.")
    var paths: [String] = []

    @Flag(help: "Scan what `git commit` would record: the index against HEAD, added lines only.")
    var staged = false

    @Flag(help: "Scan the added lines of every commit (each blob once).")
    var history = false

    @Flag(help: "Scan standard input.")
    var stdin = false

    @Option(help: "Repository for --staged and --history.")
    var repo: String = "."

    @Option(help: "With --history: skip this revision and its ancestors.")
    var since: String?

    @Option(name: .customLong("rules"), help: "Directory of extra rules (*.yaml); a rule with a built-in id replaces it. Repeatable.")
    var rulesDirectories: [String] = []

    @Flag(name: .customLong("no-ignore"), help: "Do not honour .gitignore files.")
    var noIgnore = false

    @Option(help: "Skip files larger than this (bytes, or with K/M/G suffix).")
    var maxFileSize: String = "10M"

    @Option(help: "Ignore file (default: .stepguard-ignore.yaml at the repository or scan root).")
    var ignoreFile: String?

    @Option(help: "A previous JSON report: report only findings not in it.")
    var baseline: String?

    @Option(help: "Output format: text, json, sarif, junit, github.")
    var format: String = "text"

    @Option(help: "How secrets are shown: partial (prefix + hash), full (hash only), none (cleartext).")
    var redact: String = "partial"

    @Option(help: "Worker threads (default: number of cores).")
    var threads: Int?

    @Option(help: "Write the report to this file instead of standard output.")
    var output: String?

    @Flag(help: ArgumentHelp("Ask each secret's issuer whether it is live (GitHub, GitLab.com, Slack, npm, Stripe, OpenAI, Anthropic).",
                             discussion: "Sends each distinct secret once, over HTTPS, to its issuer's read-only identity endpoint only; off by default."))
    var verify = false

    @Option(help: "With --verify: time limit for all requests together, in seconds.")
    var verifyTimeout: Double = 30

    @Option(help: ArgumentHelp("With --verify: connect to ADDRESS:PORT for issuer HOST:443 (TLS still checks HOST). Repeatable.", valueName: "HOST:443=ADDRESS:PORT"))
    var verifyResolve: [String] = []

    @Option(help: ArgumentHelp("With --verify: trust the CA certificates in this PEM file instead of the system's.", valueName: "FILE"))
    var verifyCA: String?

    func validate() throws {
        if [staged, history, stdin].filter({ $0 }).count > 1 {
            throw ValidationError("choose one of --staged, --history, --stdin")
        }
        if ReportFormat(rawValue: format) == nil {
            throw ValidationError("unknown --format \(format); use one of \(ReportFormat.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if RedactionMode(rawValue: redact) == nil {
            throw ValidationError("unknown --redact \(redact); use partial, full or none")
        }
        if Self.parseSize(maxFileSize) == nil {
            throw ValidationError("--max-file-size \(maxFileSize) is not a size; write e.g. 1048576, 512K or 10M")
        }
        if (staged || stdin) && !paths.isEmpty {
            throw ValidationError("paths are not used with --staged or --stdin; use --repo DIR")
        }
        if history && paths.count > 1 {
            throw ValidationError("--history takes at most one revision range")
        }
        if !verify && (!verifyResolve.isEmpty || verifyCA != nil) {
            throw ValidationError("--verify-resolve and --verify-ca only apply with --verify")
        }
        if !(verifyTimeout > 0 && verifyTimeout <= 600) {
            throw ValidationError("--verify-timeout \(verifyTimeout): give seconds between 0 and 600")
        }
        for mapping in verifyResolve { _ = try Self.connectTo(mapping) }
        if let verifyCA, !FileManager.default.isReadableFile(atPath: verifyCA) {
            throw ValidationError("--verify-ca \(verifyCA): no readable file there; give a PEM file of CA certificates")
        }
    }

    static func parseSize(_ text: String) -> Int? {
        let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        if let last = text.uppercased().last, let unit = units[last] {
            return Int(text.dropLast()).map { $0 * unit }
        }
        return Int(text)
    }

    func run() throws {
        do {
            let code = try scan()
            throw ExitCode(code)
        } catch let error as SecretsError {
            FileOutput.standardError.write(Data("stepguard scan: error: \(error.message)\n".utf8))
            throw ExitCode(ExitStatus.failed)
        }
    }

    func scan() throws -> Int32 {
        let environment = ProcessInfo.processInfo.environment
        let prefilter = SecretPrefilter.vectorscan(cacheDirectory: SecretPrefilter.cacheDirectory(environment: environment))
        let detector: SecretDetector
        if rulesDirectories.isEmpty {
            detector = try SecretDetector.builtIn(prefilter: prefilter)
        } else {
            var set = SecretRuleSet.builtIn()
            for dir in rulesDirectories { try set.add(directory: URL(fileURLWithPath: dir)) }
            detector = try SecretDetector(ruleSet: set, prefilter: prefilter)
        }
        var options = ScanOptions()
        options.respectGitignore = !noIgnore
        options.maxFileSize = Self.parseSize(maxFileSize)!
        if let threads { options.workers = max(1, threads) }
        options.pairAWSKeysAcrossCommits = verify
        let scanner = SecretScanner(detector: detector, options: options)

        var report: ScanReport
        var root = repo
        if staged {
            // In a hook of `git --git-dir=… --work-tree=… commit` (a bare repository with a work
            // tree elsewhere), git names the repository in GIT_DIR and the work tree has no .git.
            let gitDir = environment["GIT_DIR"].flatMap { $0.isEmpty ? nil : $0 }
            report = try scanner.scanStaged(repository: repo == "." ? (gitDir ?? repo) : repo, environment: environment)
        } else if history {
            report = try scanner.scanHistory(repository: repo, range: paths.first, since: since)
        } else if stdin {
            report = scanner.scan(bytes: FileOutput.readToEnd(fileDescriptor: STDIN_FILENO))
            root = "."
        } else {
            let targets = paths.isEmpty ? ["."] : paths
            report = try scanner.scan(paths: targets)
            var isDirectory = false
            if let first = targets.first, FileManager.default.fileExists(atPath: first, isDirectory: &isDirectory) {
                root = isDirectory ? first : FilePaths.deletingLastComponent(first)
            }
        }
        if staged || history {
            // The ignore file lives at the top of the work tree.
            root = Self.workTreeRoot(repo) ?? repo
        }
        let ignorePath = ignoreFile ?? (root.isEmpty ? "." : root) + "/.stepguard-ignore.yaml"
        if let ignore = try IgnoreFile.load(path: ignorePath) {
            ignore.apply(to: &report)
        } else if ignoreFile != nil {
            throw SecretsError(.unreadable, "\(ignorePath): ignore file not found; check the --ignore-file path")
        }
        if let baseline {
            try Baseline(path: baseline).apply(to: &report)
        }
        var reporter = Reporter(format: ReportFormat(rawValue: format)!, redaction: RedactionMode(rawValue: redact)!,
                                color: output == nil && isatty(1) != 0 && environment["NO_COLOR"] == nil)
        if verify {
            // Only findings that survived the ignore file and the baseline are sent.
            reporter.verification = try self.verify(report)
        }
        let rendered = reporter.render(report, rules: detector.rules)
        if let output {
            try Self.write(rendered, to: output)
        } else {
            FileOutput.standardOutput.write(Data(rendered.utf8))
        }
        for note in report.expiredIgnores {
            FileOutput.standardError.write(Data("stepguard scan: \(note)\n".utf8))
        }
        var summary = Reporter.summary(report)
        if let verification = reporter.verification, !verification.isEmpty {
            summary += "; verified: " + verification.verificationSummary
        }
        FileOutput.standardError.write(summary + "\n")
        if let incomplete = scanner.incomplete.error() { throw incomplete }  // exit 2 after the report
        return report.findings.isEmpty ? 0 : 1
    }

    /// Writes the report into `path` as a shell's `>` does: opened (following a symbolic link),
    /// truncated and written in place. Never replaced by a new file: `--output /dev/null` run as
    /// root must not turn the device into a regular file, nor a link into a copy.
    static func write(_ text: String, to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw SecretsError(.unreadable, "\(path): cannot write the report (\(String(cString: strerror(errno)))); check the directory exists and is writable")
        }
        defer { close(fd) }
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw SecretsError(.unreadable, "\(path): cannot write the report (\(String(cString: strerror(errno)))); check the disk has space")
            }
            bytes = bytes.dropFirst(n)
        }
    }

    static func workTreeRoot(_ path: String) -> String? {
        var dir = URL(fileURLWithPath: path).standardizedFileURL
        while true {
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent(".git").path) { return dir.path }
            let parent = dir.deletingLastPathComponent()
            if parent.path == dir.path { return nil }
            dir = parent
        }
    }
}
