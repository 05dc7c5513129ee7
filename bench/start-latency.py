#!/usr/bin/env python3
"""How long after `stepguard run` is started the step itself starts, per binary and policy.

Usage: python3 bench/start-latency.py BINARY [BINARY...]   (e.g. an old and a new release build)

The step is `/bin/date +%s%N`; the latency is its wall-clock time minus the time just before the
binary was spawned (both CLOCK_REALTIME), median of 60 runs after 5 warm-ups, for
bench/minimal.yaml (no service) and bench/services.yaml (one intercepted service). Unlike
run-overhead.sh (the whole run, exit included), this is what a step waits for.
"""
import pathlib
import statistics
import subprocess
import sys
import time

BENCH = pathlib.Path(__file__).resolve().parent


def latency_ms(binary, policy, runs=60, warmups=5):
    samples = []
    for index in range(runs + warmups):
        before = time.time_ns()
        result = subprocess.run([binary, "run", "--policy", str(policy), "--", "/bin/date", "+%s%N"],
                                capture_output=True, text=True, check=True)
        if index >= warmups:
            samples.append((int(result.stdout.strip()) - before) / 1e6)
    return statistics.median(samples)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for binary in sys.argv[1:]:
        for policy in ("minimal.yaml", "services.yaml"):
            print(f"{binary}  {policy:14s} step starts after {latency_ms(binary, BENCH / policy):6.2f} ms (median of 60)")
