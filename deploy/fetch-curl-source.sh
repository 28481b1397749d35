#!/bin/bash
# deploy/fetch-curl-source.sh [DIR]: puts Debian's curl source package, with Debian's patches (its CVE fixes among
# them) applied, under DIR (default /var/cache/cleanup-agent) for the built-in libcurl: CMake then builds a static
# libcurl from it with HTTP over Unix sockets and TCP only (cmake/Curl.cmake), and the agent starts without loading
# libcurl4 and its 31 shared libraries (~6 ms and ~8 MB resident at every start that talks to an engine).
#
# Uses apt-get with lists, a cache and a sources list of its own under DIR (deb-src lines for this system's Debian
# mirror: the release, its updates and its security archive), so the system's apt configuration, lists and caches
# are left as they are. Needs dpkg-dev (dpkg-source) and the Debian archive. Prints the source directory. Does
# nothing when DIR already has a source at least as new as the installed libcurl4; fetches again when it is older.
set -euo pipefail

dir=${1:-${AG_CURL_SOURCE_DIR:-/var/cache/cleanup-agent}}
prog=fetch-curl-source

# The Debian version of the source in DIR ("" when there is none): from its .dsc, whose tree must be there.
have_version() {
    local dsc v
    dsc=$(find "$dir" -maxdepth 1 -name 'curl_*.dsc' -printf '%f\n' 2>/dev/null | sort -V | tail -n 1 || true)
    [[ -n $dsc ]] || return 0
    v=${dsc#curl_}
    v=${v%.dsc}
    [[ -f $dir/curl-${v%%-*}/include/curl/curl.h ]] && echo "$v"
    return 0
}
source_dir() { local v; v=$(have_version); echo "$dir/curl-${v%%-*}"; }

# What the system's libcurl4 was built from: the fetched source must not be older (security fixes).
want=$(dpkg-query -W -f='${source:Version}' libcurl4 2>/dev/null || true)
have=$(have_version)
if [[ -n $have ]] && { [[ -z $want ]] || dpkg --compare-versions "$have" ge "$want"; }; then
    source_dir
    exit 0
fi
command -v dpkg-source >/dev/null || { echo "$prog: dpkg-source not found: apt-get install dpkg-dev" >&2; exit 1; }
[[ -z $have ]] || echo "$prog: curl $have in $dir is older than the installed libcurl4 ($want): fetching again" >&2

# This system's Debian mirror, security mirror and release, from its sources (one-line or deb822 format).
# shellcheck disable=SC1091
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[[ -n $codename ]] || { echo "$prog: no VERSION_CODENAME in /etc/os-release: not a Debian release?" >&2; exit 1; }
uris=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -v '^[[:space:]]*#' | grep -oE '(https?|file)://[^ ]*/debian(-security)?/?( |$)' | tr -d ' ' || true)
mirror=$(grep -v -- '-security' <<<"$uris" | head -n 1 || true)
security=$(grep -- '-security' <<<"$uris" | head -n 1 || true)
mirror=${mirror:-http://deb.debian.org/debian}
security=${security:-http://deb.debian.org/debian-security}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
signed=""
[[ ! -r $keyring ]] || signed="[signed-by=$keyring] "

mkdir -p "$dir/apt/lists/partial" "$dir/apt/cache/archives/partial"
chmod 755 "$dir"
{
    echo "deb-src ${signed}${mirror%/} $codename main"
    echo "deb-src ${signed}${mirror%/} $codename-updates main"
    echo "deb-src ${signed}${security%/} $codename-security main"
} >"$dir/apt/sources.list"
apt=(apt-get -q -o "Dir::Etc::SourceList=$dir/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$dir/apt/lists" -o "Dir::Cache=$dir/apt/cache" -o DPkg::Lock::Timeout=300)
ok=0
for attempt in 1 2 3; do
    # The newest source of the three archives; an older one in DIR goes first (dpkg-source will not overwrite it).
    if "${apt[@]}" update >&2 &&
        (cd "$dir" && rm -rf -- curl-[0-9]* curl_* && "${apt[@]}" source curl >&2); then
        ok=1
        break
    fi
    echo "$prog: apt-get failed (attempt $attempt of 3)" >&2
    sleep $((attempt * 5))
done
((ok)) || { echo "$prog: could not fetch curl's source from $mirror and $security ($codename)" >&2; exit 1; }
have=$(have_version)
[[ -n $have ]] || { echo "$prog: apt-get source curl left no source tree under $dir" >&2; exit 1; }
source_dir
