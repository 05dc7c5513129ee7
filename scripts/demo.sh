#!/usr/bin/env bash
# The main job: installs what is missing, builds a release stepguard, and demonstrates on loopback
# what it allows and blocks, and why. Exits non-zero if any scenario ends other than expected.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
./scripts/install-deps.sh
echo "== building stepguard (release)" >&2
swift build -c release --product stepguard 2>&1 | tail -1 >&2
stepguard="$(swift build -c release --show-bin-path)/stepguard"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

bold=$'\e[1m'; green=$'\e[32m'; red=$'\e[31m'; dim=$'\e[2m'; reset=$'\e[0m'
[ -t 1 ] || { bold=; green=; red=; dim=; reset=; }
failures=0

# scenario TITLE EXPECTED-EXIT COMMAND... — runs COMMAND, shows its output and checks its exit code.
scenario() {
  local title=$1 expected=$2; shift 2
  printf '\n%s── %s%s\n%s$ %s%s\n' "$bold" "$title" "$reset" "$dim" "${*//$stepguard/stepguard}" "$reset"
  set +e; "$@"; local status=$?; set -e
  if [ "$status" -eq "$expected" ]; then
    printf '%s✔ exit %s, as expected%s\n' "$green" "$status" "$reset"
  else
    printf '%s✘ exit %s, expected %s%s\n' "$red" "$status" "$expected" "$reset"
    failures=$((failures + 1))
  fi
}

policy="$root/rules/policies/demo.yaml"
scenario "The demo policy is valid" 0 \
  "$stepguard" policy check "$policy"

scenario "An invalid policy is refused with file:line:col, and nothing runs" 78 \
  "$stepguard" policy check "$root/fixtures/policies/invalid.yaml"

scenario "Allowed: a build step that follows policy runs as before" 0 \
  "$stepguard" run --policy "$policy" --step build -v -- sh -c 'echo "compiling…"; echo "42 tests passed"'

scenario "The step's own exit code comes through (a failing test suite)" 3 \
  "$stepguard" run --policy "$policy" --step build -- sh -c 'echo "1 test failed" >&2; exit 3'

scenario "Stopped: SIGTERM reaches the step; its background children are reaped too" 143 \
  timeout --preserve-status -s TERM 1 "$stepguard" run --policy "$policy" --step build -- sh -c 'sleep 30 & setsid sleep 30 & wait'

scenario "Audit mode decides and records, blocks nothing, and says so" 0 \
  "$stepguard" run --policy "$policy" --mode audit --audit-log "$work/audit.jsonl" -- true
printf '%saudit log:%s\n' "$dim" "$reset"; cat "$work/audit.jsonl"

echo
if [ "$failures" -eq 0 ]; then
  printf '%sAll scenarios ended as expected.%s\n' "$green$bold" "$reset"
else
  printf '%s%d scenario(s) did not end as expected.%s\n' "$red$bold" "$failures" "$reset"
  exit 1
fi
