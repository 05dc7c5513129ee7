#!/usr/bin/env bash
# What `stepguard run` adds to a step: `stepguard run --policy bench/minimal.yaml -- /bin/true`
# and the same with `isolation: required` (bench/isolated.yaml), against `/bin/true` itself, in one
# hyperfine run; then stepguard's peak RSS.
# Usage: bench/run-overhead.sh [runs]   (results: bench/out/overhead.json, summary on stdout)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-300}
./scripts/install-deps.sh
swift build -c release --static-swift-stdlib --product stepguard >&2
stepguard="$(swift build -c release --static-swift-stdlib --show-bin-path)/stepguard"
mkdir -p bench/out
hyperfine -N --warmup 30 --runs "$runs" --export-json bench/out/overhead.json \
  -n bare '/bin/true' \
  -n stepguard "$stepguard run --policy bench/minimal.yaml -- /bin/true" \
  -n stepguard-isolated "$stepguard run --policy bench/isolated.yaml -- /bin/true" >&2
python3 bench/summarize.py overhead bench/out/overhead.json "$stepguard" bench/minimal.yaml
