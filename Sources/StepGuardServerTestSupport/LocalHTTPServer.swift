import StepGuardTestSupport
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import StepGuardEgress
import Synchronization

/// A request received by a ``LocalHTTPServer``.
public struct ReceivedRequest: Sendable {
    public let method: String
    public let uri: String
    public let headers: [(name: String, value: String)]
    public let body: [UInt8]
    /// Which of the server's connections carried it (1 for the first connection accepted, then 2, …).
    public var connection: Int = 0
    /// The trailer fields after a chunked body.
    public var trailers: [(name: String, value: String)] = []

    /// The first value of header `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

/// The response a ``LocalHTTPServer`` handler returns.
public struct ServerResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: Int = 200, headers: [(String, String)] = [("Content-Type", "text/plain")], body: String) {
        self.status = status
        self.headers = headers
        self.body = Array(body.utf8)
    }

    /// A JSON response.
    public static func json(_ text: String, status: Int = 200) -> ServerResponse {
        ServerResponse(status: status, headers: [("Content-Type", "application/json")], body: text)
    }
}

/// A CA made by a test, with its certificate written to a PEM file clients can trust.
public struct TestCertificateAuthority: Sendable {
    public let authority: CertificateAuthority
    /// A PEM file with the CA certificate (for curl --cacert, SSL_CERT_FILE, network.upstream_ca).
    public let certificateFile: String

    public init(directory: TemporaryDirectory, name: String = "stepguard test CA") throws {
        authority = try CertificateAuthority(commonName: name)
        certificateFile = try directory.write("\(name.replacingOccurrences(of: " ", with: "-")).pem", try authority.certificatePEM)
    }

    /// A NIOSSL server context for `hosts` (DNS names or IP literals), HTTP/1.1 only.
    public func serverContext(hosts: [String]) throws -> NIOSSLContext {
        let issued = try authority.issueServerCertificate(for: hosts[0], otherNames: Array(hosts.dropFirst()))
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(try NIOSSLCertificate(bytes: try issued.certificateDER, format: .der))],
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(issued.privateKeyPEM.utf8), format: .pem)))
        configuration.applicationProtocols = ["http/1.1"]
        return try NIOSSLContext(configuration: configuration)
    }
}

/// An HTTP/1.1 server on an ephemeral loopback port, plain or TLS, answering with a handler and
/// recording every request it receives.
public final class LocalHTTPServer: Sendable {
    public typealias Handler = @Sendable (ReceivedRequest) -> ServerResponse

    public let port: Int
    public let host: String
    public let isTLS: Bool
    private let channel: Channel
    private let group: MultiThreadedEventLoopGroup
    private let log: RequestLog

    /// The base URL, e.g. `https://localhost:43121` or `http://127.0.0.1:43121`.
    public var url: String { "\(isTLS ? "https" : "http")://\(isTLS ? "localhost" : host):\(port)" }

    /// Every request received so far.
    public var requests: [ReceivedRequest] { log.requests.withLock { $0 } }

    /// How many connections the server accepted so far.
    public var acceptedConnections: Int { log.connections.load(ordering: .relaxed) }

    /// How many connections are open right now.
    public var openConnections: Int { log.open.load(ordering: .relaxed) }

    private init(port: Int, host: String, isTLS: Bool, channel: Channel, group: MultiThreadedEventLoopGroup, log: RequestLog) {
        self.port = port
        self.host = host
        self.isTLS = isTLS
        self.channel = channel
        self.group = group
        self.log = log
    }

    /// Starts a server on `host` (loopback). With `tls`, serves HTTPS with a certificate for
    /// `localhost`, `127.0.0.1`, `::1` and `tlsNames`.
    public static func start(host: String = "127.0.0.1", tls: TestCertificateAuthority? = nil, tlsNames: [String] = [],
                             handler: @escaping Handler) throws -> LocalHTTPServer {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let sslContext = try tls?.serverContext(hosts: ["localhost", "127.0.0.1", "::1"] + tlsNames)
        let log = RequestLog()
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let connection = log.connections.add(1, ordering: .relaxed).newValue
                log.open.add(1, ordering: .relaxed)
                channel.closeFuture.whenComplete { _ in log.open.subtract(1, ordering: .relaxed) }
                return channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext))
                    }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(RequestHandler(handler: handler, log: log, connection: connection))
                }
            }
        let channel = try bootstrap.bind(host: host, port: 0).wait()
        return LocalHTTPServer(port: channel.localAddress?.port ?? 0, host: host, isTLS: tls != nil,
                               channel: channel, group: group, log: log)
    }

    /// Stops the server.
    public func shutdown() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}

final class RequestLog: Sendable {
    let requests = Mutex<[ReceivedRequest]>([])
    let connections = Atomic<Int>(0)
    let open = Atomic<Int>(0)
}

private final class RequestHandler: ChannelInboundHandler, @unchecked Sendable {
    // @unchecked: used only on its channel's event loop.
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let handler: LocalHTTPServer.Handler
    let log: RequestLog
    let connection: Int
    var head: HTTPRequestHead?
    var body: [UInt8] = []

    init(handler: @escaping LocalHTTPServer.Handler, log: RequestLog, connection: Int) {
        self.handler = handler
        self.log = log
        self.connection = connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
        case .body(var buffer):
            body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end(let trailers):
            guard let head else { return }
            var request = ReceivedRequest(method: head.method.rawValue, uri: head.uri,
                                          headers: head.headers.map { ($0.name, $0.value) }, body: body)
            request.connection = connection
            request.trailers = trailers?.map { ($0.name, $0.value) } ?? []
            log.requests.withLock { $0.append(request) }
            let response = handler(request)
            var headers = HTTPHeaders(response.headers)
            headers.replaceOrAdd(name: "Content-Length", value: String(response.body.count))
            // A handler may answer `Connection: close`: then the server closes, as real servers do.
            let keepAlive = head.isKeepAlive && !response.headers.contains { $0.0.lowercased() == "connection" && $0.1.lowercased() == "close" }
            if !keepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .init(statusCode: response.status), headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))), promise: nil)
            let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if !keepAlive {
                let channel = context.channel
                done.whenComplete { _ in channel.close(promise: nil) }
            }
            self.head = nil
        }
    }
}
