#!/usr/bin/env bash
# The main job: installs what is missing, builds a release stepguard, and demonstrates on loopback
# what it allows and blocks, and why. Exits non-zero if any scenario ends other than expected.
set -euo pipefail
caller=$(pwd)
cd "$(dirname "$0")/.."
root=$(pwd)
./scripts/install-deps.sh
if [ -n "${STEPGUARD_DEMO_BINARY:-}" ]; then
  stepguard=$STEPGUARD_DEMO_BINARY  # a binary you already built (skips the release build)
  case $stepguard in /*) ;; *) stepguard=$caller/$stepguard ;; esac  # relative to where the demo was started
  [ -x "$stepguard" ] || { echo "STEPGUARD_DEMO_BINARY: $stepguard is not an executable file" >&2; exit 1; }
else
  echo "== building stepguard (release; the first build takes several minutes)" >&2
  swift build -c release --static-swift-stdlib --product stepguard 2>&1 | tail -1 >&2
  stepguard="$(swift build -c release --static-swift-stdlib --show-bin-path)/stepguard"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

bold=$'\e[1m'; green=$'\e[32m'; red=$'\e[31m'; dim=$'\e[2m'; reset=$'\e[0m'
[ -t 1 ] || { bold=; green=; red=; dim=; reset=; }
failures=0

# scenario TITLE EXPECTED-EXIT COMMAND... — runs COMMAND, shows its output and checks its exit code.
scenario() {
  local title=$1 expected=$2; shift 2
  local shown="${*//$stepguard/stepguard}"
  shown=$(sed -E 's/(_TOKEN=)[^ ]+/\1<redacted>/g' <<<"$shown")  # never print a secret, even a fake one
  printf '\n%s── %s%s\n%s$ %s%s\n' "$bold" "$title" "$reset" "$dim" "$shown" "$reset"
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

# Credential stores: a fake ~/.aws/credentials in a home made for the demo. The step is root in its
# namespaces when stepguard runs as root (as in CI); stepguard's mounts are locked all the same.
mkdir -p "$work/home/.aws" && printf '[default]\naws_secret_access_key = demo-only-%s\n' "$RANDOM" > "$work/home/.aws/credentials"
# (stat looks at the decoy that stands in for the file without opening it: opening it trips, below.)
# Un-hiding is refused by the kernel (the covers are locked mounts), and since the tripwires cover
# the mount calls too, the attempt itself halts the step (exit 77) before it could try anything else.
scenario "Hidden: the step tries to un-hide ~/.aws (umount, remount, a nested namespace) — the first attempt trips and the step is killed" 77 \
  env HOME="$work/home" "$stepguard" run --policy "$policy" --step build -- sh -c '
    umount ~/.aws 2>/dev/null || echo "umount ~/.aws: refused"
    mount -o remount,rw ~/.aws 2>/dev/null || echo "remount: refused"
    unshare -Urm sh -c "umount ~/.aws" 2>/dev/null || echo "umount from a nested namespace: refused"
    echo "~/.aws/credentials: $(stat -c %s ~/.aws/credentials) bytes"; echo "processes visible: $(ls /proc | grep -cE "^[0-9]+$")"'

# Halt and revoke: a step that reads a credential store is killed at the open (tripwire), and the
# GitHub token it held is revoked at a stand-in for the GitHub API (fixtures/services/github_api_standin.py),
# reached through network.resolve and trusted through network.upstream_ca, like the real one would be.
python3 "$root/fixtures/services/github_api_standin.py" "$work/github" api.github.test & github=$!
trap 'kill $github 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do [ -s "$work/github/port" ] && break; sleep 0.05; done
cat > "$work/revoke.yaml" <<POLICY
version: 1
on_violation: kill
tripwires: on
revoke: auto
egress: { allow: [api.github.test] }  # a token is only sent for revocation where the step could send it
network:
  resolve: { "api.github.test:443": "127.0.0.1:$(cat "$work/github/port")" }
  upstream_ca: github/ca.pem
POLICY
scenario "Halted and revoked: the step opens ~/.aws/credentials — killed at once, and its GITHUB_TOKEN is revoked at the GitHub API stand-in" 77 \
  env HOME="$work/home" GITHUB_API_URL=https://api.github.test \
  GITHUB_TOKEN="gh""s_$(head -c 96 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 36)" \
  "$stepguard" run --policy "$work/revoke.yaml" -- sh -c 'echo "building…"; cat ~/.aws/credentials; sleep 5; echo "still running (never printed)"'
printf '%scalls that reached the GitHub API stand-in:%s\n' "$dim" "$reset"; cat "$work/github/requests.log" 2>/dev/null || true
if ! grep -q '^DELETE /installation/token (bearer ghs_' "$work/github/requests.log" 2>/dev/null; then
  printf '%s✘ expected the token to be revoked at the stand-in%s\n' "$red" "$reset"; failures=$((failures + 1))
fi

# Workload identity: a local OIDC issuer (fixtures/identity/demo_issuer.py) mints a JWKS and tokens.
python3 "$root/fixtures/identity/demo_issuer.py" "$work/issuer" >/dev/null
# The identity section shared by the identity and signing-service policies.
identity='identity:
  token: env:DEMO_ID_TOKEN
  issuer: https://token.demo.stepguard.invalid
  audience: stepguard
  jwks: issuer/jwks.json
  algorithms: [RS256]
  claims: { repository_id: "957014466", ref: ["refs/heads/main", "refs/tags/v*"] }
  lifetime: { max_ttl: 15m, max_age: 10m, min_remaining: 1m }'
cat > "$work/identity.yaml" <<POLICY
version: 1
$identity
POLICY
scenario "Allowed: the job's OIDC token is verified (signature, issuer, audience, claims, lifetime)" 0 \
  env DEMO_ID_TOKEN="$(cat "$work/issuer/allowed.jwt")" \
  "$stepguard" run --policy "$work/identity.yaml" -v -- sh -c 'echo "publishing from main"'

scenario "Blocked: a feature-branch job presents a token whose ref the policy does not allow — nothing runs" 77 \
  env DEMO_ID_TOKEN="$(cat "$work/issuer/blocked-ref.jwt")" \
  "$stepguard" run --policy "$work/identity.yaml" -- sh -c 'echo "this never prints"'

scenario "Blocked: an expired token — nothing runs" 77 \
  env DEMO_ID_TOKEN="$(cat "$work/issuer/expired.jwt")" \
  "$stepguard" run --policy "$work/identity.yaml" -- sh -c 'echo "this never prints"'

fake_pat="gh""p_$(head -c 96 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 36)"
scenario "Blocked: a long-lived token in the step's environment (named, never printed) — nothing runs" 77 \
  env NPM_DEPLOY_TOKEN="$fake_pat" "$stepguard" run --policy "$policy" --step build -- sh -c 'echo "this never prints"'

scenario "Allowed, stripped: the publish step's policy removes long-lived tokens instead" 0 \
  env NPM_DEPLOY_TOKEN="$fake_pat" "$stepguard" run --policy "$policy" --step publish -v -- sh -c 'echo "token visible to the step: ${NPM_DEPLOY_TOKEN:-no}"'

python3 -m http.server 18777 --bind 127.0.0.1 >/dev/null 2>&1 & server=$!
trap 'kill $server $github 2>/dev/null; rm -rf "$work"' EXIT
python3 - <<'WAIT'
import socket, time
for _ in range(100):
    try: socket.create_connection(("127.0.0.1", 18777), 0.1).close(); break
    except OSError: time.sleep(0.05)
WAIT
scenario "Control: outside stepguard, a direct connection to a loopback server succeeds" 0 \
  curl -sS -o /dev/null --noproxy '*' http://127.0.0.1:18777/
scenario "Isolated: the same direct connection from a guarded step cannot get out (curl exit 7)" 7 \
  "$stepguard" run --policy "$policy" --step build -- curl -sS -o /dev/null --noproxy '*' -m 5 http://127.0.0.1:18777/
scenario "Allowed: through stepguard's proxy, the step reaches a host egress.allow names" 0 \
  "$stepguard" run --policy "$policy" --step build -v -- curl -sS -o /dev/null -w 'HTTP %{http_code}\n' http://127.0.0.1:18777/
scenario "Blocked: a host egress.allow does not name (127.0.0.3) — 403 from the proxy, the step is stopped" 77 \
  "$stepguard" run --policy "$policy" --step build -- sh -c 'curl -sS -w "HTTP %{http_code}\n" -o /dev/null http://127.0.0.3:18777/; sleep 30; echo "this never prints"'

# Transparent capture: a client that ignores proxy variables (Node's built-in fetch) under
# isolation. Its connection is captured in the step's network namespace and decided like a CONNECT;
# the name is resolved by stepguard's own resolver, which never looks up a name the policy denies.
cat > "$work/capture.yaml" <<POLICY
version: 1
isolation: required
on_violation: fail
egress: { default: deny, allow: ["artifacts.demo.example:18777"] }
network:
  resolve: { "artifacts.demo.example:18777": "127.0.0.1:18777" }
POLICY
if command -v node >/dev/null; then
  fetch='for (const url of process.argv.slice(1)) { try { const r = await fetch(url); console.log(`${url} → HTTP ${r.status}`) } catch (e) { console.log(`${url} → ${e.cause?.code ?? e.message}`) } }'
  scenario "Captured: Node's fetch ignores proxy variables; under isolation its connection is captured, the name resolved by stepguard, and allowed" 0 \
    "$stepguard" run --policy "$work/capture.yaml" -v -- node --input-type=module -e "$fetch" http://artifacts.demo.example:18777/
  scenario "Blocked: the same client asks for a name the policy does not allow — no answer (no DNS query for it leaves), exit 77" 77 \
    "$stepguard" run --policy "$work/capture.yaml" -- node --input-type=module -e "$fetch" http://exfil.demo.example:18777/
else
  printf '%s(node is not installed: the transparent-capture scenarios are skipped)%s\n' "$dim" "$reset"
fi

# Signing service: a local HTTPS server stands in for Sigstore Fulcio, with a certificate from a CA
# made just now (fixtures/services/fulcio_standin.py). The policy names the service, so stepguard
# opens its TLS (per-run CA) and checks the credential of every call against the job's verified
# identity; network.resolve and network.upstream_ca lead it to the stand-in and make it trust it.
python3 "$root/fixtures/services/fulcio_standin.py" "$work/fulcio" & fulcio=$!
trap 'kill $server $fulcio $github 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do [ -s "$work/fulcio/port" ] && break; sleep 0.05; done
cat > "$work/signing.yaml" <<POLICY
version: 1
on_violation: fail
$identity
egress: { default: deny }
services:
  - service: sigstore-fulcio
    allow: { methods: [POST], paths: ["/api/v2/signingCert"], credential: workload, window: 5m }
network:
  resolve: { "fulcio.sigstore.dev:443": "127.0.0.1:$(cat "$work/fulcio/port")" }
  upstream_ca: fulcio/ca.pem
POLICY
# A long-lived GitHub token, made up now (never a literal in the repository), in a file the step finds.
(umask 077; printf 'gh''p_%s' "$(head -c 96 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 36)" > "$work/fulcio/pat")
sign='curl -sS -X POST -H "Content-Type: application/json" --data "{}" https://fulcio.sigstore.dev/api/v2/signingCert'
scenario "Allowed: keyless signing — the step calls Fulcio with the job's own OIDC token; stepguard checks it in flight (workload) and forwards" 0 \
  env DEMO_ID_TOKEN="$(cat "$work/issuer/allowed.jwt")" \
  "$stepguard" run --policy "$work/signing.yaml" -v -- sh -c "$sign"' -H "Authorization: Bearer $DEMO_ID_TOKEN" -w "\nHTTP %{http_code}\n"'
scenario "Blocked: the same call with a long-lived GitHub token (ghp_…) — 403 from the proxy, Fulcio never sees it" 77 \
  env DEMO_ID_TOKEN="$(cat "$work/issuer/allowed.jwt")" \
  "$stepguard" run --policy "$work/signing.yaml" -- sh -c "$sign"' -H "Authorization: Bearer $(cat fulcio/pat)" -w "HTTP %{http_code}, X-StepGuard-Decision: %header{x-stepguard-decision}\n"'
printf '%scalls that reached the Fulcio stand-in:%s\n' "$dim" "$reset"; cat "$work/fulcio/requests.log" 2>/dev/null || true
if [ "$(wc -l < "$work/fulcio/requests.log" 2>/dev/null || echo 0)" -ne 1 ]; then
  printf '%s✘ expected exactly the allowed call to reach Fulcio%s\n' "$red" "$reset"; failures=$((failures + 1))
fi

printf '\n%s── Pre-commit: a staged secret is refused, a clean commit goes through%s\n' "$bold" "$reset"
if "$root/fixtures/secrets/demo_staged.sh" "$stepguard"; then
  printf '%s✔ as expected%s\n' "$green" "$reset"
else
  printf '%s✘ the staged-secret demonstration failed%s\n' "$red" "$reset"; failures=$((failures + 1))
fi

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
