#!/usr/bin/env python3
"""Real-world evaluation of `stepguard workflow check`, side by side with zizmor.

Reads repository checkouts from a local directory (one sub-directory per repository, e.g. made by
prepare-corpus.sh from bare git directories), runs `stepguard workflow check --format json` on each
repository's workflow files (`.github/workflows/*.yml|yaml`, `.gitlab-ci.yml`, `.gitlab/ci/*.yml`)
from inside the checkout (so local actions, scripts and Makefiles are read as a user's run would), and
zizmor (`--offline`, default persona) on the same GitHub workflows. Writes:

  - per-rule finding counts of both tools, errors, wall time;
  - the overlap of stepguard's rules with zizmor's identity and token audits (same file, lines at most
    NEAR apart), per pair of rules;
  - the precision of the hand-labelled sample (labels.tsv: repo, file, line, rule, verdict, reason),
    and which labels no longer match a finding (stale) — so a re-run after a fix re-judges the sample;
  - with --sample N: N findings not yet labelled, drawn with a fixed seed, stratified by rule, to label.

Usage: python3 bench/pipeline/evaluate.py CORPUS [--stepguard PATH] [--zizmor PATH] [--labels FILE]
                                          [--out FILE] [--sample N] [--seed S]
The third-party files are read from CORPUS and never copied into this repository.
"""
import argparse
import collections
import csv
import json
import os
import random
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
NEAR = 3

# stepguard rule -> zizmor audits about the same identity or token risk.
OVERLAP = {
    "unpinned-action": ["unpinned-uses", "unpinned-images"],
    "checkout-persist-credentials": ["artipacked"],
    "secrets-inherit": ["secrets-inherit"],
    "secrets-tojson": ["overprovisioned-secrets"],
    "untrusted-checkout": ["dangerous-triggers"],
    "permissions-missing": ["excessive-permissions"],
    "permissions-broad": ["excessive-permissions", "undocumented-permissions"],
    "id-token-workflow-level": ["excessive-permissions"],
    "id-token-unused": ["excessive-permissions"],
    "long-lived-credential": ["use-trusted-publishing"],
    "template-injection": ["template-injection"],
    "untrusted-env-write": ["github-env"],
    "spoofable-bot-check": ["bot-conditions"],
    "cache-poisoning": ["cache-poisoning"],
    "artifact-poisoning": ["dangerous-triggers"],
    "unguarded-service-call": [],
    "id-token-audience": [],
}
ZIZMOR_IDENTITY = sorted({a for audits in OVERLAP.values() for a in audits})


def workflow_files(repo):
    files = []
    workflows = os.path.join(repo, ".github", "workflows")
    if os.path.isdir(workflows):
        files += [os.path.join(".github", "workflows", f) for f in sorted(os.listdir(workflows)) if f.endswith((".yml", ".yaml"))]
    if os.path.isfile(os.path.join(repo, ".gitlab-ci.yml")):
        files.append(".gitlab-ci.yml")
    gitlab = os.path.join(repo, ".gitlab", "ci")
    if os.path.isdir(gitlab):
        files += [os.path.join(".gitlab", "ci", f) for f in sorted(os.listdir(gitlab)) if f.endswith((".yml", ".yaml"))]
    return files


def run_stepguard(binary, repo, files):
    start = time.perf_counter()
    out = subprocess.run([binary, "workflow", "check", "--format", "json", *files], cwd=repo, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if out.returncode not in (0, 1, 78):
        sys.exit(f"stepguard failed in {repo} ({out.returncode}): {out.stderr}")
    report = json.loads(out.stdout)
    return report["findings"], report["errors"], elapsed


def run_zizmor(binary, repo, files):
    github = [f for f in files if f.startswith(".github/")]
    if not github or not binary:
        return [], 0.0
    start = time.perf_counter()
    out = subprocess.run([binary, "--offline", "--format=json", "--no-progress", *github], cwd=repo, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if out.returncode not in (0, 10, 11, 12, 13, 14):
        print(f"warning: zizmor failed in {repo} ({out.returncode}): {out.stderr.strip()[:200]}", file=sys.stderr)
        return [], elapsed
    findings = []
    for f in json.loads(out.stdout or "[]"):
        location = f["locations"][0]
        key = location["symbolic"]["key"]
        local = key.get("Local", {}) if isinstance(key, dict) else {}
        path = local.get("given_path") or local.get("verbatim_path") or ""
        line = location["concrete"]["location"]["start_point"]["row"] + 1
        findings.append({"id": f["ident"], "file": os.path.normpath(path), "line": line})
    return findings, elapsed


def load_labels(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as handle:
        rows = [r for r in csv.reader(handle, delimiter="\t") if r and not r[0].startswith("#")]
    return [dict(repo=r[0], file=r[1], line=int(r[2]), rule=r[3], verdict=r[4], reason=r[5] if len(r) > 5 else "") for r in rows]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus")
    parser.add_argument("--stepguard", default=os.path.join(ROOT, ".build", "debug", "stepguard"))
    parser.add_argument("--zizmor", default="zizmor")
    parser.add_argument("--labels", default=os.path.join(HERE, "labels.tsv"))
    parser.add_argument("--out", default=os.path.join(HERE, "results-real.md"))
    parser.add_argument("--sample", type=int, default=0)
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args()

    repos = sorted(d for d in os.listdir(args.corpus) if os.path.isdir(os.path.join(args.corpus, d)))
    ours, theirs, errors = [], [], []
    files_checked = collections.Counter()
    time_ours = time_theirs = 0.0
    for name in repos:
        repo = os.path.join(args.corpus, name)
        files = workflow_files(repo)
        if not files:
            continue
        files_checked[name] = len(files)
        findings, errs, elapsed = run_stepguard(args.stepguard, repo, files)
        time_ours += elapsed
        ours += [dict(f, repo=name, file=os.path.normpath(f["file"])) for f in findings]
        errors += [dict(e, repo=name) for e in errs]
        zfindings, zelapsed = run_zizmor(args.zizmor, repo, files)
        time_theirs += zelapsed
        theirs += [dict(f, repo=name) for f in zfindings]

    lines = ["# workflow check on real pipelines — generated by bench/pipeline/evaluate.py", ""]
    lines.append(f"{len(files_checked)} repositories with workflow files, {sum(files_checked.values())} files; stepguard {len(ours)} findings, "
                 f"{len(errors)} files not checked (errors); zizmor {len(theirs)} findings. "
                 f"Wall time: stepguard {time_ours:.2f} s, zizmor {time_theirs:.2f} s.")
    lines += ["", "## stepguard findings per rule", "", "| rule | findings | repositories |", "|---|---|---|"]
    by_rule = collections.defaultdict(list)
    for f in ours:
        by_rule[f["id"]].append(f)
    for rule in sorted(by_rule, key=lambda r: -len(by_rule[r])):
        lines.append(f"| `{rule}` | {len(by_rule[rule])} | {len({f['repo'] for f in by_rule[rule]})} |")
    lines += ["", "## zizmor findings per audit (identity and token audits in bold)", "", "| audit | findings |", "|---|---|"]
    zcount = collections.Counter(f["id"] for f in theirs)
    for audit, count in zcount.most_common():
        lines.append(f"| {'**' + audit + '**' if audit in ZIZMOR_IDENTITY else audit} | {count} |")

    lines += ["", f"## Overlap (same file, lines at most {NEAR} apart)", "",
              "| stepguard rule | zizmor audits | both | only stepguard | only zizmor |", "|---|---|---|---|---|"]
    for rule, audits in OVERLAP.items():
        mine = [f for f in ours if f["id"] == rule]
        other = [f for f in theirs if f["id"] in audits]
        def near(a, pool):
            return any(b["repo"] == a["repo"] and b["file"] == a["file"] and abs(b["line"] - a["line"]) <= NEAR for b in pool)
        both = sum(1 for f in mine if near(f, other))
        only_mine = len(mine) - both
        only_other = sum(1 for f in other if not near(f, mine)) if audits else "—"
        lines.append(f"| `{rule}` | {', '.join(audits) or '(none)'} | {both} | {only_mine} | {only_other} |")

    labels = load_labels(args.labels)
    index = {(f["repo"], f["file"], f["line"], f["id"]) for f in ours}
    live = [l for l in labels if (l["repo"], l["file"], l["line"], l["rule"]) in index]
    stale = [l for l in labels if (l["repo"], l["file"], l["line"], l["rule"]) not in index]
    verdicts = collections.Counter(l["verdict"] for l in live)
    judged = verdicts["TP"] + verdicts["FP"]
    lines += ["", "## Hand-labelled sample (labels.tsv)", ""]
    if judged:
        lines.append(f"{len(live)} labelled findings still reported: {verdicts['TP']} true, {verdicts['FP']} false, "
                     f"{verdicts['debatable']} debatable; precision {verdicts['TP'] / judged:.3f} (debatable left out), "
                     f"{verdicts['TP'] / len(live):.3f} counting debatable as false. "
                     f"{len(stale)} labels match no finding any more (fixed false positives, or moved lines).")
        lines += ["", "| rule | labelled | TP | FP | debatable |", "|---|---|---|---|---|"]
        per_rule = collections.defaultdict(collections.Counter)
        for l in live:
            per_rule[l["rule"]][l["verdict"]] += 1
        for rule in sorted(per_rule):
            c = per_rule[rule]
            lines.append(f"| `{rule}` | {sum(c.values())} | {c['TP']} | {c['FP']} | {c['debatable']} |")
        if stale:
            lines += ["", "Labels that match no finding now:", ""]
            lines += [f"- {l['repo']} {l['file']}:{l['line']} `{l['rule']}` ({l['verdict']}: {l['reason']})" for l in stale]
    with open(args.out, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))

    if args.sample:
        labelled = {(l["repo"], l["file"], l["line"], l["rule"]) for l in labels}
        pool = collections.defaultdict(list)
        for f in ours:
            if (f["repo"], f["file"], f["line"], f["id"]) not in labelled:
                pool[f["id"]].append(f)
        rng = random.Random(args.seed)
        picked = []
        while len(picked) < args.sample and any(pool.values()):
            for rule in sorted(pool):
                if pool[rule] and len(picked) < args.sample:
                    picked.append(pool[rule].pop(rng.randrange(len(pool[rule]))))
        print("\n# sample to label (repo, file, line, rule, severity, message)")
        for f in picked:
            print("\t".join([f["repo"], f["file"], str(f["line"]), f["id"], f["severity"], f["message"]]))


if __name__ == "__main__":
    main()
