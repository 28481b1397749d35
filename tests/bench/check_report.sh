#!/bin/bash
# tests/bench/check_report.sh: checks a report written by tests/bench/run-all.sh, so that the script cannot rot
# (a benchmark whose output changed shape, failed, or was dropped from the report fails here).
#
# Usage: tests/bench/check_report.sh FILE           check FILE
#        tests/bench/check_report.sh --run BUILD    run `run-all.sh --quick -b BUILD` into a temp file, then check it
#                                                   (the ctest bench_report; prints the report when a check fails)
# Checks: the machine table names every field; every benchmark below has its section with a table, and no section
# failed; every table line has a figure in its measured column, a result, and a command to reproduce it; the targets
# are the current ones (below); the summary lists the targets with met / NOT met; the run's wall times are there.
set -euo pipefail

prog=tests/bench/check_report.sh
repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)

# The benchmarks the report must hold (independent of run-all.sh's own list): id and minimum table lines.
required=(run_overhead:3 run_soak:9 cgroup_kill:13 docker_api:5 container_seq:2 gc:5 proxy:6)
# The targets the report must judge, as issue 18 revised them: id, how many table lines, and their target column.
targets=("run_overhead:2:< 10 ms added" "gc:1:<= 1.05x the CLI; >= 2x faster than one-by-one" "gc:1:< 16384 KiB")

if [[ ${1:-} == --run ]]; then
    build=${2:?usage: $prog --run BUILD_DIR}
    report=$(mktemp "${TMPDIR:-/tmp}/bench-report.XXXXXX.md")
    trap 'rm -f -- "$report"' EXIT
    rc=0
    "$repo/tests/bench/run-all.sh" --quick -b "$build" -o "$report" || rc=$?
    if ((rc != 0)); then echo "$prog: run-all.sh --quick exited $rc" >&2; fi
    if "$0" "$report" && ((rc == 0)); then
        echo "$prog: the quick report is complete"
        exit 0
    fi
    echo "----- the report -----"
    cat "$report"
    exit 1
fi

file=${1:?usage: $prog FILE | --run BUILD_DIR}
[[ -s $file ]] || { echo "$prog: $file is missing or empty" >&2; exit 1; }
errors=0
bad() { echo "$prog: $file: $*" >&2; errors=$((errors + 1)); }

for field in CPU cores memory kernel "cgroup mode" "Docker engine" "storage driver" compiler date; do
    v=$(awk -F'|' -v k="$field" '$2 == " " k " " { print $3; exit }' "$file")
    [[ $v =~ [[:alnum:]] ]] || bad "the machine table has no '$field'"
done

# section ID: the lines from its marker to the next section.
section() {
    awk -v m="<!-- bench: $1 -->" '$0 == m { on = 1; next } on && /^(<!-- bench:|## )/ && !/^### / { exit } on' "$file"
}

for entry in "${required[@]}"; do
    id=${entry%%:*} want=${entry#*:}
    grep -qxF "<!-- bench: $id -->" "$file" || { bad "no section for the benchmark '$id'"; continue; }
    body=$(section "$id")
    if grep -q 'FAILED' <<<"$body"; then
        bad "the benchmark '$id' failed: $(grep -m1 FAILED <<<"$body")"
        continue
    fi
    # The uniform table: | what | measured | relative | target | result | reproduce |
    rows=$(awk -F'|' '/^\| / && $2 != " what " && NF == 8' <<<"$body")
    n=$(grep -c . <<<"$rows" || true)
    ((n >= want)) || bad "the benchmark '$id' has $n table lines, expected at least $want"
    while IFS= read -r line; do
        [[ -n $line ]] || continue
        IFS='|' read -r _ what measured _ _ result repro _ <<<"$line"
        what=$(sed -E 's/^ +| +$//g' <<<"$what")
        [[ $measured =~ ^\ *[-+]?[0-9] ]] || bad "'$id', line '$what': no figure in the measured column ('$measured')"
        [[ $result =~ [a-z] && $result != *"not measured"* ]] || bad "'$id', line '$what': no result ('$result')"
        [[ $repro =~ \`.+\` ]] || bad "'$id', line '$what': no command to reproduce it"
    done <<<"$rows"
done

for entry in "${targets[@]}"; do
    IFS=: read -r id want text <<<"$entry"
    n=$(section "$id" | awk -F'|' -v t=" $text " 'NF == 8 && $5 == t' | wc -l)
    ((n == want)) || bad "the benchmark '$id' judges '$text' on $n table lines, expected $want"
done

summary=$(awk '/^## Summary of the targets/ { on = 1; next } on && /^## / { exit } on && /^\| / && !/^\| benchmark /' "$file")
n=$(grep -c . <<<"$summary" || true)
((n >= 10)) || bad "the summary lists $n targets, expected at least 10"
if grep -vqE '\| (met|NOT met)( / (met|NOT met))? \|$' <<<"$summary"; then bad "a summary line has no met / NOT met"; fi
grep -qE '^\| total \| [0-9]+ s \|' "$file" || bad "no total wall time of the run"

if ((errors)); then
    echo "$prog: $errors problem(s) in $file" >&2
    exit 1
fi
echo "$prog: $file has every benchmark table, with figures"
