#!/usr/bin/env bash
# Runs STEPGUARD_INPUT_RUN under `stepguard run` (GitHub composite action `actions/run`).
# Inputs arrive only through the environment: STEPGUARD_INPUT_{RUN,POLICY,STEP,MODE,AUDIT_LOG,SHA256}.
# Runs the binary actions/setup installed (STEPGUARD_SETUP_PATH, else stepguard on PATH) from a
# private copy, only when that copy's SHA-256 matches STEPGUARD_INPUT_SHA256 or STEPGUARD_SETUP_SHA256.
# No STEPGUARD_* variable but the token reaches stepguard: a previous step may have planted one
# (STEPGUARD_STEP…) through $GITHUB_ENV. Requests the OIDC token (audience stepguard) when the job has id-token: write and
# hands it to stepguard as STEPGUARD_ID_TOKEN. Once per job it prints `stepguard doctor` into the log
# and stops there (69) when the policy requires what the runner cannot give. The verdict comes from stepguard's exit status and the
# record it writes to descriptor 3 after the step ended (the step never holds that descriptor),
# never from the audit log; it goes to $GITHUB_OUTPUT and a line of $GITHUB_STEP_SUMMARY. Exits
# with stepguard's status.
set -uo pipefail

fail() { echo "::error title=stepguard::$1" >&2; exit "${2:-70}"; }
: "${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set; run this inside GitHub Actions (or simulate it)}"
[[ -n "${STEPGUARD_INPUT_RUN:-}" ]] || fail "the run input is empty; give the command to run" 64

binary="${STEPGUARD_SETUP_PATH:-$(command -v stepguard 2>/dev/null)}"
[[ -n "$binary" && -x "$binary" ]] || fail "stepguard is not on PATH; add a step with uses: <owner>/stepguard/actions/setup before this one" 69
expected="${STEPGUARD_INPUT_SHA256:-${STEPGUARD_SETUP_SHA256:-}}"
for name in $(compgen -e); do
  [[ "$name" == STEPGUARD_* && "$name" != STEPGUARD_INPUT_* ]] && unset "$name"
done

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1; else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

step="${STEPGUARD_INPUT_STEP:-${GITHUB_ACTION:-step}}"
work="${RUNNER_TEMP:-$(mktemp -d)}"
safe_step="$(printf '%s' "$step" | tr -c 'A-Za-z0-9._-' '_')"
audit_log="${STEPGUARD_INPUT_AUDIT_LOG:-$work/stepguard-$safe_step.jsonl}"
private="$(mktemp -d "$work/stepguard.XXXXXX")"
trap 'rm -rf "$private"' EXIT
script="$private/script"
printf '%s\n' "$STEPGUARD_INPUT_RUN" > "$script"

# The binary runs from a private copy, verified: a step (or a tool it ran) may have replaced the installed one.
cp "$binary" "$private/stepguard" && chmod 0500 "$private/stepguard" || fail "cannot copy $binary" 70
if [[ -n "$expected" ]]; then
  actual="$(sha256 "$private/stepguard")"
  [[ "${actual,,}" == "${expected,,}" ]] || fail "$binary does not match the SHA-256 recorded at setup (expected $expected, got $actual): it was replaced since; nothing was run" 77
else
  echo "::warning title=stepguard::cannot verify $binary: no SHA-256 from actions/setup or the stepguard-sha256 input" >&2
fi

# What this runner gives stepguard (isolation, process limits, libraries), once per job: a policy that
# requires what the runner cannot give fails here, with the reason and its remedy, before anything runs.
doctor_mark="$work/stepguard-doctor-${GITHUB_RUN_ID:-run}-${GITHUB_JOB:-job}"
if [[ ! -e "$doctor_mark" ]]; then
  : > "$doctor_mark"
  doctor_args=(doctor)
  [[ -n "${STEPGUARD_INPUT_POLICY:-}" ]] && doctor_args+=(--policy "$STEPGUARD_INPUT_POLICY")
  echo "::group::stepguard doctor: what this runner gives stepguard"
  "$private/stepguard" "${doctor_args[@]}"
  doctor_status=$?
  echo "::endgroup::"
  [[ $doctor_status -eq 69 ]] && fail "this runner cannot give what the policy requires (stepguard doctor above says what and how to enable it); nothing was run" 69
fi

# The job's OIDC token, audience stepguard (only present with `permissions: id-token: write`).
if [[ -n "${ACTIONS_ID_TOKEN_REQUEST_URL:-}" && -n "${ACTIONS_ID_TOKEN_REQUEST_TOKEN:-}" ]]; then
  separator='&'; [[ "$ACTIONS_ID_TOKEN_REQUEST_URL" == *\?* ]] || separator='?'
  response="$(curl --fail --silent --show-error --retry 2 -H "Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN" \
    "${ACTIONS_ID_TOKEN_REQUEST_URL}${separator}audience=stepguard")" || fail "cannot get the job's OIDC token from ACTIONS_ID_TOKEN_REQUEST_URL; nothing was run" 77
  token="$(printf '%s' "$response" | python3 -c 'import json,sys; print(json.load(sys.stdin)["value"])' 2>/dev/null)" \
    || fail "the OIDC token response has no value field; nothing was run" 77
  echo "::add-mask::$token"
  export STEPGUARD_ID_TOKEN="$token"
else
  echo "stepguard: no OIDC token for this job (no id-token: write); a policy with identity: will block the step" >&2
fi

# --step only when asked for: stepguard refuses a step name the policy does not define (a typo must not drop restrictions).
args=(run --audit-log "$audit_log" --verdict-fd 3)
[[ -n "${STEPGUARD_INPUT_STEP:-}" ]] && args+=(--step "$STEPGUARD_INPUT_STEP")
[[ -n "${STEPGUARD_INPUT_POLICY:-}" ]] && args+=(--policy "$STEPGUARD_INPUT_POLICY")
[[ -n "${STEPGUARD_INPUT_MODE:-}" ]] && args+=(--mode "$STEPGUARD_INPUT_MODE")
unset STEPGUARD_INPUT_RUN STEPGUARD_INPUT_POLICY STEPGUARD_INPUT_STEP STEPGUARD_INPUT_MODE STEPGUARD_INPUT_AUDIT_LOG STEPGUARD_INPUT_SHA256
# Descriptor 3 is a pipe to this script: stepguard writes its verdict record there after the step
# ended; stdout goes to the job log as usual (through descriptor 4).
exec 4>&1
record="$("$private/stepguard" "${args[@]}" -- bash --noprofile --norc -eo pipefail "$script" 3>&1 1>&4 4>&-; echo "status=$?")"
exec 4>&-
status="${record##*status=}"
record="${record%status=*}"

verdict=""; denials=0
pattern='^stepguard-verdict verdict=(allowed|blocked|failed) exit_code=([0-9]+) violations=([0-9]+) '
if [[ "$record" =~ $pattern ]] && [[ "${BASH_REMATCH[2]}" == "$status" ]]; then
  verdict="${BASH_REMATCH[1]}"; denials="${BASH_REMATCH[3]}"
else
  case "$status" in
    64|78) verdict=invalid ;;
    *) verdict=error ;;   # stepguard stopped before a verdict (69, 70, a signal): never "allowed"
  esac
fi
{ echo "verdict=$verdict"; echo "audit-log=$audit_log"; } >> "$GITHUB_OUTPUT"
if [[ -n "${GITHUB_STEP_SUMMARY:-}" ]]; then
  {
    echo "### stepguard: \`$step\` — $verdict"
    echo
    echo "| step | verdict | exit | denials | audit log |"
    echo "|---|---|---|---|---|"
    echo "| \`$step\` | $verdict | $status | $denials | \`$audit_log\` |"
    echo
  } >> "$GITHUB_STEP_SUMMARY"
fi
exit "$status"
