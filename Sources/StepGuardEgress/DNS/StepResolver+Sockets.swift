import CLinuxIO
import Dispatch
import FoundationEssentials
import StepGuardCore
import StepGuardPolicy
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

extension StepResolver {
    /// Answers the DNS queries that arrive on `fd`, a UDP socket (IPv4 or IPv6) bound inside the
    /// step's namespace. Replies leave from the address each query was sent to (IP_PKTINFO /
    /// IPV6_RECVPKTINFO), so a socket bound to `0.0.0.0:53` or `[::]:53` answers for every server
    /// address. The resolver owns `fd` from now on (``stop()`` closes it).
    func serveUDP(_ fd: Int32) throws(EgressError) {
        let ipv6 = try DatagramIO.family(of: fd) == AF_INET6
        try DatagramIO.enablePacketInfo(fd, ipv6: ipv6)
        if ipv6 { DatagramIO.allowAnySource(fd) }
        try io.adopt(fd, SocketHandler(.queries, resolver: self))
    }

    /// Accepts DNS-over-TCP connections on `fd`, a listening TCP socket (owned from now on).
    func serveTCP(listener fd: Int32) throws(EgressError) {
        try io.adopt(fd, SocketHandler(.listener, resolver: self))
    }

    /// Answers DNS over TCP on `fd`, an accepted connection (owned from now on), on a thread of its
    /// own until the client closes it or stays idle for ``Limits/tcpIdleSeconds``.
    func serveTCP(connection fd: Int32) {
        guard io.beginConnection(fd) else {
            close(fd)
            return
        }
        let thread = DetachedThread { [self] in
            defer { io.endConnection(fd) }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
            var idle = timeval(tv_sec: limits.tcpIdleSeconds, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &idle, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &idle, socklen_t(MemoryLayout<timeval>.size))
            while let message = DNSStream.readMessage(fd) {
                let answer: [UInt8]
                switch prepare(message, overTCP: true) {
                case .reply(let reply): answer = reply
                case .drop: return
                case .lookup(let query, let name): answer = resolve(query, name: name, overTCP: true)
                }
                guard DNSStream.writeAll(fd, [UInt8(answer.count >> 8), UInt8(answer.count & 0xFF)] + answer) else { return }
            }
        }
        thread.name = "stepguard dns tcp"
        thread.start()
    }

    /// Watches `fd`, a raw socket (`AF_INET` or `AF_INET6`, `SOCK_RAW`, `IPPROTO_UDP`) in the
    /// step's namespace that sees a copy of every UDP datagram, and reports those that are not DNS
    /// (``reportDroppedDatagram(to:port:now:)``). Owned from now on.
    func watchDroppedUDP(raw fd: Int32, ipv6: Bool) throws(EgressError) {
        if ipv6 { try DatagramIO.enablePacketInfo(fd, ipv6: true) }
        try io.adopt(fd, SocketHandler(.dropped(ipv6: ipv6), resolver: self))
    }

    /// Stops answering: closes every socket handed over, ends the threads (a lookup under way
    /// finishes, its answer is not sent). Returns once the resolver's loop has stopped; call it
    /// from any thread but the resolver's own.
    func stop() {
        io.stop()
    }

    /// One datagram from the step: answered at once, or after a lookup on a lookup thread.
    fileprivate func answerDatagram(_ datagram: ReceivedDatagram, on fd: Int32) {
        guard let peer = datagram.peer else { return }
        let send: @Sendable ([UInt8]) -> Void = { [io] answer in
            guard !io.isStopping else { return }
            DatagramIO.send(fd, answer, to: peer, from: datagram.destination, interface: datagram.interface)
        }
        switch prepare(datagram.bytes, overTCP: false) {
        case .reply(let answer): send(answer)
        case .drop: break
        case .lookup(let query, let name):
            if !io.submit({ [self] in send(resolve(query, name: name, overTCP: false)) }) {
                send(DNSCodec.answer(query, code: .serverFailure, limit: query.udpLimit))
            }
        }
    }

    /// A copy of a UDP datagram the step sent (raw socket): reported unless it is DNS.
    fileprivate func inspectDropped(_ datagram: ReceivedDatagram, ipv6: Bool) {
        let bytes = datagram.bytes
        var udp = 0
        var destination = datagram.destination
        if !ipv6 {
            // IPv4 raw sockets deliver the IP header: its length, fragment offset and destination.
            guard bytes.count >= 20, bytes[0] >> 4 == 4, bytes[9] == 17 else { return }
            udp = Int(bytes[0] & 0x0F) * 4
            guard (UInt16(bytes[6]) << 8 | UInt16(bytes[7])) & 0x1FFF == 0 else { return }  // a later fragment: no UDP header
            destination = .v4(bytes[16..<20].reduce(0) { $0 << 8 | UInt32($1) })
        }
        guard let destination, bytes.count >= udp + 4 else { return }
        let sourcePort = UInt16(bytes[udp]) << 8 | UInt16(bytes[udp + 1])
        let destinationPort = UInt16(bytes[udp + 2]) << 8 | UInt16(bytes[udp + 3])
        guard sourcePort != 53 else { return }  // the resolver's own answers
        reportDroppedDatagram(to: destination, port: destinationPort, now: io.loop.now)
    }

    /// Accepts every pending connection on the listener `fd`.
    fileprivate func acceptConnections(_ fd: Int32) {
        while !io.isStopping {
            let connection = sg_accept(fd)
            guard connection >= 0 else { return }
            serveTCP(connection: connection)
        }
    }
}

/// The handler of one socket the resolver serves, on its epoll loop.
private final class SocketHandler: EpollHandler, @unchecked Sendable {  // `buffer` is only touched on the loop's thread
    enum Kind { case queries, listener, dropped(ipv6: Bool) }
    let kind: Kind
    let resolver: StepResolver
    /// Made on the first datagram, not with the handler: the resolver's sockets are set up before
    /// every isolated step (five 64 KiB buffers zeroed cost about 0.1 ms of its start-up), and a
    /// listener's handler never reads a datagram.
    private lazy var buffer = [UInt8](repeating: 0, count: 65536)

    init(_ kind: Kind, resolver: StepResolver) {
        self.kind = kind
        self.resolver = resolver
    }

    func ready(fd: Int32, events: UInt32) {
        switch kind {
        case .listener:
            resolver.acceptConnections(fd)
        case .queries:
            // At most a batch per wake-up, so that one busy socket does not starve the others.
            for _ in 0..<64 {
                guard let datagram = DatagramIO.receive(fd, buffer: &buffer) else { return }
                resolver.answerDatagram(datagram, on: fd)
            }
        case .dropped(let ipv6):
            for _ in 0..<64 {
                guard let datagram = DatagramIO.receive(fd, buffer: &buffer) else { return }
                resolver.inspectDropped(datagram, ipv6: ipv6)
            }
        }
    }
}

/// The resolver's threads: one epoll loop for its sockets, a few threads for lookups (started as
/// lookups come, up to ``StepResolver/Limits/lookupThreads``: a step that resolves nothing, or only
/// names the policy maps, starts none), and the sockets it owns.
final class ResolverIO: Sendable {
    let loop: EpollLoop
    private let limits: StepResolver.Limits
    /// Lookups waiting for a thread, and how many lookup threads have been started.
    private let jobs = Mutex<(queue: [@Sendable () -> Void], threads: Int)>(([], 0))
    private let jobSignal = DispatchSemaphore(value: 0)
    private let loopEnded = DispatchSemaphore(value: 0)
    private let stopping = Atomic<Bool>(false)
    private let owned = Mutex<Set<Int32>>([])
    private let connections = Mutex<Set<Int32>>([])

    init(limits: StepResolver.Limits) throws(EgressError) {
        self.limits = limits
        loop = try EpollLoop(sweepInterval: 1_000_000_000)
        let loopThread = DetachedThread { [loop, loopEnded] in
            // A failing epoll_wait ends the loop: queries then go unanswered (no answer is ever guessed).
            try? loop.run()
            loopEnded.signal()
        }
        loopThread.name = "stepguard dns"
        loopThread.start()
    }

    /// Starts one more lookup thread; it runs queued lookups until the resolver stops.
    private func startLookupThread() {
        let worker = DetachedThread { [self] in
            while true {
                jobSignal.wait()
                if stopping.load(ordering: .acquiring) { return }
                let job = jobs.withLock { $0.queue.isEmpty ? nil : $0.queue.removeFirst() }
                job?()
            }
        }
        worker.name = "stepguard dns lookup"
        worker.start()
    }

    var isStopping: Bool { stopping.load(ordering: .relaxed) }

    /// Takes `fd` over (non-blocking) and watches it for `handler`.
    func adopt(_ fd: Int32, _ handler: EpollHandler & Sendable) throws(EgressError) {
        guard !isStopping else {
            close(fd)
            throw .cannotListen("the step's DNS resolver has stopped")
        }
        guard fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0 else {
            throw .cannotListen("DNS socket \(fd): \(String(cString: strerror(errno)))")
        }
        owned.withLock { _ = $0.insert(fd) }
        loop.execute { [loop] in
            if !loop.register(fd, handler, events: UInt32(EPOLLIN.rawValue)) { loop.close(fd) }
        }
    }

    /// Queues `job` for a lookup thread; false when too many wait already.
    func submit(_ job: @escaping @Sendable () -> Void) -> Bool {
        let (queued, startThread) = jobs.withLock { jobs in
            guard jobs.queue.count < limits.pendingLookups else { return (false, false) }
            jobs.queue.append(job)
            guard jobs.threads < max(1, limits.lookupThreads) else { return (true, false) }
            jobs.threads += 1
            return (true, true)
        }
        if startThread { startLookupThread() }
        if queued { jobSignal.signal() }
        return queued
    }

    /// Counts a TCP connection in; false when there are too many or the resolver stopped.
    func beginConnection(_ fd: Int32) -> Bool {
        connections.withLock { open in
            guard !isStopping, open.count < limits.tcpConnections else { return false }
            open.insert(fd)
            return true
        }
    }

    func endConnection(_ fd: Int32) {
        connections.withLock { open in
            open.remove(fd)
            close(fd)
        }
    }

    func stop() {
        guard !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let fds = owned.withLock { fds in defer { fds = [] }; return fds }
        loop.execute { [loop] in for fd in fds { loop.close(fd) } }
        loop.stop()
        for _ in 0..<jobs.withLock({ $0.threads }) { jobSignal.signal() }
        connections.withLock { open in for fd in open { shutdown(fd, Int32(SHUT_RDWR)) } }
        loopEnded.wait()
    }
}

/// A datagram as received: its bytes, sender, the address it was sent to and the interface.
struct ReceivedDatagram: Sendable {
    let bytes: [UInt8]
    let peer: DNSEndpoint?
    let destination: IPAddress?
    let interface: Int32
}

/// recvmsg/sendmsg with packet information (the destination address of a datagram, and the
/// source address of a reply). Glibc's module leaves out the options and `in_pktinfo`, so their
/// Linux values and layouts are written here.
enum DatagramIO {
    /// `IP_PKTINFO` (bits/in.h).
    static let ipPacketInfo: Int32 = 8
    /// `IPV6_RECVPKTINFO` and `IPV6_PKTINFO` (netinet/in.h, RFC 3542).
    static let ipv6ReceivePacketInfo: Int32 = 49
    static let ipv6PacketInfo: Int32 = 50
    /// `CMSG_ALIGN(sizeof(struct cmsghdr))` on 64-bit Linux: where a control message's data starts.
    static let controlHeader = 16
    /// `sizeof(struct in_pktinfo)` (ifindex, spec_dst, addr) and `sizeof(struct in6_pktinfo)` (addr, ifindex).
    static let packetInfo4 = 12
    static let packetInfo6 = 20

    static func align(_ length: Int) -> Int { (length + 7) & ~7 }

    /// The address family of the socket `fd`.
    static func family(of fd: Int32) throws(EgressError) -> Int32 {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let status = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        guard status == 0 else { throw .cannotListen("DNS socket \(fd): getsockname: \(String(cString: strerror(errno)))") }
        return Int32(storage.ss_family)
    }

    /// Asks the kernel for each datagram's destination address on `fd`.
    static func enablePacketInfo(_ fd: Int32, ipv6: Bool) throws(EgressError) {
        var on: Int32 = 1
        let status = ipv6 ? setsockopt(fd, Int32(IPPROTO_IPV6), ipv6ReceivePacketInfo, &on, socklen_t(MemoryLayout<Int32>.size))
                          : setsockopt(fd, Int32(IPPROTO_IP), ipPacketInfo, &on, socklen_t(MemoryLayout<Int32>.size))
        guard status == 0 else {
            throw .cannotListen("DNS socket \(fd): cannot ask for the destination address of datagrams (\(ipv6 ? "IPV6_RECVPKTINFO" : "IP_PKTINFO")): \(String(cString: strerror(errno)))")
        }
    }

    /// `IPV6_FREEBIND` (linux/in6.h, Linux 4.15) and `IP_FREEBIND` (linux/in.h), which sets the same
    /// flag on an IPv6 socket on older kernels.
    static let ipv6FreeBind: Int32 = 78
    static let ipFreeBind: Int32 = 15

    /// Lets the IPv6 socket `fd` send from any address. The step's namespace makes every address
    /// local by a `local` default route, which IPv4 takes as enough for a reply's source address
    /// but IPv6 does not: it sends only from an address assigned to an interface (sendmsg fails
    /// with EINVAL), so without this a query to `2001:db8::53` — or any IPv6 server but `::1` —
    /// went unanswered and the client waited out its timeout. Best effort: where neither option
    /// exists, `::1` is still answered (as before), and nothing else changes.
    static func allowAnySource(_ fd: Int32) {
        var on: Int32 = 1
        let size = socklen_t(MemoryLayout<Int32>.size)
        if setsockopt(fd, Int32(IPPROTO_IPV6), ipv6FreeBind, &on, size) != 0 { _ = setsockopt(fd, Int32(IPPROTO_IP), ipFreeBind, &on, size) }
    }

    /// The next datagram on the non-blocking `fd`, nil when none waits.
    static func receive(_ fd: Int32, buffer: inout [UInt8]) -> ReceivedDatagram? {
        var peerStorage = sockaddr_storage()
        return withUnsafeTemporaryAllocation(byteCount: 256, alignment: 8) { control in
            buffer.withUnsafeMutableBytes { data in
                withUnsafeMutablePointer(to: &peerStorage) { peer in
                    var vector = iovec(iov_base: data.baseAddress, iov_len: data.count)
                    return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                        var message = msghdr()
                        message.msg_name = UnsafeMutableRawPointer(peer)
                        message.msg_namelen = socklen_t(MemoryLayout<sockaddr_storage>.size)
                        message.msg_iov = vectorPointer
                        message.msg_iovlen = 1
                        message.msg_control = control.baseAddress
                        message.msg_controllen = control.count
                        var count: Int
                        repeat { count = recvmsg(fd, &message, Int32(MSG_DONTWAIT)) } while count < 0 && errno == EINTR
                        guard count >= 0 else { return nil }
                        var destination: IPAddress?
                        var interface: Int32 = 0
                        var offset = 0
                        let controlLength = Int(message.msg_controllen)
                        while offset + controlHeader <= controlLength {
                            let length = Int(control.load(fromByteOffset: offset, as: UInt.self))
                            guard length >= controlHeader, offset + length <= controlLength else { break }
                            let level = control.load(fromByteOffset: offset + 8, as: Int32.self)
                            let type = control.load(fromByteOffset: offset + 12, as: Int32.self)
                            let payload = offset + controlHeader
                            if level == Int32(IPPROTO_IP), type == ipPacketInfo, length >= controlHeader + packetInfo4 {
                                interface = control.load(fromByteOffset: payload, as: Int32.self)
                                destination = .v4(UInt32(bigEndian: control.loadUnaligned(fromByteOffset: payload + 8, as: UInt32.self)))
                            } else if level == Int32(IPPROTO_IPV6), type == ipv6PacketInfo, length >= controlHeader + packetInfo6 {
                                destination = .v6(Array(UnsafeRawBufferPointer(rebasing: control[payload..<payload + 16])))
                                interface = Int32(bitPattern: control.loadUnaligned(fromByteOffset: payload + 16, as: UInt32.self))
                            }
                            offset += align(length)
                        }
                        let sender = message.msg_namelen > 0 ? DNSEndpoint(socketAddress: UnsafeRawPointer(peer)) : nil
                        return ReceivedDatagram(bytes: Array(data[0..<min(count, data.count)]), peer: sender, destination: destination, interface: interface)
                    }
                }
            }
        }
    }

    /// Sends `bytes` to `peer` from `source` (the address the query was sent to) when known.
    @discardableResult
    static func send(_ fd: Int32, _ bytes: [UInt8], to peer: DNSEndpoint, from source: IPAddress?, interface: Int32) -> Bool {
        withUnsafeTemporaryAllocation(byteCount: 64, alignment: 8) { control in
            control.initializeMemory(as: UInt8.self, repeating: 0)
            var controlLength = 0
            switch source {
            case .v4(let value)?:
                control.storeBytes(of: UInt(controlHeader + packetInfo4), as: UInt.self)
                control.storeBytes(of: Int32(IPPROTO_IP), toByteOffset: 8, as: Int32.self)
                control.storeBytes(of: ipPacketInfo, toByteOffset: 12, as: Int32.self)
                control.storeBytes(of: interface, toByteOffset: controlHeader, as: Int32.self)
                control.storeBytes(of: value.bigEndian, toByteOffset: controlHeader + 4, as: UInt32.self)  // ipi_spec_dst: the source
                controlLength = controlHeader + align(packetInfo4)
            case .v6(let address)?:
                control.storeBytes(of: UInt(controlHeader + packetInfo6), as: UInt.self)
                control.storeBytes(of: Int32(IPPROTO_IPV6), toByteOffset: 8, as: Int32.self)
                control.storeBytes(of: ipv6PacketInfo, toByteOffset: 12, as: Int32.self)
                UnsafeMutableRawBufferPointer(rebasing: control[controlHeader..<controlHeader + 16]).copyBytes(from: address)
                control.storeBytes(of: UInt32(bitPattern: interface), toByteOffset: controlHeader + 16, as: UInt32.self)
                controlLength = controlHeader + align(packetInfo6)
            case nil:
                break
            }
            return peer.withSocketAddress { address, addressLength in
                var data = bytes
                return data.withUnsafeMutableBytes { payload in
                    var vector = iovec(iov_base: payload.baseAddress, iov_len: payload.count)
                    return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                        var message = msghdr()
                        message.msg_name = UnsafeMutableRawPointer(mutating: address)
                        message.msg_namelen = addressLength
                        message.msg_iov = vectorPointer
                        message.msg_iovlen = 1
                        message.msg_control = controlLength > 0 ? control.baseAddress : nil
                        message.msg_controllen = controlLength
                        return sendmsg(fd, &message, Int32(MSG_DONTWAIT)) == bytes.count
                    }
                }
            }
        }
    }
}
