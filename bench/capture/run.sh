#!/bin/bash
# bench/capture/run.sh — transparent capture (issue #18) side by side with a proxy-variable CONNECT
# through stepguard and with no proxy at all, in one run, on loopback only.
#
# The step runs under `isolation: required`; inside its network namespace it dials 192.0.2.80:18080,
# a documentation address that exists only there: capture redirects it to stepguard, which relays it
# (network.resolve) to nginx on 127.0.0.1:18080 ("captured": an opaque relay, one upstream connection
# per captured one). "pooled" dials 192.0.2.80:80, a plain-HTTP port, where stepguard reads each
# request and sends it over pooled upstream connections to the same nginx. The CONNECT case dials
# the proxy from the same namespace. Cases, each a fresh `stepguard run`:
#   *-rate     new connections per second, 50 clients, one GET per connection (bench/egress/connload.c)
#   *-latency  one client: the median time of connect + GET + response (set-up cost per connection)
#   *-bulk     MB/s of a 1 GiB download with curl (median of three)
# Needs: a built stepguard (swift build -c release), nginx-light, curl, gcc, libssl-dev.
# Usage: bench/capture/run.sh [rounds]   Writes bench/capture/results-<date>.jsonl and prints medians and ratios.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STEPGUARD=${STEPGUARD:-$ROOT/.build/release/stepguard}
ROUNDS=${1:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
CONC=${CONC:-50}
W=$(mktemp -d /tmp/stepguard-capture-bench-XXXXXX)
OUT=$ROOT/bench/capture/results-$(date -u +%Y%m%dT%H%M%SZ).jsonl
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
chmod 755 "$W"
gcc -O2 -pthread -o "$W/connload" "$ROOT/bench/egress/connload.c" -lssl -lcrypto
head -c 1073741824 /dev/zero > "$W/bulk"; chmod 644 "$W/bulk"
mkdir -p "$W/nginx/logs"
cat > "$W/nginx.conf" <<NGINX
worker_processes 1;
pid $W/nginx.pid;
error_log $W/nginx/logs/error.log crit;
events { worker_connections 8192; }
http {
  access_log off;
  sendfile on;
  server {
    listen 127.0.0.1:18080;
    location = / { return 200 "ok\n"; }
    location = /bulk { root $W; }
  }
}
NGINX
nginx -p "$W/nginx" -c "$W/nginx.conf" -g 'daemon off;' & PIDS+=($!)
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:18080/ && break; sleep 0.05; done

cat > "$W/policy.yaml" <<POL
version: 1
isolation: required
on_violation: fail
tripwires: off
egress: { default: deny, allow: ["192.0.2.80:18080", "192.0.2.80:80", "127.0.0.1:18080"] }
network:
  resolve: { "192.0.2.80:18080": "127.0.0.1:18080", "192.0.2.80:80": "127.0.0.1:18080" }
POL
step() { "$STEPGUARD" run --policy "$W/policy.yaml" -- "$@" 2>/dev/null; }
record() { echo "{\"round\":$round,\"case\":\"$1\",\"result\":$2}" | tee -a "$OUT"; }
load() { # case, threads, where (direct|captured|pooled|connect)
  local out
  case $3 in
    direct) out=$("$W/connload" --mode connect --target 127.0.0.1:18080 --threads "$2" --seconds "$SECONDS_PER_RUN") ;;
    captured) out=$(step "$W/connload" --mode connect --target 192.0.2.80:18080 --threads "$2" --seconds "$SECONDS_PER_RUN") ;;
    pooled) out=$(step "$W/connload" --mode connect --target 192.0.2.80:80 --threads "$2" --seconds "$SECONDS_PER_RUN") ;;
    connect) out=$(step sh -c "exec $W/connload --mode connect --proxy \${HTTP_PROXY#http://} --target 127.0.0.1:18080 --threads $2 --seconds $SECONDS_PER_RUN") ;;
  esac
  record "$1" "$out"
}
bulk() { # case, where
  local script='for i in 1 2 3; do curl -s -o /dev/null -w "%{speed_download} " '
  local out
  case $2 in
    direct) out=$(sh -c "$script http://127.0.0.1:18080/bulk; done") ;;
    captured) out=$(step sh -c "$script --noproxy \"*\" http://192.0.2.80:18080/bulk; done") ;;
    pooled) out=$(step sh -c "$script --noproxy \"*\" http://192.0.2.80/bulk; done") ;;
    connect) out=$(step sh -c "$script -p -x \$HTTP_PROXY http://127.0.0.1:18080/bulk; done") ;;
  esac
  record "$1" "{\"MBps\": $(python3 -c 'import statistics,sys; print(round(statistics.median(float(x) for x in sys.argv[1:]) / 1e6, 1))' $out)}"
}
for round in $(seq "$ROUNDS"); do
  for where in direct captured pooled connect; do
    load "$where-rate" "$CONC" "$where"
    load "$where-latency" 1 "$where"
    bulk "$where-bulk" "$where"
  done
done
python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
def median(case, key):
    values = [r["result"][key] for r in rows if r["case"] == case and r["result"].get(key) is not None]
    return statistics.median(values) if values else None
places = ("direct", "captured", "pooled", "connect")
print(f"{'case':<10}" + "".join(f" {w:>10}" for w in places) + "".join(f" {w + '/direct':>16}" for w in places[1:]))
for label, suffix, key in (("conn/s", "rate", "rps"), ("p50 ms", "latency", "p50_ms"), ("MB/s", "bulk", "MBps")):
    values = [median(f"{w}-{suffix}", key) for w in places]
    d = values[0]
    print(f"{label:<10}" + "".join(f" {v:>10}" for v in values) + "".join(f" {v / d if d and v else 0:>16.2f}" for v in values[1:]))
d, *others = (median(f"{w}-latency", "p50_ms") for w in places)
print("set-up added at the median: " + ", ".join(f"{w} {v - d:.3f} ms" for w, v in zip(places[1:], others)))
PY
