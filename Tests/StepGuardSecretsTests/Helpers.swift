import Foundation
@testable import StepGuardSecrets

/// A fresh temporary directory, removed by the caller with `cleanup`.
struct TempDir {
    let url: URL
    var path: String { url.path }

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("stepguard-secrets-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func cleanup() { try? FileManager.default.removeItem(at: url) }

    /// Writes `text` to `relative`, creating directories.
    func write(_ relative: String, _ text: String) throws {
        let file = url.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: file)
    }

    func write(_ relative: String, bytes: [UInt8]) throws {
        let file = url.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: file)
    }

    /// Runs `git` in this directory with a fixed identity and no user configuration.
    @discardableResult
    func git(_ args: String...) throws -> String {
        let result = try run("/usr/bin/env", ["git", "-c", "user.name=Test Author", "-c", "user.email=author@test.invalid",
                                              "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"] + args, cwd: url)
        guard result.status == 0 else {
            throw SecretsError(.git, "git \(args.joined(separator: " ")) failed: \(result.stderr)")
        }
        return result.stdout
    }

    func initRepo() throws {
        try git("init", "-q")
    }
}

struct RunResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs a program and collects its output.
func run(_ executable: String, _ args: [String], cwd: URL, stdin: String? = nil, environment: [String: String] = [:]) throws -> RunResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = args
    process.currentDirectoryURL = cwd
    var env = ProcessInfo.processInfo.environment
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env["GIT_CONFIG_GLOBAL"] = "/dev/null"
    for (k, v) in environment { env[k] = v }
    process.environment = env
    let out = Pipe(), err = Pipe(), input = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = input
    try process.run()
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
    try input.fileHandleForWriting.close()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return RunResult(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
}

/// The built `stepguard` binary (`swift build` first), or `$STEPGUARD_BINARY` (to run these tests
/// against another build, e.g. the one before a change).
let stepguardBinary = ProcessInfo.processInfo.environment["STEPGUARD_BINARY"]
    ?? packageRoot.appendingPathComponent(".build/debug/stepguard").path

/// Fake credentials in real formats, generated at run time (never committed).
enum Fake {
    static func githubPAT(_ seed: UInt64 = 1) -> String { ExampleTemplate.expand("{gh:ghp}", seed: seed) }
    static func awsKeyID(_ seed: UInt64 = 1) -> String { ExampleTemplate.expand("AK{cut}IA{b32:16}", seed: seed) }
    static func stripe(_ seed: UInt64 = 1) -> String { ExampleTemplate.expand("sk{cut}_live_{alnum:24}", seed: seed) }
    static func slack(_ seed: UInt64 = 1) -> String { ExampleTemplate.expand("xo{cut}xb-{digits:12}-{digits:13}-{alnum:24}", seed: seed) }
}

func scanner() throws -> SecretScanner {
    var options = ScanOptions()
    options.workers = 2
    return SecretScanner(detector: try SecretDetector.builtIn(), options: options)
}
