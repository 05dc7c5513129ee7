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
# The same ratio within each round (both cases measured minutes apart at most): its spread shows
# how much one median ratio can be trusted.
by_round = {}
for r in rows:
    if "round" not in r: continue
    value = r.get("rps") or (r.get("result") or {}).get("rps") or r.get("MBps")
    by_round.setdefault(r["round"], {})[r["case"]] = value
def per_round(a, b):
    values = [round(v[a] / v[b], 2) for _, v in sorted(by_round.items()) if v.get(a) and v.get(b)]
    return " ".join(str(x) for x in values)
print()
for a, b, key, target in (("stepguard-http", "direct-http", "rps", ">= 0.7"), ("stepguard-http", "tinyproxy-http", "rps", ">= 2"),
                          ("stepguard-tunnel-bulk", "direct-bulk", "MBps", ">= 0.9"), ("stepguard-intercept", "mitmproxy-intercept", "rps", ">= 10")):
    unit = "MB/s" if key == "MBps" else "rps"
    print(f"{a} / {b} {unit}: {ratio(a, b, key)} (target {target}; per round: {per_round(a, b)})")
for r in rows:
    if r.get("case") == "stepguard-1000-tunnels":
        print(f"stepguard peak RSS at {r['open']} open tunnels: {r['peak_rss_kb']/1024:.1f} MB (target <= 80)")
