import NIOCore
import NIOHTTP1

/// Answers a request NIO's HTTP decoder refuses with a ``ProxyAnswer``, instead of the bare 400 of
/// NIO's own `HTTPServerProtocolErrorHandler`. Examples are conflicting Content-Length and
/// Transfer-Encoding, or a header block past the decoder's limit. The client gets the same JSON
/// body and `X-StepGuard-Decision: error` as for every other refusal, with `Connection: close`.
/// It sits where NIO's handler would, and only answers when no response is under way.
final class ProtocolErrorAnswer: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private var responseUnderway = false

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let parserError = error as? HTTPParserError, !responseUnderway {
            let answer = Self.answer(to: parserError)
            context.write(wrapOutboundOut(.head(answer.head(version: .http1_1))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: answer.body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
        // The decoder closes the connection right after; later handlers still see the error.
        context.fireErrorCaught(error)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status.code >= 200: responseUnderway = true  // not a 1xx
        case .end: responseUnderway = false
        case .head, .body: break
        }
        context.write(data, promise: promise)
    }

    /// 431 for a header block past the decoder's limits, 400 for every other framing error.
    static func answer(to error: HTTPParserError) -> ProxyAnswer {
        if error == .headerOverflow {
            return ProxyAnswer(.headersTooLarge, decision: "error", rule: "built-in: header limits",
                               reason: "the request's header block is past the proxy's limits; it was not forwarded", close: true)
        }
        return ProxyAnswer(.badRequest, decision: "error", rule: "built-in: message framing",
                           reason: "the request is malformed (\(what(error))); it was not forwarded", close: true)
    }

    /// What the decoder objected to, in words (its own description is often "unknown").
    static func what(_ error: HTTPParserError) -> String {
        switch error {
        case .invalidContentLength, .unexpectedContentLength: "an invalid or conflicting Content-Length"
        case .invalidChunkSize: "an invalid chunk size"
        case .invalidHeaderToken, .invalidCharactersUsed, .lfExpected: "a header field that is not valid HTTP/1.1"
        case .invalidMethod, .invalidURL, .invalidHost, .invalidPort, .invalidPath, .invalidQueryString, .invalidFragment, .invalidVersion:
            "a request line that is not valid HTTP/1.1"
        default: "framing the parser refuses, e.g. Content-Length together with Transfer-Encoding"
        }
    }
}

extension ChannelPipeline.SynchronousOperations {
    /// The HTTP/1.1 server handlers of a proxy front (plain or intercepted): NIO's decoder with the
    /// proxy's limits, encoder, pipelining and header validation, and ``ProtocolErrorAnswer``.
    func addProxyServerHandlers(limits: NIOHTTPDecoderLimitConfiguration) throws {
        try configureHTTPServerPipeline(position: .last, withPipeliningAssistance: true, withServerUpgrade: nil, withErrorHandling: false,
                                        withOutboundHeaderValidation: true, withEncoderConfiguration: .init(),
                                        withDecoderLimitConfiguration: limits)
        try addHandler(ProtocolErrorAnswer())
    }
}

extension ProxyAnswer {
    /// The response head for NIO's HTTP encoder.
    func head(version: HTTPVersion) -> HTTPResponseHead {
        HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: status.rawValue), headers: HTTPHeaders(fields.map { ($0.name, $0.value) }))
    }
}
