#!/usr/bin/env bash
# What tripwires cost a file-heavy step: a step that opens 200,000 ordinary files (10,000 files,
# 20 passes) under `stepguard run` with isolation, tripwires on and off, alternating in one run.
# The step times its own opens (stepguard's start-up is not in the figure); reports medians and
# the ratio. A HOME with the default credential stores present (so there is something to watch).
# Then the names filter's cost: a step (names.c) that renames, links and removes 10,000 files
# (30,000 calls, each shown to stepguard when tripwires are on), on and off alternating; and one
# that makes 10,000 directories, FIFOs and symbolic links (30,000 mkdir, mknod, symlink calls).
# Last, what the filter costs the calls it does not send (filter.c, without stepguard).
# Usage: STEPGUARD=path/to/stepguard bench/tripwires/run.sh [rounds]   (default 15 rounds)
set -euo pipefail
cd "$(dirname "$0")"
rounds=${1:-15}
stepguard=${STEPGUARD:-../../.build/release/stepguard}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 -o "$work/opens" opens.c
cc -O2 -o "$work/names" names.c
cc -O2 -I../../Sources/CSandbox/include -o "$work/filter" filter.c ../../Sources/CSandbox/names.c
mkdir -p "$work/files" "$work/home/.aws" "$work/home/.ssh" "$work/home/.kube/cache" "$work/home/.config/gcloud"
for i in $(seq 0 9999); do echo "file $i" > "$work/files/f$i"; done
for f in .aws/credentials .aws/config .ssh/id_ed25519 .ssh/known_hosts .kube/config .npmrc .netrc .git-credentials; do
  echo "bench placeholder" > "$work/home/$f"
done
for i in $(seq 0 199); do echo x > "$work/home/.kube/cache/entry$i"; done
printf 'version: 1\nisolation: required\ntripwires: on\n' > "$work/on.yaml"
printf 'version: 1\nisolation: required\ntripwires: off\n' > "$work/off.yaml"
for round in $(seq 1 "$rounds"); do
  for mode in on off; do
    ms=$(HOME="$work/home" "$stepguard" run --policy "$work/$mode.yaml" -- "$work/opens" "$work/files" 10000 20 2>/dev/null)
    echo "$mode $ms"
  done
done > "$work/times"
mkdir -p "$work/scratch"
for round in $(seq 1 "$rounds"); do
  for mode in on off; do
    ms=$(HOME="$work/home" "$stepguard" run --policy "$work/$mode.yaml" -- "$work/names" "$work/scratch" 10000 2>/dev/null)
    echo "$mode $ms"
  done
done > "$work/names-times"
for round in $(seq 1 "$rounds"); do
  for mode in on off; do
    ms=$(HOME="$work/home" "$stepguard" run --policy "$work/$mode.yaml" -- "$work/names" "$work/scratch" 10000 make 2>/dev/null)
    echo "$mode $ms"
  done
done > "$work/make-times"
python3 - "$work/times" "$work/names-times" "$work/make-times" <<'PY'
import statistics, sys
for file, what, budget in [(sys.argv[1], "200,000 opens of ordinary files", " (budget: at most 1.03)"),
                           (sys.argv[2], "30,000 renames, links and removals of ordinary files", ""),
                           (sys.argv[3], "30,000 mkdir, mkfifo and symlink calls", "")]:
    times = {"on": [], "off": []}
    for line in open(file):
        mode, ms = line.split()
        times[mode].append(float(ms))
    on, off = statistics.median(times["on"]), statistics.median(times["off"])
    print(f"rounds: {len(times['on'])}; {what} inside an isolated step")
    print(f"tripwires off: median {off:.1f} ms (range {min(times['off']):.1f}-{max(times['off']):.1f})")
    print(f"tripwires on:  median {on:.1f} ms (range {min(times['on']):.1f}-{max(times['on']):.1f})")
    print(f"on / off: {on / off:.3f}{budget}")
PY
echo "the names filter on 200,000 open+close pairs (filter.c):"
"$work/filter" "$work/files/f0"
