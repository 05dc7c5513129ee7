import Foundation
import StepGuardServerTestSupport
import StepGuardTestSupport

/// A server a test starts and shuts down.
protocol TestServer {
    func shutdown()
}

extension LocalHTTPServer: TestServer {}
extension ServiceStandIn: TestServer {}

/// A test's directory and a server started with it (which may keep its CA or files there), both
/// shut down and removed when the stage's lifetime ends; ``run(_:_:timeout:)`` runs a step in it.
struct TestStage<Server: TestServer>: ~Copyable {
    let directory: TemporaryDirectory
    let server: Server

    /// A new directory and the server `start` starts with it; the directory is removed if `start` throws.
    init(_ start: (TemporaryDirectory) throws -> Server) throws {
        let directory = try TemporaryDirectory()
        do {
            server = try start(directory)
        } catch {
            directory.remove()
            throw error
        }
        self.directory = directory
    }

    deinit {
        server.shutdown()
        directory.remove()
    }

    /// ``RunEgressTests/run(_:_:directory:timeout:)`` in the stage's directory.
    func run(_ policy: String, _ script: String, timeout: TimeInterval = 60) throws -> (ProgramResult, [[String: Any]]) {
        try RunEgressTests.run(policy, script, directory: directory, timeout: timeout)
    }
}

extension TestStage where Server == LocalHTTPServer {
    /// A loopback server at `host` answering with `handler` (``RunEgressTests/echo`` by default).
    init(host: String = "127.0.0.1", handler: @escaping LocalHTTPServer.Handler = RunEgressTests.echo) throws {
        try self.init { _ in try LocalHTTPServer.start(host: host, handler: handler) }
    }
}
