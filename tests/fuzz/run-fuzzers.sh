#!/bin/bash
# tests/fuzz/run-fuzzers.sh: runs the libFuzzer targets of tests/fuzz/ (built in BUILD_DIR with -DAG_FUZZ=ON) for
# SECONDS each, JOBS at a time, and prints per target the executions run, executions per second and the corpus size.
# Fails on any crash, sanitizer report, leak, timeout (an input slower than 10 s) or out-of-memory, and names the
# input that did it (copy it to tests/fuzz/regressions/<name>/ once fixed).
#
#   tests/fuzz/run-fuzzers.sh [--build-dir DIR] [--time SECONDS] [--jobs N] [--keep DIR] [NAME...]
#
#   --build-dir DIR  the AG_FUZZ build (default build-fuzz)
#   --time SECONDS   per target (default 30)
#   --jobs N         targets run at the same time (default 2)
#   --keep DIR       where each target's new corpus and crash inputs go (default: a temporary directory, removed
#                    when everything passed)
#   NAME...          targets to run (default: every tests/fuzz/fuzz_<name>.c)
set -euo pipefail

prog=tests/fuzz/run-fuzzers.sh
repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
build="build-fuzz"
secs=30
jobs=2
keep=
names=()
while (($#)); do
    case $1 in
    --build-dir) build=$2; shift 2 ;;
    --time) secs=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    -*) echo "$prog: unknown option '$1' (try --help)" >&2; exit 2 ;;
    *) names+=("$1"); shift ;;
    esac
done
[[ $build == /* ]] || build=$repo/$build
if ((${#names[@]} == 0)); then
    for f in "$repo"/tests/fuzz/fuzz_*.c; do
        n=${f##*/fuzz_}
        names+=("${n%.c}")
    done
fi

work=${keep:-$(mktemp -d "${TMPDIR:-/tmp}/cleanup-agent-fuzz.XXXXXX")}
mkdir -p "$work"

# run_one NAME: one target; its log and a one-line result go to $work/NAME.{log,result}.
run_one() {
    local name=$1 bin=$build/tests/fuzz/fuzz_$1 rc=0
    local corpus=$work/$name/corpus seeds=$repo/tests/fuzz/corpus/$name regressions=$repo/tests/fuzz/regressions/$name
    mkdir -p "$corpus" "$work/$name/artifacts"
    if [[ ! -x $bin ]]; then
        echo "FAIL $name: $bin is missing (configure with CC=clang -DAG_FUZZ=ON and build target fuzz_all)" \
            >"$work/$name.result"
        return 1
    fi
    if [[ ! -d $seeds ]] || [[ -z $(ls -A "$seeds") ]]; then
        echo "FAIL $name: the seed corpus $seeds is missing or empty" >"$work/$name.result"
        return 1
    fi
    local dirs=("$corpus" "$seeds") opts=()
    [[ ! -d $regressions ]] || dirs+=("$regressions")
    [[ ! -f $repo/tests/fuzz/$name.dict ]] || opts+=(-dict="$repo/tests/fuzz/$name.dict")
    # -timeout: one input slower than 10 s is a hang; the outer timeout catches a wedged fuzzer.
    timeout --signal=KILL $((secs + 120)) "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$work/$name/artifacts/" "${opts[@]}" "${dirs[@]}" >"$work/$name.log" 2>&1 || rc=$?
    local execs per_s files
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$name.log" | tail -n 1)
    per_s=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$name.log" | tail -n 1)
    files=$(find "$corpus" -type f | wc -l)
    local seeds_n
    seeds_n=$(find "$seeds" -type f | wc -l)
    if ((rc != 0)); then
        local crash what
        crash=$(find "$work/$name/artifacts" -type f | head -n 1)
        what=$(grep -m1 -E 'ERROR: |runtime error:|fuzz invariant failed|ALARM|out-of-memory' "$work/$name.log" ||
            echo "exit status $rc")
        echo "FAIL $name: $what; input: ${crash:-(none written)}; log: $work/$name.log" >"$work/$name.result"
        return 1
    fi
    printf 'ok   %-14s %10s execs %8s/s  corpus %5s new + %3s seeds\n' "$name" "${execs:-?}" "${per_s:-?}" \
        "$files" "$seeds_n" >"$work/$name.result"
}

echo "$prog: ${#names[@]} targets, ${secs}s each, $jobs at a time, work dir $work"
running=0
failed=0
for name in "${names[@]}"; do
    run_one "$name" &
    running=$((running + 1))
    if ((running >= jobs)); then
        wait -n || true
        running=$((running - 1))
    fi
done
wait || true
for name in "${names[@]}"; do
    cat "$work/$name.result" 2>/dev/null || echo "FAIL $name: no result"
    if ! grep -q '^ok ' "$work/$name.result" 2>/dev/null; then
        failed=$((failed + 1))
        tail -n 40 "$work/$name.log" 2>/dev/null | sed "s/^/  $name| /" || true
    fi
done
if ((failed)); then
    echo "$prog: FAIL: $failed of ${#names[@]} targets crashed or could not run; inputs and logs kept in $work" >&2
    exit 1
fi
echo "$prog: PASS: ${#names[@]} targets ran ${secs}s each without a crash, leak or timeout"
[[ -n $keep ]] || rm -rf "$work"
