import Foundation

/// Result of running a helper command (e.g. `buildkite-agent`).
struct CommandResult: Sendable {
    var status: Int32
    var standardOutput: [UInt8]
    var standardError: [UInt8]
    var timedOut: Bool
}

/// Runs a command with a time limit and bounded output capture.
enum CommandRunner {
    static func run(executable: String, arguments: [String], environment: [String: String],
                    timeout: TimeInterval, outputLimit: Int) async throws -> CommandResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        let stdout = Pipe(), stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let outReader = Task.detached { Self.read(stdout.fileHandleForReading, limit: outputLimit) }
        let errReader = Task.detached { Self.read(stderr.fileHandleForReading, limit: 4096) }
        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        while process.isRunning {
            if Date() >= deadline {
                timedOut = true
                process.terminate()
                try? await Task.sleep(nanoseconds: 200_000_000)
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                break
            }
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
        process.waitUntilExit()
        if timedOut {
            // Do not wait for the pipes: a grandchild may still hold them open. The readers end
            // when it does.
            return CommandResult(status: process.terminationStatus, standardOutput: [], standardError: [], timedOut: true)
        }
        let output = await outReader.value
        let errors = await errReader.value
        return CommandResult(status: process.terminationStatus, standardOutput: output, standardError: errors, timedOut: timedOut)
    }

    private static func read(_ handle: FileHandle, limit: Int) -> [UInt8] {
        var collected: [UInt8] = []
        while true {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            if collected.count < limit { collected.append(contentsOf: chunk.prefix(limit - collected.count)) }
        }
        return collected
    }
}
