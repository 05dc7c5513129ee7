#!/usr/bin/env bash
# Puts stepguard on PATH for the rest of the job (GitHub composite action `actions/setup`).
# Inputs arrive only through the environment (never interpolated into the script):
#   STEPGUARD_VERSION      release to install; empty = build from the source of this repository
#   STEPGUARD_CHECKSUM     expected SHA-256 of the archive (default: from the release's SHA256SUMS)
#   STEPGUARD_RELEASE_URL  base URL (https:// or file://) of the releases
#   STEPGUARD_SOURCE_DIR   source tree to build (default: two levels above this script)
#   STEPGUARD_BUILD_DIR    SwiftPM scratch path, cached by the action (default: ~/.cache/stepguard/build)
#   Where AppArmor restricts user namespaces (tests point these elsewhere): STEPGUARD_USERNS_RESTRICTION
#   (default /proc/sys/kernel/apparmor_restrict_unprivileged_userns), STEPGUARD_SYSTEM_DIR (root-owned
#   copies, default /opt/stepguard), STEPGUARD_APPARMOR_DIR (default /etc/apparmor.d).
# Writes `path`, `version` and `sha256` to $GITHUB_OUTPUT, the binary's folder to $GITHUB_PATH, and
# STEPGUARD_SETUP_PATH / STEPGUARD_SETUP_SHA256 to $GITHUB_ENV: actions/run runs that binary only
# when its SHA-256 still matches (a guarded step that rewrites these entries is a violation, and
# stepguard puts $GITHUB_ENV back).
set -euo pipefail

fail() { echo "::error title=stepguard setup::$*" >&2; exit 1; }
: "${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set; run this inside GitHub Actions (or simulate it)}"
: "${GITHUB_PATH:?GITHUB_PATH is not set; run this inside GitHub Actions (or simulate it)}"
: "${GITHUB_ENV:?GITHUB_ENV is not set; run this inside GitHub Actions (or simulate it)}"

version="${STEPGUARD_VERSION:-}"
version="${version#v}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tool_root="${RUNNER_TOOL_CACHE:-${RUNNER_TEMP:-/tmp}}/stepguard"

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1; else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

if [[ -n "$version" ]]; then
  [[ "$version" =~ ^[0-9A-Za-z._+-]+$ ]] || fail "version '$version' is not a release name (expected e.g. 0.1.0)"
  case "$(uname -s)" in Linux) os=linux ;; Darwin) os=macos ;; *) fail "no stepguard release for $(uname -s); leave version empty to build from source" ;; esac
  case "$(uname -m)" in x86_64|amd64) arch=x86_64 ;; aarch64|arm64) arch=aarch64 ;; *) fail "no stepguard release for $(uname -m)" ;; esac
  archive="stepguard-${version}-${os}-${arch}.tar.gz"
  base="${STEPGUARD_RELEASE_URL%/}/v${version}"
  dest="$tool_root/$version/$arch"
  if [[ ! -x "$dest/stepguard" ]]; then
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    fetch() { curl --fail --silent --show-error --location --retry 3 --proto '=https,file' --proto-redir '=https' -o "$2" "$1"; }
    fetch "$base/$archive" "$work/$archive" || fail "cannot download $base/$archive"
    expected="${STEPGUARD_CHECKSUM:-}"
    if [[ -z "$expected" ]]; then
      fetch "$base/SHA256SUMS" "$work/SHA256SUMS" || fail "cannot download $base/SHA256SUMS; pass the checksum input instead"
      expected="$(awk -v f="$archive" '$2 == f || $2 == "*" f { print $1 }' "$work/SHA256SUMS")"
      [[ -n "$expected" ]] || fail "$archive is not listed in $base/SHA256SUMS"
    fi
    actual="$(sha256 "$work/$archive")"
    [[ "${actual,,}" == "${expected,,}" ]] || fail "checksum mismatch for $archive: expected $expected, got $actual; the archive was not installed"
    mkdir -p "$dest" "$work/unpacked"
    tar -xzf "$work/$archive" -C "$work/unpacked"
    [[ -x "$work/unpacked/stepguard" ]] || fail "$archive has no executable stepguard at its top level"
    # Written in 2 MiB blocks: where the file system caches large folios, each run then maps
    # stepguard's code in 2 MiB pages (about 0.7 ms less per run; `stepguard doctor` says).
    # A file of our own (mktemp: created exclusively, no link followed) in the shared tool cache.
    staged="$(mktemp "$dest/.stepguard.XXXXXX")" || fail "cannot create a file in $dest"
    dd if="$work/unpacked/stepguard" of="$staged" bs=2M conv=notrunc status=none && chmod 0755 "$staged" \
      && mv -f "$staged" "$dest/stepguard" || { rm -f "$staged"; fail "cannot install stepguard into $dest"; }
  fi
  bin="$dest"
else
  source_dir="${STEPGUARD_SOURCE_DIR:-$(cd "$here/../.." && pwd)}"
  [[ -f "$source_dir/Package.swift" ]] || fail "no Package.swift in $source_dir; give a version to install a release instead"
  command -v swift >/dev/null 2>&1 || fail "swift is not on PATH; install a Swift 6 toolchain first or give a version"
  build_dir="${STEPGUARD_BUILD_DIR:-$HOME/.cache/stepguard/build}"
  echo "Building stepguard from $source_dir (cache: $build_dir)"
  (cd "$source_dir" && swift build -c release --product stepguard --scratch-path "$build_dir") >&2 || fail "swift build failed; see the log above"
  built="$(cd "$source_dir" && swift build -c release --product stepguard --scratch-path "$build_dir" --show-bin-path)"
  bin="$tool_root/source/bin"
  mkdir -p "$bin"
  cp "$built/stepguard" "$bin/stepguard"
fi

reported="$("$bin/stepguard" --version 2>/dev/null || true)"
[[ -n "$reported" ]] || fail "$bin/stepguard does not run"
digest="$(sha256 "$bin/stepguard")"

# Isolation where AppArmor restricts unprivileged user namespaces (Ubuntu 23.10 and later, GitHub's
# ubuntu-24.04): the profile in stepguard.apparmor grants them to one root-owned copy of the binary
# (a copy the job's steps cannot replace), the way Ubuntu's own profiles do for bubblewrap; with
# sudo that asks no password. Where that cannot be done, the log says why and what to do.
warn() { echo "::warning title=stepguard setup::$*"; }
grant_user_namespaces() {
  local remedy="isolation: auto falls back to proxy variables only and isolation: required fails (exit 69); run 'sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0' before this action, or use a runner with passwordless sudo and apparmor_parser"
  command -v apparmor_parser >/dev/null 2>&1 || { warn "AppArmor restricts user namespaces on this runner and apparmor_parser is not installed, so no profile can grant them to stepguard: $remedy"; return 1; }
  sudo -n true >/dev/null 2>&1 || { warn "AppArmor restricts user namespaces on this runner and sudo asks for a password (or is missing), so no profile can be installed: $remedy"; return 1; }
  local system_dir="${STEPGUARD_SYSTEM_DIR:-/opt/stepguard}/$digest"
  local profile="${STEPGUARD_APPARMOR_DIR:-/etc/apparmor.d}/stepguard"
  # The path is the profile's attachment: a glob or quote character in it would attach the profile elsewhere.
  [[ "$system_dir/stepguard" =~ ^/[A-Za-z0-9._/+-]+$ ]] || { warn "cannot grant user namespaces to $system_dir/stepguard: the path has characters an AppArmor attachment would read as a pattern; $remedy"; return 1; }
  local rendered; rendered="$(mktemp)"
  sed "s|@STEPGUARD_BINARY@|$system_dir/stepguard|" "$here/stepguard.apparmor" > "$rendered"
  # The copy is a new empty root-owned file filled in 2 MiB writes, like the unprivileged install above.
  sudo -n install -d -m 0755 -o root -g root "$system_dir" \
    && sudo -n install -m 0755 -o root -g root /dev/null "$system_dir/stepguard" \
    && sudo -n dd if="$bin/stepguard" of="$system_dir/stepguard" bs=2M conv=notrunc status=none \
    && sudo -n install -D -m 0644 -o root -g root "$rendered" "$profile" \
    || { rm -f "$rendered"; warn "installing the AppArmor profile with sudo failed (see above): $remedy"; return 1; }
  rm -f "$rendered"
  [[ "$(sha256 "$system_dir/stepguard")" == "$digest" ]] || fail "the root-owned copy $system_dir/stepguard differs from the binary that was checked; nothing was loaded"
  sudo -n apparmor_parser --replace "$profile" || { warn "apparmor_parser could not load $profile (see above): $remedy"; return 1; }
  echo "AppArmor restricts user namespaces on this runner: loaded the profile 'stepguard' ($profile), which grants them to $system_dir/stepguard (a root-owned copy), so steps can be isolated"
  bin="$system_dir"
}
restriction="${STEPGUARD_USERNS_RESTRICTION:-/proc/sys/kernel/apparmor_restrict_unprivileged_userns}"
if [[ "$(uname -s)" == Linux && "$(cat "$restriction" 2>/dev/null)" == 1 ]]; then
  grant_user_namespaces || true
fi
echo "$bin" >> "$GITHUB_PATH"
{ echo "STEPGUARD_SETUP_PATH=$bin/stepguard"; echo "STEPGUARD_SETUP_SHA256=$digest"; } >> "$GITHUB_ENV"
{ echo "path=$bin/stepguard"; echo "version=$reported"; echo "sha256=$digest"; } >> "$GITHUB_OUTPUT"
echo "stepguard $reported installed at $bin/stepguard"
