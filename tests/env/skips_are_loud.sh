#!/bin/bash
# tests/env/skips_are_loud.sh PROBE REPO BUILD: a Criterion test that skips is seen. ctest runs the probe
# (skip_probe.c: one test passes, one skips) and counts it passed, as it does any suite whose tests skip; the probe's
# output names the skipped test and why (tests/skip_report.c), and reject_skips (tests/run-lib.sh), which tests/run.sh
# calls after each ctest run, finds that line in ctest's log and fails. On the log of a run without a skip it passes.
# Every executable of BUILD/tests that links Criterion carries the hook (its mark, ag_skip_report_mark), the probe among them.
set -uo pipefail # (so no grep -q after a pipe: its early exit would fail the writer with SIGPIPE)
probe=$1
repo=$2
build=$3
prog=skips_are_loud
# shellcheck source=tests/run-lib.sh
source "$repo/tests/run-lib.sh"
work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT
fail() {
    echo "FAIL: $*"
    exit 1
}

# Two ctest directories without CMake: a CTestTestfile.cmake each, the probe whole and the probe's passing test only.
mkdir -p "$work/skipped" "$work/clean"
echo "add_test(skip_probe \"$probe\" --jobs=1)" >"$work/skipped/CTestTestfile.cmake"
echo "add_test(skip_probe \"$probe\" --jobs=1 --filter skip_probe/passes)" >"$work/clean/CTestTestfile.cmake"
for d in skipped clean; do
    out=$(ctest --test-dir "$work/$d" 2>&1) || fail "ctest failed the probe in $d/ (a skip must look passed to it): $out"
done

said=$(reject_skips "$work/skipped") && fail "reject_skips passed a ctest run in which a test skipped: '$said'"
want='criterion: skipped skip_probe::skips_on_this_host: needs what this host lacks'
[[ $said == "$want" ]] || fail "reject_skips said '$said', not the skipped test and why ('$want')"
said=$(reject_skips "$work/clean") || fail "reject_skips failed a ctest run without a skip: '$said'"
[[ -z $said ]] || fail "reject_skips said '$said' of a ctest run without a skip"

suites=0
while IFS= read -r -d '' f; do
    readelf -d "$f" 2>/dev/null | grep "NEEDED.*libcriterion" >/dev/null || continue
    suites=$((suites + 1))
    nm "$f" 2>/dev/null | grep " ag_skip_report_mark$" >/dev/null ||
        fail "$f links Criterion without tests/skip_report.c: link ag_criterion (tests/CMakeLists.txt), not Criterion"
done < <(find "$build/tests" -type f -perm -u+x -print0)
readelf -d "$probe" | grep "NEEDED.*libcriterion" >/dev/null || fail "the probe $probe does not link Criterion"
((suites > 1)) || fail "found $suites Criterion executables under $build/tests"
echo "PASS: the skipped test is named with its reason, reject_skips fails that run and passes the other, and the" \
    "$suites Criterion executables of $build/tests carry the hook"
