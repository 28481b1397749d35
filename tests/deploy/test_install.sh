#!/bin/bash
# deploy/install.sh into temporary prefixes: the binary runs from there, a second run changes nothing, --destdir and
# --no-systemd put files where they say, usage errors are one line and exit 2, nothing is written outside the temp dir.
# Usage: test_install.sh REPO BUILD_DIR
set -uo pipefail
repo=$1 build=$2
install=$repo/deploy/install.sh
work=$(mktemp -d "${TMPDIR:-/tmp}/deploy-install.XXXXXX")
trap 'rm -rf -- "$work"' EXIT
# shellcheck source=tests/deploy/lib.sh
source "$repo/tests/deploy/lib.sh"

version=$("$build/cleanup-agent" --version)

# 1. A prefix: binary, units, README; the binary runs from there.
p=$work/prefix
if "$install" --build-dir "$build" --prefix "$p" >"$work/out1" 2>&1; then ok "install into a prefix exits 0"
else fail "install into a prefix exits 0" "$(tail -3 "$work/out1")"; fi
expect "binary installed and executable" test -x "$p/bin/cleanup-agent"
got=$("$p/bin/cleanup-agent" --version 2>&1)
[[ $got == "$version" ]] && ok "installed binary --version: $got" || fail "installed binary --version" "$got"
for u in cleanup-agent-gc.service cleanup-agent-gc.timer cleanup-agent-run@.service cleanup_agent.slice; do
    expect "unit $u installed" test -f "$p/lib/systemd/system/$u"
done
expect "units point at the prefix's binary" grep -q "^ExecStart=$p/bin/cleanup-agent gc " \
    "$p/lib/systemd/system/cleanup-agent-gc.service"
expect "no /usr/local left in the units" bash -c "! grep -rq /usr/local/ '$p/lib/systemd/system'"
expect "README installed" test -f "$p/share/doc/cleanup-agent/deploy/README.md"

# 2. Idempotent: a second run succeeds and leaves the same files with the same contents.
(cd "$p" && find . -type f -exec md5sum {} + | sort) >"$work/sum1"
if "$install" --build-dir "$build" --prefix "$p" >"$work/out2" 2>&1; then ok "second install exits 0"
else fail "second install exits 0" "$(tail -3 "$work/out2")"; fi
(cd "$p" && find . -type f -exec md5sum {} + | sort) >"$work/sum2"
expect "second install leaves identical files" cmp -s "$work/sum1" "$work/sum2"

# 3. --destdir stages under the root, with paths for the final prefix.
d=$work/destdir
expect "install with --destdir exits 0" "$install" --build-dir "$build" --destdir "$d" --prefix /usr >/dev/null 2>&1
expect "binary staged at DESTDIR/usr/bin" test -x "$d/usr/bin/cleanup-agent"
expect "units staged at DESTDIR/usr/lib/systemd/system" test -f "$d/usr/lib/systemd/system/cleanup-agent-gc.timer"
expect "staged units name the final path" grep -q "^ExecStart=/usr/bin/cleanup-agent gc " \
    "$d/usr/lib/systemd/system/cleanup-agent-gc.service"
expect "DESTDIR from the environment" env DESTDIR="$work/envdest" "$install" --build-dir "$build" --prefix /opt/ca \
    --no-systemd >/dev/null 2>&1
expect "  ... binary at \$DESTDIR/opt/ca/bin" test -x "$work/envdest/opt/ca/bin/cleanup-agent"

# 4. --no-systemd installs the binary only.
n=$work/nosystemd
expect "install --no-systemd exits 0" "$install" --build-dir "$build" --prefix "$n" --no-systemd >/dev/null 2>&1
expect "  ... binary installed" test -x "$n/bin/cleanup-agent"
expect "  ... no units" test ! -e "$n/lib/systemd"

# 5. Usage errors: exit 2, one line on stderr, nothing installed.
usage() {
    local name=$1; shift
    local rc=0
    "$install" --build-dir "$build" "$@" >"$work/uout" 2>"$work/uerr" || rc=$?
    if [[ $rc == 2 && $(wc -l <"$work/uerr") == 1 && ! -s $work/uout ]] && grep -q "^deploy/install.sh: " "$work/uerr"; then
        ok "usage error: $name"
    else
        fail "usage error: $name" "rc=$rc stderr=$(cat "$work/uerr")"
    fi
}
usage "unknown option" --bogus
usage "relative prefix" --prefix relative/dir
usage "missing value" --prefix
usage "prefix with a space" --prefix "$work/a b"
usage "--enable with --destdir" --enable --destdir "$work/x"
usage "--enable with --no-systemd" --enable --no-systemd
expect "usage errors wrote nothing" test ! -e "$work/x"
help=$("$install" --help) && [[ $help == *--no-systemd* ]] && ok "--help" || fail "--help"

echo "$passed passed, $failed failed"
((failed == 0))
