import Foundation

/// Runs the built `stepguard` binary (and other programs) from tests.
public enum StepGuardBinary {
    /// The path of the built `stepguard`: `$STEPGUARD_BINARY`, else the `stepguard` next to the running
    /// test bundle (SwiftPM puts products and test bundles in the same directory).
    public static var path: String {
        if let explicit = ProcessInfo.processInfo.environment["STEPGUARD_BINARY"] { return explicit }
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var directory = URL(fileURLWithPath: executable).deletingLastPathComponent()
        // Test bundles may be nested (…/debug/xyz.xctest/…); walk up until a stepguard is found.
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("stepguard").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory.deleteLastPathComponent()
        }
        return packageRoot.appendingPathComponent(".build/debug/stepguard").path
    }

    /// The repository root (the directory holding Package.swift).
    public static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// Runs `stepguard` with `arguments` and waits for it (see ``ProgramRun``).
    public static func run(_ arguments: [String], environment: [String: String]? = nil, stdin: String? = nil,
                           currentDirectory: String? = nil, timeout: TimeInterval = 60) throws -> ProgramResult {
        try ProgramRun.start(path, arguments, environment: environment, stdin: stdin, currentDirectory: currentDirectory).wait(timeout: timeout)
    }

    /// `setpriv`'s arguments that run the command after them as `nobody:nogroup` without
    /// supplementary groups (only a root test process may switch).
    public static let asNobody = ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]

    /// Runs `stepguard` with `arguments` as `nobody` (through `setpriv`, see ``asNobody``) and waits for it.
    public static func runAsNobody(_ arguments: [String], environment: [String: String]? = nil,
                                   timeout: TimeInterval = 60) throws -> ProgramResult {
        try ProgramRun.start("/usr/bin/setpriv", asNobody + [path] + arguments, environment: environment).wait(timeout: timeout)
    }
}

/// What a finished program did.
public struct ProgramResult: Sendable {
    /// Exit status, or 128 + N when killed by signal N.
    public let status: Int32
    public let stdout: String
    public let stderr: String
}

/// A started program whose output is collected; send it signals, then wait for it.
public final class ProgramRun: @unchecked Sendable {
    // @unchecked: Process is not Sendable; this wrapper only reads it after start and its pipes are
    // drained by one reader each.
    public let process: Process
    private let stdoutPipe = Pipe()
    private let stderrPipe = Pipe()
    private let group = DispatchGroup()
    private let exited = DispatchSemaphore(value: 0)
    private var stdoutData = Data()
    private var stderrData = Data()

    private init(process: Process) { self.process = process }

    /// Starts `executable`. `environment` nil inherits the test's environment (minus proxy variables).
    public static func start(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                             stdin: String? = nil, currentDirectory: String? = nil) throws -> ProgramRun {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment ?? TestEnvironment.base
        if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
        let run = ProgramRun(process: process)
        process.standardOutput = run.stdoutPipe
        process.standardError = run.stderrPipe
        let input = Pipe()
        process.standardInput = input
        process.terminationHandler = { [exited = run.exited] _ in exited.signal() }
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try? input.fileHandleForWriting.close()
        run.drain(run.stdoutPipe) { run.stdoutData = $0 }
        run.drain(run.stderrPipe) { run.stderrData = $0 }
        return run
    }

    /// Runs `executable` in `directory` to its end with the test's own environment plus
    /// `environment`, git's system and global configuration switched off.
    public static func run(_ executable: String, _ arguments: [String], in directory: URL, stdin: String? = nil,
                           environment: [String: String] = [:], timeout: TimeInterval = 600) throws -> ProgramResult {
        var merged = ProcessInfo.processInfo.environment
        merged["GIT_CONFIG_NOSYSTEM"] = "1"
        merged["GIT_CONFIG_GLOBAL"] = "/dev/null"
        merged.merge(environment) { $1 }
        return try start(executable, arguments, environment: merged, stdin: stdin, currentDirectory: directory.path).wait(timeout: timeout)
    }

    private func drain(_ pipe: Pipe, into store: @escaping @Sendable (Data) -> Void) {
        group.enter()
        let handle = pipe.fileHandleForReading
        Thread.detachNewThread { [group] in
            store(handle.readDataToEndOfFile())
            group.leave()
        }
    }

    public var pid: pid_t { process.processIdentifier }

    /// Sends `signal` to the program.
    public func send(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits for the program to end (killing it with SIGKILL after `timeout`) and its output to close.
    public func wait(timeout: TimeInterval = 60) throws -> ProgramResult {
        if exited.wait(timeout: .now() + timeout) == .timedOut {
            kill(process.processIdentifier, SIGKILL)
            // Bounded: Foundation reaps the child only once every process holding the socket it
            // passed to the child has closed it, and a stray grandchild may hold it for ever.
            _ = exited.wait(timeout: .now() + 10)
            throw TestSupportError.timedOut("\(process.executableURL?.lastPathComponent ?? "program") \(process.arguments ?? [])", timeout)
        }
        process.waitUntilExit()
        _ = group.wait(timeout: .now() + 10)
        let status = process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
        return ProgramResult(status: status, stdout: String(decoding: stdoutData, as: UTF8.self),
                             stderr: String(decoding: stderrData, as: UTF8.self))
    }
}

/// Errors of the test helpers.
public enum TestSupportError: Error, CustomStringConvertible {
    case timedOut(String, TimeInterval)
    case commandFailed(String, ProgramResult)

    public var description: String {
        switch self {
        case .timedOut(let what, let seconds): "\(what) did not finish within \(seconds)s"
        case .commandFailed(let what, let result): "\(what) exited \(result.status): \(result.stderr)"
        }
    }
}

/// The environment tests hand to programs: the test's own, without proxy or CI variables that
/// would change what stepguard does.
public enum TestEnvironment {
    public static var base: [String: String] {
        var environment = ProcessInfo.processInfo.environment
        for key in environment.keys where key.lowercased().hasSuffix("_proxy") || key.hasPrefix("GITHUB_") || key.hasPrefix("ACTIONS_")
            || key.hasPrefix("STEPGUARD_") || ["CI", "GITLAB_CI", "BUILDKITE", "CIRCLECI", "TF_BUILD"].contains(key) {
            environment.removeValue(forKey: key)
        }
        return environment
    }

    /// ``base`` with `variables` set.
    public static func with(_ variables: [String: String]) -> [String: String] {
        base.merging(variables) { $1 }
    }
}
