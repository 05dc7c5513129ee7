import Foundation
import StepGuardServerTestSupport
import StepGuardTestSupport
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// No file-descriptor or memory growth across 10,000 connections through the proxy: CONNECT
/// tunnels, absolute-form requests and denied requests of both kinds, from parallel curl clients.
///
/// The proxy runs in a `stepguard run` process of its own, so that what the other suites running
/// alongside open and allocate does not count: its descriptors and resident memory are read from /proc.
@Suite(.serialized) struct ConnectionLeakTests {
    static func openFDs(_ pid: pid_t) -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? 0 }

    /// Resident memory of `pid` in KiB (`VmRSS` of /proc/PID/status).
    static func residentKiB(_ pid: pid_t) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    /// Runs one curl through the proxy with `urls` (each to /dev/null), `parallel` at a time; returns
    /// how often each "http_code http_connect" pair came back.
    static func curl(proxy: String, _ urls: [String], tunnel: Bool, parallel: Int = 24) throws -> ProgramRun {
        let environment = TestEnvironment.with(["http_proxy": proxy])
        let config = urls.map { "url = \"\($0)\"\noutput = \"/dev/null\"\n" }.joined()
        var arguments = ["-s", "--parallel", "--parallel-max", String(parallel), "--max-time", "30", "-H", "Connection: close",
                         "-w", "%{http_code} %{http_connect}\\n", "-K", "-"]
        if tunnel { arguments.insert("--proxytunnel", at: 0) }
        return try ProgramRun.start("/usr/bin/curl", arguments, environment: environment, stdin: config)
    }

    static func outcomes(_ run: ProgramRun) async throws -> [String: Int] {
        // Waited for on a thread of its own: blocking the cooperative pool would starve tests running alongside.
        let result = try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try run.wait(timeout: 240) }) }
        }
        return result.stdout.split(separator: "\n").reduce(into: [:]) { $0[String($1), default: 0] += 1 }
    }

    /// `count` connections: tunnels and absolute-form requests (allowed and denied, 4:1), two curls at once.
    static func load(proxy: String, upstream: Int, count: Int, tag: String) async throws -> (tunnels: [String: Int], plain: [String: Int]) {
        let half = count / 2
        func urls(_ kind: String) -> [String] {
            (0..<half).map { $0 % 5 == 4 ? "http://127.0.0.3:\(upstream)/\(tag)-\(kind)-denied-\($0)" : "http://127.0.0.1:\(upstream)/\(tag)-\(kind)-\($0)" }
        }
        let tunnels = try curl(proxy: proxy, urls("tunnel"), tunnel: true)
        let plain = try curl(proxy: proxy, urls("plain"), tunnel: false)
        return (try await outcomes(tunnels), try await outcomes(plain))
    }

    /// A `stepguard run` under `policy` whose step only writes its `HTTP_PROXY` to a file in
    /// `directory` and sleeps; returns the run (the caller stops it) and that proxy address, or ""
    /// when the step did not report it within 6 s.
    static func startIdleStep(policy: String, in directory: TemporaryDirectory) async throws -> (run: ProgramRun, proxy: String) {
        let ready = directory.path("proxy")
        let step = try ProgramRun.start(StepGuardBinary.path, ["run", "--policy", policy, "--", "/bin/sh", "-c",
                                                               "echo \"$HTTP_PROXY\" > \(ready).tmp && mv \(ready).tmp \(ready) && exec sleep 600"])
        var proxy = ""
        for _ in 0..<300 where proxy.isEmpty {
            proxy = ((try? String(contentsOfFile: ready, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            if proxy.isEmpty { try await Task.sleep(for: .milliseconds(20)) }
        }
        return (step, proxy)
    }

    @Test func noFileDescriptorOrMemoryGrowthAcross10000Connections() async throws {
        let upstream = try CountingHTTPServer()
        defer { upstream.shutdown() }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let policy = try directory.write("policy.yaml", "version: 1\non_violation: fail\nisolation: off\negress:\n  default: allow\n  allow: [127.0.0.0/8]\n  deny: [127.0.0.3]\n")
        let (step, proxy) = try await Self.startIdleStep(policy: policy, in: directory)
        defer {
            step.send(SIGTERM)
            _ = try? step.wait(timeout: 30)
        }
        #expect(proxy.hasPrefix("http://127.0.0.1:"), "the step did not report the proxy")
        let pid = step.pid

        // Warm up (threads, allocator arenas, lazily made state), then take the baseline.
        _ = try await Self.load(proxy: proxy, upstream: upstream.port, count: 1000, tag: "warm")
        let fdsBefore = try await Self.settle(pid, fds: 0)
        let rssBefore = Self.residentKiB(pid)
        let servedBefore = upstream.served

        let started = Date()
        let (tunnels, plain) = try await Self.load(proxy: proxy, upstream: upstream.port, count: 10_000, tag: "run")
        let seconds = Date().timeIntervalSince(started)
        print("10,000 connections through the proxy in \(String(format: "%.1f", seconds)) s")

        // Per kind: 4,000 allowed (200), 1,000 denied (403 to the request, or to the CONNECT).
        #expect(tunnels == ["200 200": 4000, "000 403": 1000], "\(tunnels)")
        #expect(plain == ["200 000": 4000, "403 000": 1000], "\(plain)")
        #expect(upstream.served - servedBefore == 8000)

        let fdsAfter = try await Self.settle(pid, fds: fdsBefore)
        let rssAfter = Self.residentKiB(pid)
        print("open fds \(fdsBefore) → \(fdsAfter); VmRSS \(rssBefore / 1024) → \(rssAfter / 1024) MiB")
        #expect(fdsAfter <= fdsBefore, "open file descriptors grew from \(fdsBefore) to \(fdsAfter)")
        // The 2,000 denials are kept for the verdict (about 3 MiB). Each tunnel once kept its upstream
        // channel alive for tunnelIdleTimeout: +10 MiB here, caught by 8.
        #expect(rssAfter - rssBefore < 8 * 1024, "resident memory grew from \(rssBefore) KiB to \(rssAfter) KiB")
    }

    /// Waits (up to 10 s) until `pid` has at most `fds` descriptors open (with 0: until the count
    /// stops falling — idle pooled upstream connections are closed after 2 s); returns the count.
    static func settle(_ pid: pid_t, fds: Int) async throws -> Int {
        var last = Int.max
        var steady = 0
        for _ in 0..<100 {
            let now = openFDs(pid)
            if fds > 0, now <= fds { return now }
            steady = now == last ? steady + 1 : 0
            if fds == 0, steady >= 30 { return now }
            last = now
            try await Task.sleep(for: .milliseconds(100))
        }
        return openFDs(pid)
    }
}

/// An upstream that answers every request with `200 ok` and closes, remembering only how many it
/// served (the shared test server keeps every request: that would be the memory growth under test).
/// Plain blocking sockets on a few threads, so it costs the test process far less than the proxy it loads.
final class CountingHTTPServer: Sendable {
    let port: Int
    private let listener: Int32
    private let counter = Atomic<Int>(0)
    private let running = Atomic<Int>(0)
    var served: Int { counter.load(ordering: .relaxed) }

    init(threads: Int = 64) throws {
        (listener, port) = try LoopbackSocket.listen(backlog: 1024)
        for _ in 0..<threads {
            running.add(1, ordering: .relaxed)
            Thread.detachNewThread { [self] in
                serve()
                running.subtract(1, ordering: .relaxed)
            }
        }
    }

    private func serve() {
        let response = Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".utf8)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return  // shut down
            }
            var tv = timeval(tv_sec: 10, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            var request: [UInt8] = []
            while !request.ends(with: [13, 10, 13, 10]) {
                let count = recv(fd, &buffer, buffer.count, 0)
                if count <= 0 { break }
                request += buffer[0..<count]
            }
            if request.ends(with: [13, 10, 13, 10]) {
                counter.add(1, ordering: .relaxed)
                _ = response.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            }
            close(fd)
        }
    }

    /// Stops accepting (wakes every thread blocked in accept) and waits for the threads to end.
    func shutdown() {
        Glibc.shutdown(listener, Int32(SHUT_RDWR))
        for _ in 0..<200 where running.load(ordering: .relaxed) > 0 { usleep(10_000) }
        close(listener)
    }
}

extension Array where Element == UInt8 {
    func ends(with suffix: [UInt8]) -> Bool { count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix }
}
