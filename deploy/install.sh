#!/bin/bash
# deploy/install.sh: installs cleanup-agent and its systemd units.
#   1. builds the binary if needed (cmake, in --build-dir; a new build dir is configured without the test suites),
#   2. `cmake --install` puts it in PREFIX/bin (under DESTDIR when given),
#   3. copies the units of deploy/systemd/ to the systemd unit directory (under the same DESTDIR), with their paths
#      rewritten for PREFIX, and the deploy/ README to PREFIX/share/doc/cleanup-agent/deploy/.
# Running it again installs the same files again (idempotent); it never enables or starts anything unless asked.
#
# Usage: deploy/install.sh [--prefix DIR] [--destdir DIR] [--build-dir DIR] [--unitdir DIR] [--no-systemd] [--enable]
#   --prefix DIR     installation prefix (default /usr/local)
#   --destdir DIR    staging root, as DESTDIR for packaging (default: $DESTDIR, else none)
#   --build-dir DIR  the CMake build directory to install from (default: build/ in the repository)
#   --unitdir DIR    systemd system unit directory (default: PREFIX/lib/systemd/system, which systemd searches for
#                    the prefixes /usr and /usr/local; for any other prefix pass --unitdir /etc/systemd/system)
#   --no-systemd     install the binary only
#   --enable         then `systemctl daemon-reload` and `systemctl enable --now cleanup-agent-gc.timer`
#                    (only without --destdir, on a host booted with systemd)
# Exit status: 0 done, 1 a step failed, 2 usage error.
set -euo pipefail

prog=deploy/install.sh
repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)

die() {
    echo "$prog: $*" >&2
    exit 1
}
usage_error() {
    echo "$prog: $* (try --help)" >&2
    exit 2
}

prefix=/usr/local
destdir=${DESTDIR:-}
build_dir=$repo/build
unitdir=""
systemd=1
enable=0

while (($#)); do
    case $1 in
    --prefix | --destdir | --build-dir | --unitdir)
        (($# >= 2)) || usage_error "$1 needs a value"
        case $1 in
        --prefix) prefix=$2 ;;
        --destdir) destdir=$2 ;;
        --build-dir) build_dir=$2 ;;
        --unitdir) unitdir=$2 ;;
        esac
        shift 2
        ;;
    --prefix=* | --destdir=* | --build-dir=* | --unitdir=*)
        value=${1#*=}
        case $1 in
        --prefix=*) prefix=$value ;;
        --destdir=*) destdir=$value ;;
        --build-dir=*) build_dir=$value ;;
        --unitdir=*) unitdir=$value ;;
        esac
        shift
        ;;
    --no-systemd) systemd=0; shift ;;
    --enable) enable=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) usage_error "unknown option '$1'" ;;
    esac
done

# Paths go into unit files through sed and into systemd's ExecStart=: absolute, and nothing that either would read
# as syntax.
check_path() {
    local what=$1 p=$2
    [[ $p == /* ]] || usage_error "$what must be an absolute path, not '$p'"
    [[ $p != *[[:space:]\|\&\\\$\%\;\"\']* ]] || usage_error "$what '$p' contains a space or one of | & \\ \$ % ; quotes"
}
check_path --prefix "$prefix"
[[ -z $destdir ]] || check_path --destdir "$destdir"
[[ -z $unitdir ]] || check_path --unitdir "$unitdir"
prefix=${prefix%/}
[[ -n $prefix ]] || prefix=/
destdir=${destdir%/}
((!enable || systemd)) || usage_error "--enable and --no-systemd contradict each other"
((!enable)) || [[ -z $destdir ]] || usage_error "--enable installs into the running system: drop --destdir"
((!enable)) || [[ -d /run/systemd/system ]] || die "--enable: this host was not booted with systemd (no /run/systemd/system)"

command -v cmake >/dev/null || die "cmake not found: apt-get install cmake"

# 1. Build when the binary is missing or older than the sources (cmake --build is a no-op when up to date).
if [[ ! -f $build_dir/CMakeCache.txt ]]; then
    echo "$prog: configuring $build_dir (without the test suites)"
    cmake -S "$repo" -B "$build_dir" -DAG_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null ||
        die "cmake could not configure $build_dir (see the messages above)"
fi
cmake --build "$build_dir" --target cleanup-agent >/dev/null || die "building cleanup-agent in $build_dir failed"

# 2. The binary, through the project's install rule.
DESTDIR=$destdir cmake --install "$build_dir" --prefix "$prefix" >/dev/null ||
    die "cmake --install from $build_dir to ${destdir}$prefix failed"
bin=$prefix/bin/cleanup-agent
[[ -x $destdir$bin ]] || die "cmake --install did not produce $destdir$bin"
echo "$prog: installed $destdir$bin"

((systemd)) || exit 0

# 3. Units and README. The units name /usr/local (ExecStart=, Documentation=); rewrite that for other prefixes.
# Nothing is written outside PREFIX and DESTDIR unless --unitdir says so.
[[ -n $unitdir ]] || unitdir=$prefix/lib/systemd/system
searched=1
case $unitdir in
/etc/systemd/system | /usr/lib/systemd/system | /lib/systemd/system | /usr/local/lib/systemd/system) ;;
*) searched=0 ;;
esac
((!enable || searched)) || usage_error "--enable: systemd does not search $unitdir; pass --unitdir /etc/systemd/system"
units=(cleanup-agent-gc.service cleanup-agent-gc.timer cleanup-agent-run@.service cleanup_agent.slice)
mkdir -p -- "$destdir$unitdir" || die "cannot create $destdir$unitdir"
for u in "${units[@]}"; do
    src=$repo/deploy/systemd/$u
    [[ -f $src ]] || die "missing $src"
    tmp=$(mktemp "$destdir$unitdir/.$u.XXXXXX") || die "cannot write in $destdir$unitdir"
    # Atomic replacement: systemd may read the directory at any moment (daemon-reload from elsewhere).
    if ! sed "s|/usr/local/|$prefix/|g" "$src" >"$tmp" || ! chmod 0644 "$tmp" || ! mv -f -- "$tmp" "$destdir$unitdir/$u"; then
        rm -f -- "$tmp"
        die "cannot install $destdir$unitdir/$u"
    fi
done
echo "$prog: installed ${units[*]} in $destdir$unitdir"
docdir=$destdir$prefix/share/doc/cleanup-agent/deploy
install -D -m 0644 "$repo/deploy/README.md" "$docdir/README.md" || die "cannot install $docdir/README.md"

if ((enable)); then
    systemctl daemon-reload || die "systemctl daemon-reload failed"
    systemctl enable --now cleanup-agent-gc.timer || die "systemctl enable --now cleanup-agent-gc.timer failed"
    echo "$prog: enabled cleanup-agent-gc.timer (next run: systemctl list-timers cleanup-agent-gc.timer)"
elif ((!searched)); then
    echo "$prog: note: systemd does not search $unitdir; for a host install pass --unitdir /etc/systemd/system"
elif [[ -z $destdir ]]; then
    echo "$prog: next: systemctl daemon-reload && systemctl enable --now cleanup-agent-gc.timer"
fi
