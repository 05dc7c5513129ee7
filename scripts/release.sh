#!/usr/bin/env bash
# Builds the release archives of stepguard for this machine's architecture (x86_64 or aarch64, from
# `uname -m`; .github/workflows/release.yml runs it on a native runner of each):
#   dist/stepguard-VERSION-linux-ARCH.tar.gz        the binary, stripped; the Swift runtime, vectorscan,
#                                                   PCRE2, libyaml, libstdc++ and libgcc linked statically (libcurl and libgit2 are opened
#                                                   at run time, only by the commands that need them)
#   dist/stepguard-VERSION-linux-ARCH-debug.tar.gz  its debug information (stepguard.debug, found by
#                                                   gdb through the binary's .gnu_debuglink)
#   dist/SHA256SUMS                                 "HASH  FILE" lines, the format actions/setup reads
# Usage: scripts/release.sh VERSION    (e.g. 0.2.0; builds in .build-release, apart from .build, or in
#   $STEPGUARD_RELEASE_SCRATCH: e.g. .build, to reuse a release build made there)
set -euo pipefail
version=${1:?usage: scripts/release.sh VERSION (e.g. 0.2.0)}
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+([-.][0-9A-Za-z.]+)?$ ]] || { echo "release.sh: '$version' is not a version like 0.2.0" >&2; exit 64; }
cd "$(dirname "$0")/.."
scratch=${STEPGUARD_RELEASE_SCRATCH:-.build-release}
./scripts/install-deps.sh --build
case "$(uname -m)" in x86_64|amd64) arch=x86_64 ;; aarch64|arm64) arch=aarch64 ;; *) echo "release.sh: unsupported architecture $(uname -m)" >&2; exit 69 ;; esac

# Static vectorscan, PCRE2 and libyaml: pkg-config files that name the archives Debian ships (libhs.a,
# libpcre2-8.a, libyaml.a) instead of the shared libraries; SwiftPM links what pkg-config says.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for pc in libhs libpcre2-8 yaml-0.1; do
  libdir=$(pkg-config --variable=libdir "$pc")
  lib=${pc%-0.1}; [[ $lib == lib* ]] || lib=lib$lib  # yaml-0.1 is libyaml.a
  archive="$libdir/${lib}.a"
  [[ -f $archive ]] || { echo "release.sh: $archive is missing (it comes with the -dev package of $pc)" >&2; exit 69; }
  extra=""; [[ $pc == libhs ]] && extra=" -lstdc++ -lm"  # vectorscan is C++
  sed "s|^Libs: .*|Libs: -l:${lib}.a${extra}|" "$(pkg-config --variable=pcfiledir "$pc")/$pc.pc" > "$work/$pc.pc"
done
# libstdc++ and libgcc statically too (the Swift runtime and vectorscan need them): loading them as
# shared libraries, with their relocations and constructors, cost every run about 1 ms (bench/README.md,
# "Start-up … static libstdc++"). `-lstdc++` finds this linker script before the shared library.
libstdcxx=$(gcc -print-file-name=libstdc++.a)
[[ $libstdcxx == /* && -f $libstdcxx ]] || { echo "release.sh: libstdc++.a is missing (it comes with Debian's libstdc++-12-dev, which the Swift toolchain needs)" >&2; exit 69; }
echo "INPUT($libstdcxx)" > "$work/libstdc++.so"
static_cxx=(-Xlinker -L"$work" -Xswiftc -Xclang-linker -Xswiftc -static-libgcc)
# Concrete types' metadata through their accessor functions, not instantiated from mangled names, in
# every package's modules too (Package.swift can set it only for stepguard's own): the runtime then
# never demangles `Dictionary<String, String>` and friends at start-up, and so never scans the
# binary's 6,665 protocol conformance records to prove `String: Hashable` (once per uncached type and
# protocol; 0.4-0.6 ms a run: bench/README.md, "Start-up … 2026-12-08").
metadata_accessors=(-Xswiftc -Xfrontend -Xswiftc -disable-concrete-type-metadata-mangled-name-accessors)
# --disable-local-rpath: no RUNPATH $ORIGIN. With it, the dynamic loader looked for libm, libc… in the
# binary's own directory first, so a library planted beside an installed stepguard (a tool cache a
# job can write to) ran inside it before main, past actions/run's SHA-256 check of the binary.
PKG_CONFIG_PATH="$work" swift build -c release --static-swift-stdlib --disable-local-rpath "${static_cxx[@]}" "${metadata_accessors[@]}" --product stepguard --scratch-path "$scratch" >&2
binary=$scratch/release/stepguard
if readelf -d "$binary" | grep -E '\((RPATH|RUNPATH)\)' >&2; then
  echo "release.sh: the binary has the search path above; a library planted beside it would be loaded" >&2
  exit 70
fi
if readelf -l -W "$binary" | awk '$1 == "LOAD" && $NF != "0x200000" { found = 1 } END { exit !found }'; then
  echo "release.sh: a PT_LOAD segment of the binary is not aligned to 2 MiB; its code could not be mapped in 2 MiB pages (Package.swift: -z max-page-size)" >&2
  exit 70
fi
if ldd "$binary" | grep -E 'libhs|libpcre2|libyaml|libswift|libFoundation|libstdc\+\+|libgcc_s' >&2; then
  echo "release.sh: the binary still needs the shared libraries above; it would not start on a stock runner" >&2
  exit 70
fi

mkdir -p dist "$work/stage"
objcopy --only-keep-debug "$binary" "$work/stage/stepguard.debug"
objcopy --strip-debug --strip-unneeded --add-gnu-debuglink="$work/stage/stepguard.debug" "$binary" "$work/stage/stepguard"
"$work/stage/stepguard" --version >/dev/null
name="stepguard-$version-linux-$arch"
tar -czf "dist/$name.tar.gz" -C "$work/stage" stepguard
tar -czf "dist/$name-debug.tar.gz" -C "$work/stage" stepguard.debug
# SHA256SUMS keeps the lines of other architectures' archives already in dist/.
touch dist/SHA256SUMS
grep -v -E "  ($name\.tar\.gz|$name-debug\.tar\.gz)$" dist/SHA256SUMS > "$work/sums" || true
(cd dist && sha256sum "$name.tar.gz" "$name-debug.tar.gz") >> "$work/sums"
sort -k2 "$work/sums" > dist/SHA256SUMS
for file in "dist/$name.tar.gz" "dist/$name-debug.tar.gz"; do
  printf '%s\t%s MB\n' "$file" "$(awk "BEGIN { printf \"%.1f\", $(stat -c %s "$file") / 1048576 }")"
done
printf 'binary (stripped)\t%s MB; needs: %s\n' "$(awk "BEGIN { printf \"%.1f\", $(stat -c %s "$work/stage/stepguard") / 1048576 }")" \
  "$(ldd "$work/stage/stepguard" | awk '/=>/ { print $1 }' | tr '\n' ' ')"
