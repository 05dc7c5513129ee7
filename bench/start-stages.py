#!/usr/bin/env python3
"""Where an isolated `stepguard run -- /bin/true` spends its start-up, stage by stage.

Builds stepguard with its stage marks compiled in (`STEPGUARD_STARTUP_TRACE=1 swift build`, which
Package.swift turns into a compilation condition of stepguard's own targets, in .build-trace, apart
from .build), runs `run --policy POLICY -- /bin/true` N times, each started with
posix_spawn, and prints for every stage the median time since the spawn, and the median time the
process took to be gone after its last mark. No mark is compiled into any other build.

Usage: python3 bench/start-stages.py [--runs N] [--policy FILE] [--binary TRACED_BINARY] [--github-runner-environment]

--github-runner-environment runs it with a GitHub runner's 106 variables (bench/github_runner_environment.py)
instead of this process's environment.
"""
import argparse, os, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build():
    args = ["swift", "build", "-c", "release", "--static-swift-stdlib", "--disable-local-rpath", "--product", "stepguard",
            "--scratch-path", ".build-trace"]
    environment = dict(os.environ, STEPGUARD_STARTUP_TRACE="1")
    subprocess.run(args, cwd=ROOT, env=environment, check=True, stdout=sys.stderr)
    path = subprocess.run(args + ["--show-bin-path"], cwd=ROOT, env=environment, check=True, capture_output=True, text=True).stdout.strip()
    return os.path.join(path, "stepguard")


def one_run(binary, policy, environment):
    read_end, write_end = os.pipe()
    devnull = os.open(os.devnull, os.O_RDWR)
    start = time.monotonic_ns() // 1000
    pid = os.posix_spawn(binary, [binary, "run", "--policy", policy, "--", "/bin/true"], environment,
                         file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, write_end, 2)])
    os.close(write_end)
    os.close(devnull)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.waitpid(pid, 0)
    gone = time.monotonic_ns() // 1000
    os.close(read_end)
    marks = []
    for line in b"".join(chunks).decode(errors="replace").splitlines():
        if line.startswith("stepguard-stage "):
            _, micros, stage = line.split(" ", 2)
            marks.append((stage, int(micros) - start))
    if not marks:
        sys.exit(f"start-stages.py: {binary} printed no stage marks: build it with STEPGUARD_STARTUP_TRACE=1 swift build …")
    return marks, gone - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--policy", default=os.path.join(ROOT, "bench", "isolated.yaml"))
    parser.add_argument("--binary", help="a stepguard built with STEPGUARD_STARTUP_TRACE=1 (default: build one in .build-trace)")
    parser.add_argument("--github-runner-environment", action="store_true", help="run with a GitHub runner's environment")
    options = parser.parse_args()
    binary = options.binary or build()
    environment = dict(os.environ)
    if options.github_runner_environment:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from github_runner_environment import github_runner_environment
        environment = github_runner_environment()
    for _ in range(10):
        one_run(binary, options.policy, environment)
    stages, order, gone = {}, [], []
    for _ in range(options.runs):
        marks, total = one_run(binary, options.policy, environment)
        for stage, micros in marks:
            if stage not in stages:
                stages[stage] = []
                order.append(stage)
            stages[stage].append(micros)
        gone.append(total)
    print(f"{os.path.basename(options.policy)}, {options.runs} runs, medians (ms since posix_spawn; a spawn from Python takes about 1 ms itself):")
    previous = 0.0
    for stage in order:
        median = statistics.median(stages[stage]) / 1000
        print(f"  {median:7.2f}  (+{median - previous:5.2f})  {stage}")
        previous = median
    median = statistics.median(gone) / 1000
    print(f"  {median:7.2f}  (+{median - previous:5.2f})  process gone (its status collected)")


if __name__ == "__main__":
    main()
