#!/bin/sh
# The step's DNS resolver (issue #18) against its upstream, side by side in one run: a Python
# client times A queries on loopback (median of >= 1000 each) to
#   - the resolver, answered from its cache (the same allowed name again),
#   - the resolver, a denied name (NXDOMAIN, decided before any lookup, then cached),
#   - the resolver, a new name each time (a cache miss: forwarded to network.dns),
#   - the upstream DNS stand-in directly (what a query costs without stepguard in the way).
# The resolver runs inside the test process (DNSBenchmarkTests, enabled by STEPGUARD_BENCH=1);
# build first: swift build --build-tests [-c release]. Usage: bench/dns/run.sh [queries] [release]
set -eu
cd "$(dirname "$0")/../.."
count=${1:-2000}
configuration=${2:-debug}
mkdir -p bench/out
STEPGUARD_BENCH=1 STEPGUARD_BENCH_DNS_QUERIES=$count swift test --skip-build -c "$configuration" --filter DNSBenchmarkTests 2>&1 \
    | grep '^BENCH' | tee "bench/out/dns-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
