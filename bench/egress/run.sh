#!/bin/bash
# bench/egress/run.sh — direct vs stepguard (CONNECT tunnel, absolute-form, interception) vs tinyproxy
# vs mitmproxy, side by side in one run, on loopback only.
#
# Needs: a built stepguard (swift build -c release), nginx-light, tinyproxy, wrk, curl, openssl, gcc and
# libssl-dev (Debian),
# mitmproxy (PyPI; set MITMDUMP=/path/to/mitmdump). Usage: bench/egress/run.sh [rounds]
# Writes results to bench/egress/results-<date>.jsonl and prints a summary table (medians over rounds).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STEPGUARD=${STEPGUARD:-$ROOT/.build/release/stepguard}
MITMDUMP=${MITMDUMP:-$(command -v mitmdump || echo /tmp/egress-mitm/bin/mitmdump)}
ROUNDS=${1:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-8}
CONC=${CONC:-50}
W=$(mktemp -d /tmp/stepguard-bench-XXXXXX)
OUT=$ROOT/bench/egress/results-$(date -u +%Y%m%dT%H%M%SZ).jsonl
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
# The CONNECT and TLS cases use connload (C, OpenSSL, one thread per connection in flight): the Python
# client topped out near 640 TLS handshakes/s, below what the proxies themselves can do.
gcc -O2 -pthread -o "$W/connload" "$ROOT/bench/egress/connload.c" -lssl -lcrypto
LOAD="$W/connload --threads $CONC --seconds $SECONDS_PER_RUN"

# --- upstream: nginx on 127.0.0.1:18080 (plain) and localhost:18443 (TLS, cert from a bench CA)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench CA" \
  -keyout "$W/ca.key" -out "$W/ca.pem" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" -keyout "$W/srv.key" -out "$W/srv.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$W/ext"
openssl x509 -req -in "$W/srv.csr" -CA "$W/ca.pem" -CAkey "$W/ca.key" -CAcreateserial -days 2 -extfile "$W/ext" -out "$W/srv.pem" 2>/dev/null
head -c 1073741824 /dev/zero > "$W/bulk"
mkdir -p "$W/nginx/logs"; chmod 755 "$W"; chmod 644 "$W/bulk"
cat > "$W/nginx.conf" <<NGINX
worker_processes 1;
pid $W/nginx.pid;
error_log $W/nginx/logs/error.log crit;
events { worker_connections 8192; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:18080; listen 127.0.0.1:18443 ssl; listen [::1]:18443 ssl;
    ssl_certificate $W/srv.pem; ssl_certificate_key $W/srv.key;
    location = / { return 200 "ok\n"; }
    location = /bulk { root $W; }
  }
}
NGINX
nginx -p "$W/nginx" -c "$W/nginx.conf" -g 'daemon off;' & PIDS+=($!)

# --- tinyproxy on 18888
cat > "$W/tinyproxy.conf" <<TP
Port 18888
Listen 127.0.0.1
Timeout 600
MaxClients 2000
LogLevel Critical
TP
tinyproxy -d -c "$W/tinyproxy.conf" >/dev/null 2>&1 & PIDS+=($!)

# --- mitmproxy on 18889 (trusts the bench CA upstream)
"$MITMDUMP" -q --listen-host 127.0.0.1 -p 18889 --set confdir="$W/mitm" --set ssl_verify_upstream_trusted_ca="$W/ca.pem" >/dev/null 2>&1 & PIDS+=($!)

# --- stepguard: its proxy lives as long as the step; the step writes the proxy URL and CA bundle out.
cat > "$W/policy.yaml" <<POL
version: 1
on_violation: fail
egress: { default: deny, allow: ["127.0.0.1:18080"] }   # the upstream, named explicitly: the host's loopback is protected
services:
  - service: hashicorp-vault
    hosts: [localhost]
    allow: { credential: none }
network:
  resolve: { "localhost:18443": "127.0.0.1:18443" }
  upstream_ca: $W/ca.pem
POL
start_stepguard() {
  rm -f "$W/sg.env"
  "$STEPGUARD" run --policy "$W/policy.yaml" -- sh -c "echo \$HTTP_PROXY \$SSL_CERT_FILE > $W/sg.env.tmp; mv $W/sg.env.tmp $W/sg.env; exec sleep 100000" 2>/dev/null &
  SG_PID=$!; PIDS+=($SG_PID)
  for _ in $(seq 100); do [ -s "$W/sg.env" ] && break; sleep 0.1; done
  read -r SG_URL SG_BUNDLE < "$W/sg.env"
  SG=${SG_URL#http://}
}
start_stepguard
for _ in $(seq 100); do [ -f "$W/mitm/mitmproxy-ca-cert.pem" ] && break; sleep 0.2; done
sleep 1
cat "$W/ca.pem" "$W/mitm/mitmproxy-ca-cert.pem" > "$W/mitm-bundle.pem"

cat > "$W/absolute.lua" <<'LUA'
wrk.path = "http://127.0.0.1:18080/"
wrk.headers["Connection"] = "close"
LUA
wrkrun() { # name, url, extra...
  local name=$1 url=$2; shift 2
  local out; out=$(wrk -t2 -c"$CONC" -d"${SECONDS_PER_RUN}s" --latency "$@" "$url" 2>&1)
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out"); p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  echo "{\"round\":$round,\"case\":\"$name\",\"tool\":\"wrk\",\"rps\":$rps,\"p50\":\"$p50\",\"p99\":\"$p99\"}" | tee -a "$OUT"
}
loadrun() { # name, args...
  local name=$1; shift
  local out; out=$($LOAD "$@")
  echo "{\"round\":$round,\"case\":\"$name\",\"tool\":\"connload\",\"result\":$out}" | tee -a "$OUT"
}
bulk() { # name, curl args... — three 1 GiB downloads (one takes well under a second here); their median
  local name=$1; shift
  local speeds=()
  for _ in 1 2 3; do speeds+=("$(curl -s -o /dev/null -w '%{speed_download}' "$@" http://127.0.0.1:18080/bulk)"); done
  local mbps; mbps=$(python3 -c "import statistics,sys; print(round(statistics.median(float(x) for x in sys.argv[1:]) / 1e6, 1))" "${speeds[@]}")
  echo "{\"round\":$round,\"case\":\"$name\",\"tool\":\"curl\",\"MBps\":$mbps,\"downloads\":[$(IFS=,; echo "${speeds[*]}")]}" | tee -a "$OUT"
}

for round in $(seq "$ROUNDS"); do
  # plain HTTP, short requests without keep-alive, concurrency $CONC
  wrkrun direct-http http://127.0.0.1:18080/ -H "Connection: close"
  wrkrun stepguard-http "http://$SG" -s "$W/absolute.lua"
  wrkrun tinyproxy-http http://127.0.0.1:18888 -s "$W/absolute.lua"
  # CONNECT tunnels (new tunnel per request)
  loadrun direct-connect --mode connect --target 127.0.0.1:18080
  loadrun stepguard-connect --mode connect --proxy "$SG" --target 127.0.0.1:18080
  loadrun tinyproxy-connect --mode connect --proxy 127.0.0.1:18888 --target 127.0.0.1:18080
  # HTTPS: direct TLS, stepguard interception, mitmproxy interception
  loadrun direct-https --mode tls --target localhost:18443 --cafile "$W/ca.pem"
  loadrun stepguard-intercept --mode tls --proxy "$SG" --target localhost:18443 --cafile "$SG_BUNDLE"
  loadrun mitmproxy-intercept --mode tls --proxy 127.0.0.1:18889 --target localhost:18443 --cafile "$W/mitm-bundle.pem"
  # bulk throughput, 1 GiB
  bulk direct-bulk
  bulk stepguard-tunnel-bulk -p -x "http://$SG"
  bulk tinyproxy-tunnel-bulk -p -x http://127.0.0.1:18888
done

# peak RSS of a fresh stepguard at 1,000 open tunnels
kill "$SG_PID" 2>/dev/null || true; wait "$SG_PID" 2>/dev/null || true
start_stepguard
python3 "$ROOT/bench/egress/load.py" --mode hold --proxy "$SG" --target 127.0.0.1:18080 --n 1000 --seconds 4 > "$W/hold.out" &
HOLD=$!
for _ in $(seq 200); do grep -q open_tunnels "$W/hold.out" 2>/dev/null && break; sleep 0.1; done
sleep 1
RSS=$(awk '/VmHWM/ {print $2}' /proc/$SG_PID/status)
TP_PID=$(pgrep -n -x tinyproxy || true)
echo "{\"case\":\"stepguard-1000-tunnels\",\"open\":$(cat "$W/hold.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["open_tunnels"])'),\"peak_rss_kb\":$RSS}" | tee -a "$OUT"
wait $HOLD
python3 "$ROOT/bench/egress/summarise.py" "$OUT"
