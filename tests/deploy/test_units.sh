#!/bin/bash
# The systemd units as deploy/install.sh installs them (into a temporary prefix, so that ExecStart= names a binary
# that exists): `systemd-analyze verify` must accept them without a single warning (it needs no systemd as PID 1),
# then check_deploy.py checks what matters in them. Usage: test_units.sh REPO BUILD_DIR PYTHON
set -uo pipefail
repo=$1 build=$2 python=$3
command -v systemd-analyze >/dev/null || { echo "systemd-analyze not found: apt-get install systemd" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/deploy-units.XXXXXX")
trap 'rm -rf -- "$work"' EXIT
p=$work/prefix
if ! "$repo/deploy/install.sh" --build-dir "$build" --prefix "$p" >"$work/install.log" 2>&1; then
    cat "$work/install.log"
    echo "0 passed, 1 failed"
    exit 1
fi
unitdir=$p/lib/systemd/system
passed=0 failed=0
# Each unit alone, so that a warning names its file; the template is instantiated by verify itself. Without the man
# pages check (--man=no): a stock host may have no man-db (the Debian 12 image has none), and the package's own man
# pages are checked by package_man_pages.
for u in "$unitdir"/*; do
    out=$(cd "$unitdir" && systemd-analyze verify --man=no "./${u##*/}" 2>&1)
    rc=$?
    if [[ $rc == 0 && -z $out ]]; then
        echo "ok   systemd-analyze verify ${u##*/}"
        passed=$((passed + 1))
    else
        echo "FAIL systemd-analyze verify ${u##*/} (exit $rc):"
        echo "$out" | sed 's/^/     /'
        failed=$((failed + 1))
    fi
done
# verify warns, exit 0, on unknown keys and bad values: the empty output above is what proves them clean. Prove the
# check itself works on a broken copy.
mkdir "$work/broken"
sed 's/^Persistent=true/Persistent=maybe/' "$unitdir/cleanup-agent-gc.timer" >"$work/broken/cleanup-agent-gc.timer"
cp "$unitdir/cleanup-agent-gc.service" "$work/broken/"
out=$(cd "$work/broken" && systemd-analyze verify ./cleanup-agent-gc.timer 2>&1)
if [[ $out == *"Failed to parse boolean value"*maybe* ]]; then echo "ok   verify reports a bad value"; passed=$((passed + 1))
else echo "FAIL verify did not report Persistent=maybe: $out"; failed=$((failed + 1)); fi

"$python" "$repo/tests/deploy/check_deploy.py" units "$unitdir" "$p" >"$work/check.log" 2>&1
rc=$?
cat "$work/check.log"
read -r cp _ cf _ < <(tail -1 "$work/check.log") || true
[[ $cp =~ ^[0-9]+$ ]] || { cp=0; cf=1; }
passed=$((passed + cp)) failed=$((failed + cf))
((rc == 0)) || ((failed > 0)) || failed=1
echo "$passed passed, $failed failed"
((failed == 0))
