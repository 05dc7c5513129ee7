#!/usr/bin/env python3
"""Summarises hyperfine JSON exports: medians, differences to the first command, peak RSS."""
import json
import resource
import statistics
import subprocess
import sys


def peak_rss_kib(command, repeat=20):
    """Largest resident set of `command` over `repeat` runs (ru_maxrss of the waited children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    for _ in range(repeat):
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def overhead(export, binary, policy, *extra):
    results = json.load(open(export))["results"]
    medians = {r["command"]: statistics.median(r["times"]) * 1000 for r in results}
    base_name = results[0]["command"]
    print(f"{'command':<28}{'median ms':>12}{'added ms':>12}")
    for name, median in medians.items():
        print(f"{name:<28}{median:>12.2f}{median - medians[base_name]:>12.2f}")
    if "bubblewrap" in medians and "stepguard-isolated" in medians:
        bare = medians[base_name]
        ratio = (medians["stepguard-isolated"] - bare) / (medians["bubblewrap"] - bare)
        print(f"isolated stepguard adds {ratio:.2f}x what bubblewrap adds (goal <= 1.0)")
    if "stepguard-version" in medians:
        print(f"stepguard --version: {medians['stepguard-version']:.2f} ms median (goal <= 3 ms)")
    rss = peak_rss_kib([binary, "run", "--policy", policy, "--", "/bin/true"])
    print(f"stepguard peak RSS: {rss / 1024:.1f} MiB (max over 20 runs of run -- /bin/true)")


if __name__ == "__main__":
    kind, *args = sys.argv[1:]
    {"overhead": overhead}[kind](*args)
