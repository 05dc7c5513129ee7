#!/usr/bin/env bash
# What `stepguard run` adds to a step: `stepguard run --policy bench/minimal.yaml -- /bin/true`
# and the same with `isolation: required` (bench/isolated.yaml), against `/bin/true` itself and
# against bubblewrap isolating the same step (`bwrap --unshare-all --ro-bind / / --dev /dev --proc
# /proc /bin/true`, Debian's bubblewrap), plus `stepguard --version`, in one hyperfine run; then the
# ratio of what isolated stepguard adds to what bubblewrap adds (issue #17: goal <= 1.0) and
# stepguard's peak RSS. Ratios, not milliseconds, compare across machines.
# Usage: [STEPGUARD=BINARY] bench/run-overhead.sh [runs]   (default: a release build in .build; results:
#   bench/out/overhead.json, summary on stdout)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-300}
./scripts/install-deps.sh
command -v bwrap >/dev/null || { echo "run-overhead.sh: bubblewrap is the yardstick: apt-get install bubblewrap" >&2; exit 69; }
if [[ -n ${STEPGUARD:-} ]]; then
  stepguard=$STEPGUARD  # e.g. the release archive's binary (scripts/release.sh), which the goal is about
else
  swift build -c release --static-swift-stdlib --disable-local-rpath --product stepguard >&2
  stepguard="$(swift build -c release --static-swift-stdlib --disable-local-rpath --show-bin-path)/stepguard"
fi
mkdir -p bench/out
# Measured as installed: actions/setup and the GitLab component write the binary in 2 MiB blocks, which
# lets the kernel map its code in 2 MiB pages where it can (README, "Code in 2 MiB pages").
dd if="$stepguard" of=bench/out/stepguard.new bs=2M status=none && chmod 0755 bench/out/stepguard.new && mv bench/out/stepguard.new bench/out/stepguard
stepguard=bench/out/stepguard
hyperfine -N --warmup 30 --runs "$runs" --export-json bench/out/overhead.json \
  -n bare '/bin/true' \
  -n stepguard "$stepguard run --policy bench/minimal.yaml -- /bin/true" \
  -n stepguard-isolated "$stepguard run --policy bench/isolated.yaml -- /bin/true" \
  -n bubblewrap "bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc /bin/true" \
  -n stepguard-version "$stepguard --version" >&2
python3 bench/summarize.py overhead bench/out/overhead.json "$stepguard" bench/minimal.yaml
