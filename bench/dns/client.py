#!/usr/bin/env python3
"""Times DNS queries over UDP on loopback, one at a time: median and p90 in microseconds.

usage: client.py NAME=HOST:PORT:QNAME[:unique] ... [--count N]
Each case sends N A queries (after 50 for warm-up) to HOST:PORT for QNAME, or, with `unique`,
for a new name each time (n<i>.QNAME: never cached). Prints one JSON line per case.
"""
import json
import socket
import struct
import sys
import time


def query(identifier, name):
    question = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    return struct.pack(">HHHHHH", identifier, 0x0100, 1, 0, 0, 0) + question + struct.pack(">HH", 1, 1)


def measure(host, port, name, unique, count):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(5)
    sock.connect((host, port))
    times = []
    for index in range(count + 50):
        identifier = index & 0xFFFF
        qname = f"n{index}.{name}" if unique else name
        message = query(identifier, qname)
        start = time.perf_counter_ns()
        sock.send(message)
        while True:
            answer = sock.recv(4096)
            if struct.unpack(">H", answer[:2])[0] == identifier:
                break
        elapsed = time.perf_counter_ns() - start
        if index >= 50:
            times.append(elapsed / 1000)
    times.sort()
    return {"median_us": round(times[len(times) // 2], 1), "p90_us": round(times[len(times) * 9 // 10], 1),
            "min_us": round(times[0], 1), "queries": len(times), "rcode": answer[3] & 0x0F}


def main():
    count = 2000
    cases = []
    arguments = sys.argv[1:]
    if "--count" in arguments:
        position = arguments.index("--count")
        count = int(arguments[position + 1])
        del arguments[position:position + 2]
    for argument in arguments:
        label, spec = argument.split("=", 1)
        parts = spec.split(":")
        cases.append((label, parts[0], int(parts[1]), parts[2], len(parts) > 3 and parts[3] == "unique"))
    for label, host, port, name, unique in cases:
        result = measure(host, port, name, unique, count)
        print("BENCH " + json.dumps({"case": label, **result}), flush=True)


if __name__ == "__main__":
    main()
