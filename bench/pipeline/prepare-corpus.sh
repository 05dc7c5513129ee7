#!/bin/sh
# prepare-corpus.sh OUT GITDIR...: exports the HEAD of each bare git directory (e.g. /work/.mirror/OWNER+NAME/repo)
# into OUT/OWNER+NAME (files under 300 kB; objects missing from a partial snapshot are skipped) and prints
# "OWNER+NAME COMMIT" lines for bench/pipeline/README.md. Nothing is copied into this repository.
set -eu
out=$1; shift
mkdir -p "$out"
for git in "$@"; do
    name=$(basename "$(dirname "$git")")
    commit=$(git --git-dir="$git" rev-parse HEAD)
    mkdir -p "$out/$name"
    git --git-dir="$git" ls-tree -r -l HEAD | awk '$4 != "-" && $4 < 300000 { sub(/^[^\t]*\t/, ""); print }' |
    while IFS= read -r file; do
        mkdir -p "$out/$name/$(dirname "$file")"
        git --git-dir="$git" show "HEAD:$file" > "$out/$name/$file" 2>/dev/null || rm -f "$out/$name/$file"
    done
    echo "$name $commit"
done
