# shellcheck shell=bash disable=SC2154 # prog, image and docker_cli come from the sourcing script (deploy/env.sh)
# Sourced by tests/run.sh: the guards that keep a run honest. Each can be called alone (source this file, set prog,
# and for the sentinel define docker_cli and image, as deploy/env.sh does).
#   ctest_selected DIR ARGS...        how many tests `ctest ARGS...` would run in DIR
#   require_label DIR LABEL            fails, naming the label and the build dir, when no test of DIR carries LABEL
#   require_selection DIR WHAT ARGS... fails, naming WHAT and DIR, when `ctest ARGS...` would run no test
#   reject_skips DIR                   fails, printing them, when Criterion tests of DIR's last ctest run skipped
#   sentinel_plant / sentinel_check WHEN / sentinel_remove
#                                      a leftover of a dead session that is not the tests' own (no test label), which
#                                      every suite must leave alone: gc in a test runs restricted to the test's own
#                                      labels or on a private engine, so a developer's real leftovers survive the suite.

ctest_selected() {
    local dir=$1
    shift
    ctest --test-dir "$dir" -N "$@" 2>/dev/null | sed -nE 's/^Total Tests: ([0-9]+)$/\1/p'
}

# A label that must have tests in DIR: an environment proof that silently vanished is a failure.
require_label() {
    local dir=$1 label=$2 n
    n=$(ctest_selected "$dir" -L "^${label}\$")
    if [[ ${n:-0} -eq 0 ]]; then
        echo "$prog: $dir/ has no test labeled '$label': the '$label' suites would pass by running nothing" >&2
        return 1
    fi
}

# The exact selection a ctest run uses (labels and exclusions) must run something.
require_selection() {
    local dir=$1 what=$2 n
    shift 2
    n=$(ctest_selected "$dir" "$@")
    if [[ ${n:-0} -eq 0 ]]; then
        echo "$prog: $dir/: no test selected for '$what' (ctest $*): the run would pass by running nothing" >&2
        return 1
    fi
}

# The Criterion tests that skipped in DIR's last ctest run, one line each (tests/skip_report.c says each in the suite's
# output, which ctest keeps in its log): ctest counts their suite as passed.
reject_skips() {
    ! grep -a '^criterion: skipped ' "$1/Testing/Temporary/LastTest.log" 2>/dev/null
}

sentinel_id=''
sentinel_name=''

# A created (not running) container of a dead session as a real CI run leaves it: the product's labels (expired long
# ago, of this machine's previous boot: every rule of gc would take it), no test label, a unique name.
sentinel_plant() {
    local session machine
    session=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
    machine=$(cat /etc/machine-id 2>/dev/null || echo unknown)
    sentinel_name=cleanup-agent-sentinel-${session:0:12}
    sentinel_id=$(docker_cli create --name "$sentinel_name" --network none \
        --label "io.cleanup-agent.session=$session" --label io.cleanup-agent.managed=true \
        --label io.cleanup-agent.mode=run --label "io.cleanup-agent.host=$(hostname)" \
        --label "io.cleanup-agent.machine=$machine" --label io.cleanup-agent.boot-id=00000000-0000-0000-0000-000000000000 \
        --label io.cleanup-agent.created=1 --label io.cleanup-agent.expires=1 "$image" true) || {
        echo "$prog: cannot create the sentinel container $sentinel_name" >&2
        sentinel_id=''
        return 1
    }
    echo "planted the sentinel $sentinel_name (${sentinel_id:0:12}): a dead session's container without the test label"
}

# sentinel_check WHEN: fails when the sentinel is gone, and plants a new one so the next suites are checked too.
sentinel_check() {
    local when=$1
    [[ -n $sentinel_id ]] || return 0
    if docker_cli container inspect "$sentinel_id" >/dev/null 2>&1; then
        echo "the sentinel $sentinel_name is still there after $when"
        return 0
    fi
    echo "$prog: the sentinel container $sentinel_name (${sentinel_id:0:12}), a dead session's leftover without the" \
        "test label, was removed during $when: a test ran gc or a collection unrestricted on the shared engine" >&2
    sentinel_plant >/dev/null || true
    return 1
}

sentinel_remove() {
    [[ -n $sentinel_id ]] || return 0
    docker_cli rm -f "$sentinel_id" >/dev/null 2>&1 || true
    sentinel_id=''
}
