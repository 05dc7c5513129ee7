#!/usr/bin/env bash
# Runs a release archive's binary on minimal Debian root filesystems (debootstrap --variant=minbase:
# none of the -dev packages, no libcurl, no libgit2): --version, policy check, an isolated run,
# identity verify with a token file, scan of a directory, then scan --staged in a git repository
# after installing only that release's runtime libgit2 package (and git, to make the repository); from
# Debian 13 on, actions/setup's AppArmor profile is parsed by Debian's apparmor_parser.
# Usage (as root): scripts/check-release.sh dist/stepguard-VERSION-linux-ARCH.tar.gz [SUITE...]
#   SUITEs default to bookworm (Debian 12) and trixie (Debian 13). Pristine root filesystems are
#   cached in $STEPGUARD_ROOTFS_CACHE (default /var/cache/stepguard-rootfs; the first run downloads
#   them); each run works on a copy, so what it installs never reaches the cache.
# Prints one line per check ("ok"/"FAIL") and exits non-zero if any failed.
set -uo pipefail
archive=${1:?usage: scripts/check-release.sh dist/stepguard-VERSION-linux-ARCH.tar.gz [SUITE...]}
shift
suites=("$@"); ((${#suites[@]})) || suites=(bookworm trixie)
[[ $(id -u) -eq 0 ]] || { echo "check-release.sh: run as root (debootstrap, mount namespaces)" >&2; exit 64; }
root_dir=$(cd "$(dirname "$0")/.." && pwd)
cache=${STEPGUARD_ROOTFS_CACHE:-/var/cache/stepguard-rootfs}
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
failures=0
work_root=$(mktemp -d /var/tmp/stepguard-check-XXXXXX)
trap 'rm -rf "$work_root"' EXIT
# Runs COMMAND with the root filesystem of SUITE as / — by pivot_root in a mount namespace of its own,
# not chroot: the kernel refuses a chrooted process a user namespace, which isolation needs.
in_root() {  # in_root SUITE COMMAND
  unshare -m --propagation private /bin/sh -c '
    fs=$0; mount --bind "$fs" "$fs" && mount -t proc proc "$fs/proc" && mount --rbind /dev "$fs/dev" || exit 70
    cd "$fs" && mkdir -p .oldroot && pivot_root . .oldroot && cd / || exit 70
    umount -l /.oldroot 2>/dev/null
    exec /bin/sh -c "$1"' "$work_root/$1" "$2"
}
check() {  # check SUITE DESCRIPTION COMMAND... (run in the root filesystem)
  local suite=$1 what=$2; shift 2
  if output=$(in_root "$suite" "$*" 2>&1); then
    printf 'ok    %-9s %s\n' "$suite" "$what"
  else
    printf 'FAIL  %-9s %s\n%s\n' "$suite" "$what" "$(sed 's/^/        /' <<<"$output" | tail -5)"
    failures=$((failures + 1))
  fi
}

for suite in "${suites[@]}"; do
  fs="$cache/$suite"
  if [[ ! -x $fs/bin/sh ]]; then
    echo "== debootstrap --variant=minbase $suite (first run only)" >&2
    rm -rf "$fs.partial"
    debootstrap --variant=minbase "$suite" "$fs.partial" http://deb.debian.org/debian >/dev/null || { echo "debootstrap $suite failed" >&2; exit 69; }
    mv "$fs.partial" "$fs"
  fi
  copy="$work_root/$suite"
  cp -a "$fs" "$copy"
  fs=$copy
  mkdir -p "$fs/opt/stepguard" "$fs/proc" "$fs/dev"
  tar -xzf "$archive" -C "$fs/opt/stepguard" stepguard
  rm -rf "$fs/work"; mkdir -p "$fs/work/tree"
  cp /etc/resolv.conf "$fs/etc/resolv.conf"
  python3 "$root_dir/fixtures/identity/demo_issuer.py" "$fs/work/issuer" >/dev/null
  printf 'version: 1\nisolation: required\n' > "$fs/work/isolated.yaml"
  # A token-shaped value built here, so that no secret literal is committed.
  printf 'DEPLOY_TOKEN=gh%s_%s\n' p "$(head -c 300 /dev/urandom | tr -dc 'A-Za-z0-9' | head -c 36)" > "$fs/work/tree/config.env"
  sg=/opt/stepguard/stepguard
  check "$suite" "--version" "$sg --version"
  check "$suite" "no library of a -dev package is needed (vectorscan, PCRE2, libyaml, libstdc++, libgcc linked statically)" \
    "! ldd $sg | grep -E 'libhs|libpcre2|libyaml|libstdc|libgcc_s|not found'"
  check "$suite" "libraries planted beside the binary are not loaded (no RUNPATH \$ORIGIN)" \
    "for l in libc.so.6 libm.so.6 libstdc++.so.6 libgcc_s.so.1; do : > /opt/stepguard/\$l; done; $sg --version; s=\$?; rm -f /opt/stepguard/lib*; exit \$s"
  check "$suite" "policy check" "$sg policy check /work/isolated.yaml"
  check "$suite" "run, isolated (PID namespace, own /proc)" "$sg run --policy /work/isolated.yaml -- sh -c 'test \$\$ -eq 2'"
  check "$suite" "identity verify --token-file" "$sg identity verify --policy /work/issuer/policy.yaml --token-file /work/issuer/allowed.jwt"
  check "$suite" "scan of a directory finds the key (exit 1)" "$sg scan /work/tree; test \$? -eq 1"
  libgit2=$(chroot "$fs" /bin/sh -c "apt-cache search --names-only '^libgit2-1\.[0-9]+\$' 2>/dev/null" | awk '{print $1}' | sort -V | tail -1)
  [[ -n $libgit2 ]] || { chroot "$fs" apt-get update -qq >/dev/null 2>&1; libgit2=$(chroot "$fs" /bin/sh -c "apt-cache search --names-only '^libgit2-1\.[0-9]+\$'" | awk '{print $1}' | sort -V | tail -1); }
  check "$suite" "install only the runtime libgit2 ($libgit2) and git" \
    "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $libgit2 git >/dev/null"
  check "$suite" "scan --staged finds the staged key (exit 1)" \
    "cd /work/tree && git init -q . && git add config.env && $sg scan --staged; test \$? -eq 1"
  # actions/setup's AppArmor profile, parsed (not loaded) by the release's own parser: Debian 13's
  # apparmor 4 reads `userns` rules; Debian 12's 3.0.8 does not, so it is parsed there only from 13 on.
  if [[ $suite != bookworm ]]; then
    sed 's|@STEPGUARD_BINARY@|/opt/stepguard/stepguard|' "$root_dir/actions/setup/stepguard.apparmor" > "$fs/work/stepguard.apparmor"
    check "$suite" "actions/setup's AppArmor profile parses (apparmor_parser --skip-kernel-load)" \
      "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends apparmor >/dev/null && apparmor_parser --version | head -1 && apparmor_parser --skip-kernel-load --skip-cache /work/stepguard.apparmor"
  fi
done
echo "$failures check(s) failed"
exit $((failures > 0))
