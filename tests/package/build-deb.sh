#!/bin/bash
# Builds the Debian package as CI does and checks it with lintian: copies the tree (the files git knows and the new
# ones it does not ignore: no build directories) to a temp dir, runs `dpkg-buildpackage -us -uc -b` there, then
# `lintian` on the result, which fails on any error or warning that debian/cleanup-agent.lintian-overrides does not
# override with its reason. The .deb, its .changes and .buildinfo and lintian's output land in OUT_DIR.
# Usage: tests/package/build-deb.sh [OUT_DIR]      (default: build-deb/ in the repository)
# Needs: dpkg-dev, debhelper, lintian and the Build-Depends of debian/control (tests/run.sh installs them).
set -euo pipefail
prog=build-deb.sh
repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
out=${1:-$repo/build-deb}
die() { echo "$prog: $*" >&2; exit 1; }

cd "$repo"
version=$(dpkg-parsechangelog -S Version)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
deb=cleanup-agent_${version}_${arch}.deb
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cleanup-agent-deb.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT
src=$tmp/cleanup-agent-$version
mkdir -p "$src" "$out"
git ls-files -z --cached --others --exclude-standard | xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
    tar --null -T - -cf - | tar -C "$src" -xf -

start=$SECONDS
echo "$prog: dpkg-buildpackage -us -uc -b in $src"
(cd "$src" && DEB_BUILD_OPTIONS="parallel=2 ${DEB_BUILD_OPTIONS:-}" dpkg-buildpackage -us -uc -b) >"$out/build.log" 2>&1 ||
    { tail -n 40 "$out/build.log"; die "dpkg-buildpackage failed (whole log: $out/build.log)"; }
build_secs=$((SECONDS - start))
[[ -f $tmp/$deb ]] || die "dpkg-buildpackage did not produce $deb (got: $(cd "$tmp" && echo *.deb))"
rm -f -- "$out"/cleanup-agent_*
# The package, its -dbgsym, and the .changes and .buildinfo that list them.
cp -- "$tmp"/cleanup-agent*_"${version}"_"${arch}".* "$out/"
echo "$prog: built $out/$deb in ${build_secs} s"
dpkg-deb --info "$out/$deb" | sed -n '/Package:/,$p'
dpkg-deb --contents "$out/$deb" | awk '{print $1, $6, $7, $8}'

start=$SECONDS
rc=0
# --fail-on error,warning: a warning without an override with its reason fails as an error does.
lintian --fail-on error,warning --display-info --show-overrides --tag-display-limit 0 \
    "$out/cleanup-agent_${version}_${arch}.changes" >"$out/lintian.txt" 2>&1 || rc=$?
cat "$out/lintian.txt"
echo "$prog: lintian in $((SECONDS - start)) s: $(grep -c '^E: ' "$out/lintian.txt") errors," \
    "$(grep -c '^W: ' "$out/lintian.txt") warnings, $(grep -c '^O: ' "$out/lintian.txt") overridden," \
    "$(grep -c '^I: ' "$out/lintian.txt") info"
((rc == 0)) || die "lintian failed (exit $rc): every error must be fixed, every warning fixed or overridden with a reason in debian/cleanup-agent.lintian-overrides"
echo "$prog: PASS $out/$deb"
