#!/usr/bin/env python3
"""Medians per case from a bench/egress results file, and the ratios the issue asks for."""
import json, statistics, sys

rows = [json.loads(l) for l in open(sys.argv[1])]
def ms(text):
    if isinstance(text, (int, float)): return float(text)
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit): return float(text[: -len(unit)]) * factor
    return float(text)
cases = {}
for r in rows:
    if "round" not in r: continue
    c = cases.setdefault(r["case"], {"rps": [], "p50": [], "p99": [], "MBps": []})
    if r["tool"] == "wrk":
        c["rps"].append(r["rps"]); c["p50"].append(ms(r["p50"])); c["p99"].append(ms(r["p99"]))
    elif r["tool"] in ("load.py", "connload"):
        c["rps"].append(r["result"]["rps"]); c["p50"].append(r["result"]["p50_ms"]); c["p99"].append(r["result"]["p99_ms"])
    else:
        c["MBps"].append(r["MBps"])
med = lambda xs: statistics.median(xs) if xs else None
print("| case | requests/s | p50 ms | p99 ms | MB/s |")
print("|---|---:|---:|---:|---:|")
M = {}
for name, c in cases.items():
    M[name] = {k: med(v) for k, v in c.items()}
    m = M[name]
    fmt = lambda x, d=1: "" if x is None else f"{x:.{d}f}"
    print(f"| {name} | {fmt(m['rps'])} | {fmt(m['p50'],2)} | {fmt(m['p99'],2)} | {fmt(m['MBps'])} |")
def ratio(a, b, key):
    try: return round(M[a][key] / M[b][key], 2)
    except Exception: return None
print()
print("stepguard-http / direct-http rps:", ratio("stepguard-http", "direct-http", "rps"), "(target >= 0.7)")
print("stepguard-http / tinyproxy-http rps:", ratio("stepguard-http", "tinyproxy-http", "rps"), "(target >= 2)")
print("stepguard-tunnel-bulk / direct-bulk MB/s:", ratio("stepguard-tunnel-bulk", "direct-bulk", "MBps"), "(target >= 0.9)")
print("stepguard-intercept / mitmproxy-intercept rps:", ratio("stepguard-intercept", "mitmproxy-intercept", "rps"), "(target >= 10)")
for r in rows:
    if r.get("case") == "stepguard-1000-tunnels":
        print(f"stepguard peak RSS at {r['open']} open tunnels: {r['peak_rss_kb']/1024:.1f} MB (target <= 80)")
