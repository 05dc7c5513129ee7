#!/bin/sh
# Verifications per second on one core (taskset -c 0): stepguard (release build) side by side with
# PyJWT+cryptography (full JWT verification) and `openssl speed` (raw signature verification only,
# the ceiling). Usage: bench/identity/run.sh  (from anywhere; takes a few minutes on first build)
set -eu
cd "$(dirname "$0")/../.."
python3 -c "import jwt" 2>/dev/null || python3 -m pip install --quiet pyjwt
out=$(mktemp)
echo "== stepguard (swift test -c release, IdentityBenchmark)"
swift build -c release -Xswiftc -enable-testing --build-tests >/dev/null
STEPGUARD_BENCH=1 taskset -c 0 swift test -c release -Xswiftc -enable-testing --skip-build \
    --filter IdentityBenchmark 2>&1 | grep '^BENCH' | tee -a "$out"
echo "== PyJWT peer"
taskset -c 0 python3 bench/identity/pyjwt_peer.py | tee -a "$out"
echo "== openssl speed (signature verification only, no parsing or claims)"
taskset -c 0 openssl speed -seconds 2 rsa2048 ecdsap256 2>/dev/null | grep -E '^rsa 2048|256 bits ecdsa' | tee -a "$out"
python3 - "$out" <<'PY'
import json, re, sys
lines = open(sys.argv[1]).read().splitlines()
bench = {}
for line in lines:
    if line.startswith("BENCH "):
        d = json.loads(line[6:])
        bench[(d["impl"].split()[0], d["alg"])] = d["median_per_second"]
ossl = {}
for line in lines:
    m = re.match(r"rsa 2048 bits\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", line)
    if m: ossl["RS256"] = float(m.group(2))
    m = re.match(r"\s*256 bits ecdsa \(nistp256\)\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", line)
    if m: ossl["ES256"] = float(m.group(2))
print("\nalg    stepguard/s  pyjwt/s  ratio  openssl-verify/s  ratio")
for alg in ("RS256", "ES256"):
    s, p, o = bench.get(("stepguard", alg)), bench.get(("pyjwt", alg)), ossl.get(alg)
    print(f"{alg:6} {s or 0:>11} {p or 0:>8} {(s/p if s and p else 0):>6.2f} {int(o or 0):>17} {(s/o if s and o else 0):>6.2f}")
PY
rm -f "$out"
