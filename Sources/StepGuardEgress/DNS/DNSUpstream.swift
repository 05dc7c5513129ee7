import StepGuardPolicy
#if canImport(Glibc)
import Glibc
#endif

/// Why an upstream DNS server gave no usable answer.
struct DNSUpstreamError: Error, Sendable, CustomStringConvertible {
    let description: String
}

/// One upstream DNS server (`network.dns`, or the host's own for SRV): a query over UDP, again
/// over TCP when the answer comes back truncated, within one timeout for both.
struct DNSUpstream: Sendable {
    let server: DNSEndpoint
    /// Seconds for the whole exchange.
    var timeout: Double = 2

    /// The server's response to a query for `name` and `type`, checked to answer that question.
    func exchange(name: DNSName, type: UInt16) throws(DNSUpstreamError) -> DNSResponse {
        let deadline = EpollLoop.monotonicNow() + UInt64(timeout * 1_000_000_000)
        let id = UInt16.random(in: 0...UInt16.max)
        let query = DNSCodec.query(id: id, name: name, type: type)
        let response = try exchangeUDP(query, id: id, name: name, type: type, deadline: deadline)
        guard response.truncated else { return response }
        return try exchangeTCP(query, id: id, name: name, type: type, deadline: deadline)
    }

    private func socketFor(_ kind: Int32, deadline: UInt64) throws(DNSUpstreamError) -> Int32 {
        let fd = socket(server.family, kind | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw DNSUpstreamError(description: "cannot open a socket to \(server): \(String(cString: strerror(errno)))") }
        let now = EpollLoop.monotonicNow()
        let remaining = deadline > now ? deadline - now : 1_000_000
        var time = Self.socketTimeout(nanoseconds: remaining)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        // Connected: the kernel drops datagrams from anyone but the server.
        guard server.withSocketAddress({ connect(fd, $0, $1) }) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw DNSUpstreamError(description: "cannot reach the DNS server \(server): \(reason)")
        }
        return fd
    }

    /// `nanoseconds` as a socket timeout (SO_RCVTIMEO, SO_SNDTIMEO), rounded up to the microsecond.
    /// `tv_usec` stays below a second: the kernel refuses 1,000,000 (EDOM), and the socket would
    /// then wait without any timeout.
    static func socketTimeout(nanoseconds: UInt64) -> timeval {
        let microseconds = nanoseconds / 1000 + 1
        return timeval(tv_sec: Int(microseconds / 1_000_000), tv_usec: Int(microseconds % 1_000_000))
    }

    private func checked(_ bytes: [UInt8], id: UInt16, name: DNSName, type: UInt16) -> DNSResponse? {
        guard let response = try? DNSCodec.readResponse(bytes), response.id == id, let question = response.question,
              question.type == type, question.name.hostText == name.hostText else { return nil }
        return response
    }

    private func exchangeUDP(_ query: [UInt8], id: UInt16, name: DNSName, type: UInt16, deadline: UInt64) throws(DNSUpstreamError) -> DNSResponse {
        let fd = try socketFor(Int32(SOCK_DGRAM.rawValue), deadline: deadline)
        defer { close(fd) }
        guard send(fd, query, query.count, 0) == query.count else {
            throw DNSUpstreamError(description: "cannot send to the DNS server \(server): \(String(cString: strerror(errno)))")
        }
        var buffer = [UInt8](repeating: 0, count: 65535)
        while true {
            let now = EpollLoop.monotonicNow()
            guard now < deadline else { break }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, Int32((deadline - now) / 1_000_000) + 1) > 0 else { continue }
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else {
                if count < 0, errno == EINTR || errno == EAGAIN { continue }
                throw DNSUpstreamError(description: "the DNS server \(server) refused the query (\(String(cString: strerror(errno))))")
            }
            // Anything that is not the response to this question is ignored (spoofing, late answers).
            if let response = checked(Array(buffer[0..<count]), id: id, name: name, type: type) { return response }
        }
        throw DNSUpstreamError(description: "the DNS server \(server) did not answer within \(timeout) s")
    }

    private func exchangeTCP(_ query: [UInt8], id: UInt16, name: DNSName, type: UInt16, deadline: UInt64) throws(DNSUpstreamError) -> DNSResponse {
        let fd = try socketFor(Int32(SOCK_STREAM.rawValue), deadline: deadline)
        defer { close(fd) }
        let framed = [UInt8(query.count >> 8), UInt8(query.count & 0xFF)] + query
        guard DNSStream.writeAll(fd, framed), let message = DNSStream.readMessage(fd, deadline: deadline),
              let response = checked(message, id: id, name: name, type: type) else {
            throw DNSUpstreamError(description: "the DNS server \(server) gave no answer over TCP within \(timeout) s")
        }
        return response
    }
}

/// DNS over a byte stream (RFC 1035 §4.2.2): messages framed by a two-byte length.
enum DNSStream {
    /// Reads exactly `count` bytes from a blocking `fd`; nil on end of stream, error or timeout,
    /// or once `deadline` (monotonic nanoseconds) has passed — however slowly the bytes trickle in.
    static func read(_ fd: Int32, count: Int, deadline: UInt64? = nil) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            if let deadline {
                let now = EpollLoop.monotonicNow()
                guard now < deadline else { return nil }
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let ready = poll(&poller, 1, Int32(min((deadline - now) / 1_000_000 + 1, UInt64(Int32.max))))
                if ready < 0, errno == EINTR { continue }
                guard ready > 0 else { return nil }
            }
            let n = bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + done, count - done, 0) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return nil }
            done += n
        }
        return bytes
    }

    /// One length-framed message; nil at the end of the stream (or once `deadline` has passed).
    static func readMessage(_ fd: Int32, deadline: UInt64? = nil) -> [UInt8]? {
        guard let length = read(fd, count: 2, deadline: deadline) else { return nil }
        return read(fd, count: Int(length[0]) << 8 | Int(length[1]), deadline: deadline)
    }

    /// Writes all of `bytes` to a blocking `fd`.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return false }
            done += n
        }
        return true
    }
}
