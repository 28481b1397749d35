#!/bin/bash
# One version: CMake's project() version is what `cleanup-agent --version` prints, the newest entry of CHANGELOG.md
# and of debian/changelog (the package's version); and --version names the libcurl the binary runs with.
# Usage: check_version.sh REPO BINARY CMAKE_VERSION
set -uo pipefail
repo=$1 bin=$2 version=$3
passed=0 failed=0
expect() { # expect WHAT GOT WANT
    if [[ $2 == "$3" ]]; then passed=$((passed + 1)); else echo "FAIL: $1 is '$2', not '$3'"; failed=$((failed + 1)); fi
}

out=$("$bin" --version) || { echo "FAIL: $bin --version failed"; exit 1; }
echo "$out"
expect "--version's first line" "$(sed -n 1p <<<"$out")" "cleanup-agent $version"
# CHANGELOG.md: newest first, each release a '## <version> (<date>)' heading.
expect "CHANGELOG.md's newest release" "$(sed -n 's/^## \([^ ]*\).*/\1/p' "$repo/CHANGELOG.md" | head -n 1)" "$version"
# debian/changelog's first line: 'cleanup-agent (<version>) <distribution>; urgency=...' (a native package).
expect "debian/changelog's version" "$(sed -n '1s/^cleanup-agent (\([^)]*\)).*/\1/p' "$repo/debian/changelog")" "$version"
# libcurl: the one loaded at run time; on Debian the -dev package's version is the runtime library's.
curl_runtime=$(pkg-config --modversion libcurl 2>/dev/null)
expect "--version's libcurl" "$(sed -n 's/^libcurl \([0-9.]*\).*/\1/p' <<<"$out")" "$curl_runtime"
expect "--version's features line" "$(grep -cE '^features:( [+-][a-z-]+)+$' <<<"$out")" 1
expect "--version's proxy feature" "$(grep -c ' +proxy' <<<"$out")" 1
echo "$passed passed, $failed failed"
((failed == 0))
