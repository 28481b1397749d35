#!/bin/bash
# deploy/fetch-curl-source.sh [DIR]: puts Debian's curl source package, with Debian's patches (its CVE fixes among
# them) applied, under DIR (default /var/cache/cleanup-agent) for the built-in libcurl: CMake then builds a static
# libcurl from it with HTTP over Unix sockets and TCP only (cmake/Curl.cmake), and the agent starts without loading
# libcurl4 and its 31 shared libraries (~6 ms and ~8 MB resident at every start that talks to an engine).
#
# Uses apt-get with lists and a sources list of its own under DIR (a deb-src line for this system's Debian mirror
# and release), so the system's apt configuration and lists are left as they are. Needs dpkg-dev (dpkg-source) and
# the Debian archive. Prints the source directory. Does nothing when DIR already has one.
set -euo pipefail

dir=${1:-${AG_CURL_SOURCE_DIR:-/var/cache/cleanup-agent}}
prog=fetch-curl-source

existing() { find "$dir" -mindepth 2 -maxdepth 4 -path '*/include/curl/curl.h' -printf '%h\n' 2>/dev/null |
    sed 's|/include/curl$||' | sort -V | tail -n 1; }

src=$(existing)
if [[ -n $src ]]; then
    echo "$src"
    exit 0
fi
command -v dpkg-source >/dev/null || { echo "$prog: dpkg-source not found: apt-get install dpkg-dev" >&2; exit 1; }

# This system's Debian mirror and release: the first Debian archive URI in its sources (one-line or deb822 format).
# shellcheck disable=SC1091
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[[ -n $codename ]] || { echo "$prog: no VERSION_CODENAME in /etc/os-release: not a Debian release?" >&2; exit 1; }
mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -oE '(https?|file)://[^ ]*/debian/?( |$)' | grep -v -- '-security' | head -n 1 | tr -d ' ' || true)
mirror=${mirror:-http://deb.debian.org/debian}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
signed=""
[[ ! -r $keyring ]] || signed="[signed-by=$keyring] "

mkdir -p "$dir/apt/lists/partial"
echo "deb-src ${signed}${mirror%/} $codename main" >"$dir/apt/sources.list"
apt=(apt-get -q -o "Dir::Etc::SourceList=$dir/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$dir/apt/lists" -o DPkg::Lock::Timeout=300)
ok=0
for attempt in 1 2 3; do
    if "${apt[@]}" update >&2 && (cd "$dir" && "${apt[@]}" source curl >&2); then
        ok=1
        break
    fi
    echo "$prog: apt-get failed (attempt $attempt of 3)" >&2
    sleep $((attempt * 5))
done
((ok)) || { echo "$prog: could not fetch curl's source from $mirror ($codename)" >&2; exit 1; }
src=$(existing)
[[ -n $src ]] || { echo "$prog: apt-get source curl left no source tree under $dir" >&2; exit 1; }
echo "$src"
