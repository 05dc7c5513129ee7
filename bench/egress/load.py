#!/usr/bin/env python3
"""Load generator for bench/egress: short requests without keep-alive through a proxy (or direct).

Modes (every request opens a new TCP connection, like `wrk -H 'Connection: close'`):
  plain    GET http://TARGET/ (absolute-form to the proxy, or origin-form direct)
  connect  CONNECT TARGET, then GET / inside the tunnel (plain HTTP)
  tls      CONNECT TARGET, then TLS (verified with --cafile), then GET /
  hold     open N tunnels (CONNECT + one keep-alive request each) and hold them; prints when ready
Prints one JSON line: requests, seconds, rps, p50_ms, p99_ms, errors.
run.sh uses it for `hold` only; the CONNECT and TLS cases use connload.c (C, OpenSSL), which is not
the bottleneck (this client topped out near 640 TLS handshakes/s).
"""
import argparse, json, multiprocessing, socket, ssl, sys, threading, time


def request(args, ctx):
    proxy = args.proxy
    host, port = args.target.rsplit(":", 1)
    addr = (proxy.split(":")[0], int(proxy.split(":")[1])) if proxy else ("127.0.0.1" if host == "localhost" else host, int(port))
    s = socket.create_connection(addr, timeout=10)
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if args.mode == "plain":
            path = "http://%s/" % args.target if proxy else "/"
            s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, args.target)).encode())
        else:
            if proxy:
                s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (args.target, args.target)).encode())
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = s.recv(4096)
                    if not chunk:
                        raise IOError("proxy closed")
                    head += chunk
                if not head.startswith(b"HTTP/1.1 200") and not head.startswith(b"HTTP/1.0 200"):
                    raise IOError(head[:40])
            if args.mode == "tls":
                s = ctx.wrap_socket(s, server_hostname=host)
            s.sendall(("GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % args.target).encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        if not (data.startswith(b"HTTP/1.1 200") or data.startswith(b"HTTP/1.0 200")):
            raise IOError(data[:40])
    finally:
        s.close()


def worker(args, deadline, out):
    ctx = ssl.create_default_context(cafile=args.cafile) if args.mode == "tls" else None
    latencies, errors = [], 0
    lock = threading.Lock()

    def loop():
        nonlocal errors
        local = []
        while time.time() < deadline:
            t0 = time.perf_counter()
            try:
                request(args, ctx)
                local.append(time.perf_counter() - t0)
            except Exception:
                with lock:
                    errors += 1
        with lock:
            latencies.extend(local)

    threads = [threading.Thread(target=loop) for _ in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put((latencies, errors))


def hold(args):
    host, port = args.target.rsplit(":", 1)
    proxy = (args.proxy.split(":")[0], int(args.proxy.split(":")[1]))
    sockets = []
    for _ in range(args.n):
        s = socket.create_connection(proxy, timeout=10)
        s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (args.target, args.target)).encode())
        head = s.recv(4096)
        assert b" 200" in head.split(b"\r\n")[0], head
        s.sendall(("GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % args.target).encode())
        s.recv(65536)
        sockets.append(s)
    print(json.dumps({"open_tunnels": len(sockets)}), flush=True)
    time.sleep(args.seconds)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["plain", "connect", "tls", "hold"], required=True)
    p.add_argument("--proxy", default="")
    p.add_argument("--target", required=True)
    p.add_argument("--cafile")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--threads", type=int, default=25)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--n", type=int, default=1000)
    args = p.parse_args()
    if args.mode == "hold":
        return hold(args)
    deadline = time.time() + args.seconds
    out = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=worker, args=(args, deadline, out)) for _ in range(args.processes)]
    for proc in procs:
        proc.start()
    latencies, errors = [], 0
    for _ in procs:
        l, e = out.get()
        latencies += l
        errors += e
    for proc in procs:
        proc.join()
    latencies.sort()
    n = len(latencies)
    pct = lambda q: round(latencies[min(n - 1, int(q * n))] * 1000, 2) if n else None
    print(json.dumps({"requests": n, "seconds": args.seconds, "rps": round(n / args.seconds, 1),
                      "p50_ms": pct(0.5), "p99_ms": pct(0.99), "errors": errors}))


if __name__ == "__main__":
    main()
