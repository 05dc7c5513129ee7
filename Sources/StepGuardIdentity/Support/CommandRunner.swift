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
        // Blocking reads run on their own threads, never on the cooperative pool (which a
        // blocked read could starve, stalling the timeout below).
        let outReader = BackgroundRead(stdout.fileHandleForReading, limit: outputLimit)
        let errReader = BackgroundRead(stderr.fileHandleForReading, limit: 4096)
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
        let output = await outReader.value()
        let errors = await errReader.value()
        return CommandResult(status: process.terminationStatus, standardOutput: output, standardError: errors, timedOut: timedOut)
    }

}

/// Reads a file handle to its end on a dedicated thread.
private final class BackgroundRead: @unchecked Sendable {
    // @unchecked: `result` and `waiter` are guarded by `lock`.
    private let lock = NSLock()
    private var result: [UInt8]?
    private var waiter: CheckedContinuation<[UInt8], Never>?

    init(_ handle: FileHandle, limit: Int) {
        let thread = Thread { [self] in
            var collected: [UInt8] = []
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                if collected.count < limit { collected.append(contentsOf: chunk.prefix(limit - collected.count)) }
            }
            lock.lock()
            if let waiter {
                self.waiter = nil
                lock.unlock()
                waiter.resume(returning: collected)
            } else {
                result = collected
                lock.unlock()
            }
        }
        thread.start()
    }

    func value() async -> [UInt8] {
        await withCheckedContinuation { continuation in
            lock.lock()
            if let result {
                lock.unlock()
                continuation.resume(returning: result)
            } else {
                waiter = continuation
                lock.unlock()
            }
        }
    }
}
