import StepGuardCore
import NIOCore
import NIOHTTP1
import StepGuardAudit

/// Sent inbound to the ``FrontHandler`` when a request's body is late: it answers `408` through its
/// usual error response, or closes the connection when the response has already started.
struct RequestBodyTimedOut {
    let reason: String
}

/// Limits how long a request's body may take to arrive after its head, so a client that sends a
/// head and then trickles or stalls its body cannot hold a connection (and an upstream) forever.
///
/// It sits right before the ``FrontHandler`` of every connection the proxy reads requests from: the
/// front door (CONNECT and absolute-form `http://`) and each intercepted TLS stream. The clock starts
/// with a head that announces a body (`Content-Length` > 0 or `Transfer-Encoding`) and stops at the
/// request's end, so requests without a body never arm a timer. The deadline is
/// ``ProxyLimits/requestBodyTimeout`` after the head, extended by one second for every
/// ``ProxyLimits/requestBodyMinRate`` bytes received: an upload that keeps a reasonable pace
/// finishes however large it is, a stalled or trickling one does not. A late body is recorded in the
/// audit trail (decision `error`: not a policy decision, it does not change the exit code) and
/// answered `408`.
final class RequestBodyTimeoutHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    static let rule = "built-in: request body timeout"

    private let limits: ProxyLimits
    private let trail: AuditTrail
    /// The CONNECT target and service of an intercepted stream; nil on the proxy's front door.
    private let intercepted: (route: Route, service: BoundService)?
    private var context: ChannelHandlerContext?
    /// The head of the request whose body is awaited, and when it arrived.
    private var pending: (head: HTTPRequestHead, since: NIODeadline)?
    private var received = 0
    private var timer: Scheduled<Void>?

    init(limits: ProxyLimits, trail: AuditTrail, intercepted: (route: Route, service: BoundService)?) {
        self.limits = limits
        self.trail = trail
        self.intercepted = intercepted
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        disarm()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        disarm()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            disarm()
            if Self.announcesBody(head) {
                pending = (head, .now())
                arm(at: deadline)
            }
        case .body(let buffer):
            received += buffer.readableBytes
        case .end:
            disarm()
        }
        context.fireChannelRead(data)
    }

    /// True when the request's framing says a body follows the head.
    static func announcesBody(_ head: HTTPRequestHead) -> Bool {
        if head.headers.contains(name: "transfer-encoding") { return true }
        return head.headers["content-length"].contains { value in
            value.split(separator: ",").contains { (Int($0.trimmingWhitespace()) ?? 1) > 0 }
        }
    }

    /// The head's arrival + the timeout + one second per `requestBodyMinRate` bytes received.
    private var deadline: NIODeadline {
        guard let pending else { return .distantFuture }
        var deadline = pending.since + limits.requestBodyTimeout
        let rate = limits.requestBodyMinRate
        if rate > 0, received > 0 {
            deadline = deadline + .seconds(Int64(received / rate)) + .nanoseconds(Int64(received % rate) * 1_000_000_000 / Int64(rate))
        }
        return deadline
    }

    private func arm(at deadline: NIODeadline) {
        guard let context else { return }
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self] in
            self?.check()
        }
    }

    private func disarm() {
        timer?.cancel()
        timer = nil
        pending = nil
        received = 0
    }

    /// The timer fired: give more time if the body kept its pace, otherwise time the request out.
    private func check() {
        timer = nil
        guard let pending, let context else { return }
        let deadline = self.deadline
        if deadline > .now() { return arm(at: deadline) }
        let waited = (NIODeadline.now() - pending.since).nanoseconds / 1_000_000
        let expected = pending.head.headers.first(name: "content-length").flatMap { Int($0.trimmingWhitespace()) }
        let got = expected.map { "\(received) of \($0) bytes" } ?? "\(received) bytes"
        let reason = "the request body did not arrive in time: \(got) \(Double(waited) / 1000) s after the request head "
            + "(limit \(ProxyLimits.describe(limits.requestBodyTimeout)) plus 1 s per \(limits.requestBodyMinRate) bytes received); "
            + "the request was not completed and the connection is closed"
        trail.record(AuditEvent(type: intercepted == nil ? .egress : .service, decision: .error, reason: reason, rule: Self.rule,
                                subject: subject(pending.head, expected: expected)))
        let event = RequestBodyTimedOut(reason: reason)
        disarm()
        context.fireUserInboundEventTriggered(event)
    }

    private func subject(_ head: HTTPRequestHead, expected: Int?) -> [String: AuditValue] {
        var subject: [String: AuditValue] = ["method": .string(head.method.rawValue), "received_bytes": .int(received)]
        if let expected { subject["content_length"] = .int(expected) }
        if let intercepted {
            subject["host"] = .string(intercepted.route.host.text)
            subject["port"] = .int(Int(intercepted.route.port))
            subject["service"] = .string(intercepted.service.definition.name)
            subject["path"] = .string(String(head.uri.prefix { $0 != "?" }.prefix(512)))
        } else if let target = try? RequestTarget.absolute(head.uri) {
            subject["host"] = .string(target.host.text)
            subject["port"] = .int(Int(target.port))
            subject["path"] = .string(String(target.path.prefix(512)))
        }
        return subject
    }
}

extension FrontHandler {
    /// Puts a ``RequestBodyTimeoutHandler`` right before this handler (called when it is added to a
    /// pipeline). Without it a request could hold the connection forever, so failing closes the connection.
    func addRequestBodyTimeout(_ context: ChannelHandlerContext) {
        let intercepted: (route: Route, service: BoundService)? = if case .intercept(let route, let service) = mode { (route, service) } else { nil }
        let handler = RequestBodyTimeoutHandler(limits: state.limits, trail: state.trail, intercepted: intercepted)
        do {
            try context.pipeline.syncOperations.addHandler(handler, position: .before(self))
        } catch {
            context.close(promise: nil)
        }
    }

    /// Removes this connection's ``RequestBodyTimeoutHandler`` (when it stops carrying HTTP requests).
    static func removeRequestBodyTimeout(_ pipeline: ChannelPipeline.SynchronousOperations) {
        if let handler = try? pipeline.handler(type: RequestBodyTimeoutHandler.self) { _ = pipeline.removeHandler(handler) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let timedOut = event as? RequestBodyTimedOut {
            reject(context, .requestTimeout, decision: "error", rule: RequestBodyTimeoutHandler.rule, reason: timedOut.reason)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
