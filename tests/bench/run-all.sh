#!/bin/bash
# tests/bench/run-all.sh: every benchmark of tests/bench/ in one go; writes docs/BENCHMARKS.md.
#
# One table per benchmark: this project next to the alternatives measured in the same run and the bare kernel or
# engine figure as the limit, medians over repeated runs, each target (from its issue) next to the measured figure
# with met / NOT met, and the command that reproduces each line. The report starts with the machine (CPU, cores,
# memory, kernel, cgroup mode, engine, storage driver, compiler, date, load) and a summary of every target.
#
# Usage: tests/bench/run-all.sh [--quick] [-o FILE] [-b BUILD_DIR] [--only ID,ID...] [--reps N] [--list]
#   --quick      few repetitions and small sizes: a smoke test of the whole chain (about a minute)
#   -o FILE      where to write the report (default docs/BENCHMARKS.md)
#   -b DIR       the build directory holding cleanup-agent and tests/bench/ (default build)
#   --only IDS   run only these benchmarks (comma-separated ids, see --list)
#   --reps N     repetitions of the long engine benchmarks (docker_api, container_seq, gc) in a full run (default 3;
#                each gc repetition fills and empties 500 containers four times). On a 2-core machine with Debian 12's
#                engine (20.10.24) a full run takes about 34 minutes; with --reps 2, about 23-25 minutes.
#   --list       list the benchmark ids and exit
# Needs root (the cgroup benchmarks write the cgroup tree; run and gc create cgroups; bench_gc.sh starts a private
# engine), the built tree (cmake --build build), GNU time, and a Docker engine: $DOCKER_HOST when set (it must
# answer; it is left running), else a private engine started here (own data root, vfs, no bridge) and stopped at the
# end. bench_gc.sh starts a private engine of its own as it always does. Exits 1 when any benchmark failed; the
# report is written anyway, with the failed sections saying so.
#
# Adding a benchmark: write bench_<id>() below (run it with `run_bench`, then print a table with `table_head` and
# `row`, or include its own tables with `include_tables`), and add <id> to BENCHES. tests/bench/check_report.sh
# (the ctest `bench_report`) checks that the report has a table with figures for every id it knows.
# shellcheck disable=SC2317,SC2016 # entries are called by name (bench_$id); backticks are markdown
set -euo pipefail

prog=tests/bench/run-all.sh
repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"

# The benchmarks, in report order. Each id has a function bench_<id>. gc goes last: its populations of 500 containers
# load both CPUs for minutes and its private engine's teardown goes on after it, which the latency figures of a
# benchmark run after it would show (the proxy's `docker ps` read +1.35 ms after gc, +0.43 ms on a quiet machine).
BENCHES=(run_overhead run_soak cgroup_kill docker_api container_seq proxy receipt gc)

# The targets judged here (from the issues; issue 18 revised run's and gc's). tests/bench/check_report.sh checks that
# a report states them.
run_added_ms_max=10   # `run -- true` adds less than this, with or without an engine (ms)
run_curl_ratio_max=2  # proposed (issue 18): `run -- true` takes less than this many times one curl request to the engine
gc_cli_ratio_max=1.05 # gc's time over the docker CLI's: within noise (both send the same forced DELETEs)
gc_one_speedup_min=2  # gc at least this much faster than one-by-one removal
gc_rss_kib_max=16384  # gc's peak RSS for 500 containers, with the system libcurl (KiB)

quick=0
out=docs/BENCHMARKS.md
build=build
only=""
long_reps=3
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
while (($#)); do
    case $1 in
    --quick) quick=1 ;;
    -o) [[ $# -ge 2 ]] || { echo "$prog: -o needs a file name" >&2; exit 2; }; out=$2; shift ;;
    -b) [[ $# -ge 2 ]] || { echo "$prog: -b needs a build directory" >&2; exit 2; }; build=${2%/}; shift ;;
    --only) [[ $# -ge 2 ]] || { echo "$prog: --only needs benchmark ids (see --list)" >&2; exit 2; }; only=${2//,/ }; shift ;;
    --reps)
        [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || { echo "$prog: --reps needs a number of repetitions (1 or more)" >&2; exit 2; }
        long_reps=$2; shift ;;
    --list) printf '%s\n' "${BENCHES[@]}"; exit 0 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "$prog: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done
for id in $only; do
    [[ " ${BENCHES[*]} " == *" $id "* ]] || { echo "$prog: unknown benchmark '$id' (known: ${BENCHES[*]})" >&2; exit 2; }
done

die() { echo "$prog: $*" >&2; exit 1; }
((EUID == 0)) || die "needs root: the cgroup benchmarks (bench_cgroup, run, gc) write the cgroup tree and bench_gc.sh starts an engine. Run: sudo $0 $*"
[[ -x $build/cleanup-agent && -x $build/tests/bench/bench_run ]] ||
    die "no built tree in '$build' (cmake -B $build -G Ninja -DAG_WERROR=ON && cmake --build $build), or pass -b DIR"
[[ -x /usr/bin/time ]] || die "/usr/bin/time missing: apt-get install time"
bench=$build/tests/bench
agent=$build/cleanup-agent

# --- the engine ----------------------------------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-all.XXXXXX")
started_engine=0
if [[ -z ${DOCKER_HOST:-} ]]; then
    # No engine given: a private one of our own (deploy/env.sh starts it under AG_ENGINE_ROOT and stops only it).
    export AG_ENGINE_ROOT=$work/engine DOCKER_HOST=unix://$work/engine/docker.sock
    started_engine=1
fi
packages=()
# shellcheck source-path=SCRIPTDIR/../.. source=deploy/env.sh
source "$repo/deploy/env.sh"
on_exit() {
    local rc=$?
    stop_engine >&2
    rm -rf --one-file-system -- "$work"
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if ((started_engine)); then
    start_engine >&2 || die "could not start a private Docker engine under $AG_ENGINE_ROOT"
else
    engine_answers || die "no Docker engine answers on DOCKER_HOST=$DOCKER_HOST (unset it to have a private one started)"
fi
import_image >&2 || die "the test image $image could not be imported"
export DOCKER_HOST=unix://$socket
# The engine's pid, for bench_run's dockerd FD count: the process listening on the socket.
dockerd_pid=$(ss -xlpn 2>/dev/null | awk -v s="$socket" '$5 == s && match($0, /pid=[0-9]+/) { print substr($0, RSTART + 4, RLENGTH - 4); exit }' || true)
[[ -z $dockerd_pid ]] || export BENCH_DOCKERD_PID=$dockerd_pid

# --- helpers for the benchmark entries -----------------------------------------------------------------------
summary=$work/summary # one row per target: | benchmark | what | target | measured | result |
cur_title=""

# run_bench ID CMD...: runs one benchmark; its stdout goes to $work/ID.out, its stderr to $work/ID.err (and to our
# stderr as progress). Records the command line as it is to be reproduced (relative paths).
run_bench() {
    local id=$1
    shift
    repro_cmd="$*"
    echo "$prog: [$id] $(date -u +%H:%M:%S) $repro_cmd" >&2
    local rc
    if "$@" 2>&1 >"$work/$id.out" | tee "$work/$id.err" | sed -u "s/^/    /" >&2; then rc=0; else rc=$?; fi
    if ((rc != 0)); then
        echo "**FAILED**: \`$repro_cmd\` exited $rc. Its last lines:"
        echo
        echo '```'
        tail -n 15 "$work/$id.err" "$work/$id.out" 2>/dev/null | sed 's/^/    /'
        echo '```'
        return 1
    fi
}

# section ID TITLE: the heading, and the marker check_report.sh looks for.
section() {
    cur_title=$2
    printf '\n## %s\n\n<!-- bench: %s -->\n\n' "$2" "$1"
}

table_head() {
    echo "| what | measured | relative | target | result | reproduce |"
    echo "|---|---|---|---|---|---|"
}

# row WHAT MEASURED RELATIVE TARGET RESULT: one table line, reproduced by the last run_bench's command. A line with
# a target (RESULT met or NOT met, or two of them: "met / NOT met") also goes to the summary.
row() {
    printf '| %s | %s | %s | %s | %s | `%s` |\n' "$1" "$2" "${3:--}" "${4:--}" "${5:--}" "$repro_cmd"
    case $5 in
    met | "met / "* | "NOT met"*) printf '| %s | %s | %s | %s%s | %s |\n' "$cur_title" "$1" "$4" "$2" "${3:+ ($3)}" "$5" >>"$summary" ;;
    esac
}

# cell FILE KEY COL: cell COL (1 = first) of the first table line of FILE whose first cell contains KEY (=KEY: is
# exactly KEY), trimmed.
cell() {
    awk -F'|' -v key="$2" -v col="$3" '
        function trim(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }
        /^\|/ {
            first = trim($2)
            if ((substr(key, 1, 1) == "=" && first == substr(key, 2)) || (substr(key, 1, 1) != "=" && index(first, key))) {
                print trim($(col + 1)); exit
            }
        }' "$1"
}

# num TEXT: the first number in TEXT ("12.80 ms" -> 12.80); "-" when there is none.
num() {
    local n
    n=$(grep -oE '[-+]?[0-9]+(\.[0-9]+)?' <<<"$1" | head -n 1 || true)
    echo "${n:--}"
}

# calc A OP B [FORMAT]: A OP B (awk arithmetic; FORMAT default %.2f); "-" when a figure is missing.
calc() {
    [[ $1 =~ ^[-+]?[0-9.]+$ && $3 =~ ^[-+]?[0-9.]+$ ]] || { echo -; return; }
    awk -v a="$1" -v b="$3" -v op="$2" -v fmt="${4:-%.2f}" 'BEGIN {
        if (op == "/" && b == 0) { print "-"; exit }
        v = op == "-" ? a - b : op == "/" ? a / b : op == "*" ? a * b : a + b
        printf fmt "\n", v }'
}

# verdict VALUE OP LIMIT: met / NOT met (OP: lt le ge eq).
verdict() {
    [[ $1 != - && -n $1 ]] || { echo "not measured"; return; }
    awk -v v="$1" -v lim="$3" -v op="$2" 'BEGIN {
        ok = (op == "lt" && v < lim) || (op == "le" && v <= lim) || (op == "ge" && v >= lim) || (op == "eq" && v == lim)
        print ok ? "met" : "NOT met" }'
}

# include_tables FILE: the markdown tables (and ### headings) a benchmark printed, as they are.
include_tables() {
    grep -E '^(\||###)' "$1"
}

pick() { if ((quick)); then echo "$1"; else echo "$2"; fi; }

# --- the benchmarks ------------------------------------------------------------------------------------------

# Issues 5 and 18: start-up overhead of `run -- true`.
bench_run_overhead() {
    local n
    n=$(pick 20 200)
    section run_overhead "\`run -- true\`: the time the agent adds (issues 5, 18)"
    run_bench run_overhead "$bench/bench_run" overhead "$n" || return 1
    local f=$work/run_overhead.out bare load none eng disk tmo crl
    bare=$(num "$(cell "$f" '`true` (bare' 2)")
    load=$(num "$(cell "$f" '--version' 2)")
    none=$(num "$(cell "$f" 'no engine' 2)")
    eng=$(num "$(cell "$f" '=`cleanup-agent run -- true`, engine reachable' 2)")
    disk=$(num "$(cell "$f" 'state dir on disk' 2)")
    tmo=$(num "$(cell "$f" '`timeout 60 true`' 2)")
    crl=$(num "$(cell "$f" '`curl --unix-socket' 2)")
    local a_load a_none a_eng a_disk a_tmo a_crl
    a_load=$(calc "$load" - "$bare" %+.2f)
    a_none=$(calc "$none" - "$bare" %+.2f)
    a_eng=$(calc "$eng" - "$bare" %+.2f)
    a_disk=$(calc "$disk" - "$bare" %+.2f)
    a_tmo=$(calc "$tmo" - "$bare" %+.2f)
    a_crl=$(calc "$crl" - "$bare" %+.2f)
    echo "Median wall time of $n rounds, fork to reap; each round runs every command of the table once, so that a machine"
    echo "whose speed drifts moves every row alike. The agent creates a session (lock, registry, guardian), a cgroup"
    echo "leaf, runs the command in it, and cleans up; with an engine it also lists the session's resources. The state"
    echo "dir is on a tmpfs, as the default /run/cleanup-agent is on a systemd host; one row puts it on the disk,"
    echo "where the registry's fsync (the proof of a session must survive a crash of the machine) adds what the disk takes."
    echo "The peers: \`timeout\`, a wrapper that only waits, and one engine request by Debian's curl tool, which pays what"
    echo "every client of the system libcurl pays (loading it and its initialisation) and one answer of the engine."
    echo
    table_head
    row "bare \`/bin/true\` (the limit)" "$bare ms" "" "" "limit"
    row "\`cleanup-agent --version\`: loading the agent and the system libcurl (issue 18 §1)" "$load ms" \
        "$a_load ms over bare" "" "the floor of every start"
    row "\`cleanup-agent run -- true\`, no engine" "$none ms" "$a_none ms over bare" "< $run_added_ms_max ms added" \
        "$(verdict "$a_none" lt "$run_added_ms_max")"
    row "\`cleanup-agent run -- true\`, engine reachable" "$eng ms" "$a_eng ms over bare" "< $run_added_ms_max ms added" \
        "$(verdict "$a_eng" lt "$run_added_ms_max")"
    row "\`cleanup-agent run -- true\`, engine reachable, state dir on disk" "$disk ms" "$a_disk ms over bare" "" \
        "the fsync's cost"
    row "\`timeout 60 true\` (peer: a wrapper that only waits)" "$tmo ms" "$a_tmo ms over bare" "" "peer"
    row "\`curl --unix-socket $socket http://x/_ping\` (peer: one engine request with the system libcurl)" "$crl ms" \
        "$a_crl ms over bare" "" "peer: the floor of any libcurl client of the engine"
    # What the engine itself takes for the requests on the command's path; and the proposal (issue 18): the run against
    # one curl request of the same rounds, which moves with the machine's speed as the run does.
    local ping nets six r_none r_eng
    ping=$(engine_ms 50 /_ping)
    nets=$(engine_ms 50 /v1.41/networks)
    six=$(engine_ms 50 six)
    r_none=$(calc "$none" / "$crl" %.2f)
    r_eng=$(calc "$eng" / "$crl" %.2f)
    repro_cmd="curl --unix-socket $socket -w '%{time_total}' http://x/_ping (and /v1.41/networks; the six: curl -Z)"
    row "the engine's answers on that path: \`GET /_ping\`, \`GET /networks\` (the pressure look), the end's six listings at once" \
        "$ping ms, $nets ms, $six ms" "" "" "the engine's part (curl, medians of 50)"
    repro_cmd="build/tests/bench/bench_run overhead $n"
    row "\`cleanup-agent run -- true\`, no engine, against one curl request (the peer above)" "${r_none}x" "" \
        "< ${run_curl_ratio_max}x one curl request (proposed, issue 18)" "$(verdict "$r_none" lt "$run_curl_ratio_max")"
    row "\`cleanup-agent run -- true\`, engine reachable, against one curl request (the peer above)" "${r_eng}x" "" \
        "< ${run_curl_ratio_max}x one curl request (proposed, issue 18)" "$(verdict "$r_eng" lt "$run_curl_ratio_max")"
}

# engine_ms N PATH: the median of N answers of the engine to GET PATH as curl times them (ms); PATH "six": the six
# listings a session's end makes at once (containers, networks, volumes by its two labels), the slowest of each round.
engine_ms() {
    local i label f u=http://x/v1.41 six=()
    for label in session outer; do
        f="%7B%22label%22%3A%5B%22io.cleanup-agent.$label%3Dbench%22%5D%7D"
        six+=(-o /dev/null "$u/containers/json?all=1&filters=$f" -o /dev/null "$u/networks?filters=$f"
            -o /dev/null "$u/volumes?filters=$f")
    done
    for ((i = 0; i < $1; i++)); do
        if [[ $2 == six ]]; then
            curl -s --no-progress-meter -Z --parallel-immediate --unix-socket "$socket" -w '%{time_total}\n' "${six[@]}" | sort -n | tail -n 1
        else
            curl -s --unix-socket "$socket" -w '%{time_total}\n' -o /dev/null "http://x$2"
        fi
    done | sort -n | awk '{v[NR] = $1 * 1000} END {printf "%.2f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# Issue 5: the soak of leaky runs.
bench_run_soak() {
    local n
    n=$(pick 20 1000)
    section run_soak "Soak: $n \`run --private-tmp\` cycles of a leaky command (issue 5)"
    run_bench run_soak "$bench/bench_run" soak "$n" || return 1
    local f=$work/run_soak.out v growth
    echo "Each cycle's command leaves background and setsid processes that ignore SIGTERM and a /dev/shm segment; every"
    echo "tenth also starts a container labeled with its session. Counted after the last cycle. The soaks users' stacks"
    echo "publish run 50 teardown cycles and allow an FD delta of 5, memory growth of 10% and no shared-memory leak."
    grep -E '^### Soak' "$f" | sed 's/^### /Run: /'
    ((n >= 200)) || echo "(Under 200 cycles the first and the last 100 cycles overlap: the RSS growth is not meaningful.)"
    echo
    table_head
    v=$(cell "$f" "cycles that failed" 2)
    row "cycles that failed" "$v" "" "0" "$(verdict "$(num "$v")" eq 0)"
    v=$(cell "$f" "FD delta of the caller" 2)
    row "FD delta of the caller" "$v" "" "0 (published: <= 5)" "$(verdict "$(num "$v")" eq 0)"
    v=$(cell "$f" "FD delta of dockerd" 2)
    # Fewer than before is no leak: the engine also closes connections other clients left open.
    row "FD delta of dockerd" "$v" "" "<= 0 (published: <= 5)" "$(verdict "$(num "$v")" le 0)"
    v=$(cell "$f" "agent max RSS" 2)
    growth=$(grep -oE '\([-+]?[0-9.]+%\)' <<<"$v" | tr -d '()%+' || true)
    row "agent max RSS, median of the first vs the last 100 cycles" "$v" "" "growth < 1% (published: < 10%)" \
        "$(verdict "${growth:--}" lt 1)"
    local what
    for what in processes cgroups "registry files" "/dev/shm segments" containers; do
        v=$(cell "$f" "leaked $what" 2)
        row "leaked $what" "$v" "" "0" "$(verdict "$(num "$v")" eq 0)"
    done
}

# Issue 4: kill to empty, and the spawn overhead.
bench_cgroup_kill() {
    section cgroup_kill "cgroup: kill a whole tree to empty (issue 4)"
    run_bench cgroup_kill "$bench/bench_cgroup" --reps "$(pick 1 5)" || return 1
    local f=$work/cgroup_kill.out procs b o w pg to
    head -n 1 "$f" | sed 's/^/Run: /'
    echo
    echo "Trees of N processes (a third setsid, a third double-forked daemons, all ignoring SIGTERM, one loop still"
    echo "forking). Time from the kill until the cgroup is empty. \`kill -- -PGID\` and \`timeout -s KILL\` are what a"
    echo "CI script does without a cgroup: their survivors are counted in the leaf 200 ms after the kill."
    echo
    table_head
    for procs in 100 1000; do
        b=$(num "$(cell "$f" "=$procs" 2)")
        o=$(num "$(cell "$f" "=$procs" 3)")
        w=$(num "$(cell "$f" "=$procs" 4)")
        pg=$(cell "$f" "=$procs" 5)
        to=$(cell "$f" "=$procs" 6)
        local r
        r=$(calc "$o" / "$b" %.2f)
        row "bare \`cgroup.kill\` + wait for \`populated 0\` (the limit), $procs procs" "$b ms" "1.00x" "" "limit"
        row "\`cg_leaf_kill_all\` (cgroup.kill), $procs procs" "$o ms, 0 survivors" "${r}x bare" \
            "<= 1.2x bare, 0 survivors" "$(verdict "$r" le 1.2)"
        row "\`cg_leaf_kill_all\` without cgroup.kill (freeze + pidfd walk), $procs procs" "$w ms, 0 survivors" \
            "$(calc "$w" / "$b" %.2f)x bare" "" "fallback"
        row "\`kill -KILL -- -PGID\`, $procs procs" "$pg survive" "" "" "alternative: leaves the setsid and daemonized"
        row "\`timeout -s KILL\`, $procs procs" "$to survive" "" "" "alternative: leaves the setsid and daemonized"
    done
    local fe c3 fj
    read -r fe c3 fj < <(awk -F'|' '/^Spawn of/ { s = 1 } s && /^\| *[0-9]/ { print $2 + 0, $3 + 0, $4 + 0; exit }' "$f")
    echo
    grep -E '^Spawn of' "$f" | sed 's/^/Spawn: /'
    echo
    table_head
    row "plain fork + execve of \`/bin/true\` (the limit)" "$fe us" "" "" "limit"
    row "\`cg_spawn\`: clone3(CLONE_INTO_CGROUP)" "$c3 us" "$(calc "$c3" - "$fe" %+.0f) us" "" "info"
    row "\`cg_spawn\`: fork, join the cgroup, exec" "$fj us" "$(calc "$fj" - "$fe" %+.0f) us" "" "info"
}

# Issue 3: bulk removal and the client's cost per container cycle.
bench_docker_api() {
    local args
    args=$(pick "--reps 1 --containers 10 --cycles 3" "--reps $long_reps")
    section docker_api "docker_api: bulk removal and per-container client cost (issue 3)"
    # shellcheck disable=SC2086 # the options are words
    run_bench docker_api "$bench/bench_docker" $args || return 1
    local f=$work/docker_api.out bulk cli one dkw dkc cliw clic n cyc
    n=$(grep -oE 'bulk removal of [0-9]+' "$f" | grep -oE '[0-9]+')
    cyc=$(grep -oE '[0-9]+ create\+start\+wait\+remove' "$f" | grep -oE '^[0-9]+')
    grep -E '^engine ' "$f" | sed 's/^/Run: /'
    echo
    echo "Removal of $n running labeled containers (listing included), and $cyc sequential"
    echo "create+start+wait+remove cycles of \`true\`. There is no bare engine figure to set apart: the engine's own"
    echo "work is nearly all of each time, and the docker CLI, which sends its deletes in parallel, is the reference."
    echo
    bulk=$(num "$(cell "$f" "dk_remove_many" 2)")
    cli=$(num "$(cell "$f" "docker rm -f" 2)")
    one=$(num "$(cell "$f" "one-by-one" 2)")
    local r_cli r_one
    r_cli=$(calc "$bulk" / "$cli" %.2f)
    r_one=$(calc "$one" / "$bulk" %.2f)
    table_head
    row "$(cell "$f" "dk_remove_many" 1)" "$bulk ms" "${r_cli}x the CLI's time; ${r_one}x faster than one-by-one" \
        "<= 1.0x the CLI; >= 1.8x faster than one-by-one" \
        "$(verdict "$r_cli" le 1.0) / $(verdict "$r_one" ge 1.8)"
    row "\`docker rm -f \$(docker ps -aq --filter label=...)\`" "$cli ms" "" "" "reference"
    row "one by one, \`dk_remove\` per container (what Ryuk does)" "$one ms" "" "" "reference"
    dkw=$(num "$(cell "$f" "dk_ (one client" 2)")
    dkc=$(num "$(cell "$f" "dk_ (one client" 3)")
    cliw=$(num "$(cell "$f" "shell loop of docker run" 2)")
    clic=$(num "$(cell "$f" "shell loop of docker run" 3)")
    row "\`dk_\` cycle: create, wait armed, start, wait, remove" "$dkc ms client CPU per cycle ($dkw ms wall)" "" \
        "< 2 ms client CPU" "$(verdict "$dkc" lt 2)"
    row "shell loop of \`docker run --rm\`" "$clic ms client CPU per cycle ($cliw ms wall)" "" "" "reference"
}

# Issue 6: container-seq against a `docker run --rm` loop.
bench_container_seq() {
    local files reps
    files=$(pick 5 50)
    reps=$(pick 1 "$long_reps")
    section container_seq "container-seq: one container per test file (issue 6)"
    run_bench container_seq "$bench/bench_container_seq" "$files" "$reps" || return 1
    local f=$work/container_seq.out loop seq
    echo "$files test files running \`true\`, one container each, median of $reps runs, alternating after a warm-up."
    echo "Same image, limits (--memory 64M, no swap, --cpus 1, --pids 64), network none and read-only bind mount."
    grep -oE 'Containers left by the loop: [0-9]+' "$f" || true
    echo
    loop=$(num "$(cell "$f" "shell loop of" 2)")
    seq=$(num "$(cell "$f" "cleanup-agent container-seq" 2)")
    local r
    r=$(calc "$loop" / "$seq" %.2f)
    table_head
    row "shell loop of \`docker run --rm\`" "$loop s ($(cell "$f" "shell loop of" 3) per file)" "1.00x" "" "reference"
    row "\`cleanup-agent container-seq\`" "$seq s ($(cell "$f" "cleanup-agent container-seq" 3) per file)" \
        "${r}x faster" ">= 1.15x faster" "$(verdict "$r" ge 1.15)"
}

# Issues 7 and 18: gc against the docker CLI, one-by-one removal and prune.
bench_gc() {
    local n reps parallel
    section gc "gc: collect the containers of dead sessions (issues 7, 18)"
    n=$(pick 20 500)
    # gc's own default (--help says it), so that the figure is what users get
    parallel=$("$agent" gc --help 2>&1 | sed -nE 's/.*--parallel N:.*default ([0-9]+).*/\1/p' | head -n 1)
    [[ -n $parallel ]] || { echo "**FAILED**: no default --parallel in \`$agent gc --help\`"; return 1; }
    reps=$(pick 1 "$long_reps")
    run_bench gc tests/bench/bench_gc.sh -b "$build/cleanup-agent" -n "$n" -r "$reps" -p "$parallel" || return 1
    local f=$work/gc.out gc cli one rss
    grep -E '^gc benchmark:' "$f" | sed 's/^gc benchmark: /Run: /'
    echo
    echo "$n containers of dead sessions (half running, half created), a fresh population for each method, on the"
    echo "private engine bench_gc.sh starts. gc and the CLI send the same forced DELETEs, and the engine kills the running"
    echo "containers for both. Median of $reps. For memory, \`cleanup-agent --version\` under /usr/bin/time (median of 5,"
    echo "measured here) is the binary alone, before it talks to an engine. libcurl: $(curl_kind)."
    echo
    gc=$(num "$(cell "$f" '`cleanup-agent gc' 2)")
    cli=$(num "$(cell "$f" '`docker rm -f' 2)")
    one=$(num "$(cell "$f" "one by one" 2)")
    rss=$(num "$(cell "$f" "gc peak RSS" 2)")
    local r_cli r_one floor
    r_cli=$(calc "$gc" / "$cli" %.2f)
    r_one=$(calc "$one" / "$gc" %.2f)
    floor=$(for _ in 1 2 3 4 5; do /usr/bin/time -f %M "$agent" --version 2>&1 >/dev/null | tail -n 1; done |
        sort -n | sed -n 3p)
    # measured KEY: "T s, L left; CPU: O s own, H s host" from the columns of bench_gc.sh's line for KEY
    measured() { echo "$(num "$(cell "$f" "$1" 2)") s, $(cell "$f" "$1" 4) left; CPU: $(cell "$f" "$1" 5) s own, $(cell "$f" "$1" 6) s host"; }
    # bench_gc.sh's lines under its table: gc over the CLI per repetition, and what the CPU figures count
    sed -n '/^gc over the CLI per repetition: /,$p' "$f"
    echo
    table_head
    row "\`cleanup-agent gc --parallel $parallel\`" "$(measured '`cleanup-agent gc')" \
        "${r_cli}x the CLI's time; ${r_one}x faster than one-by-one" \
        "<= ${gc_cli_ratio_max}x the CLI; >= ${gc_one_speedup_min}x faster than one-by-one" \
        "$(verdict "$r_cli" le "$gc_cli_ratio_max") / $(verdict "$r_one" ge "$gc_one_speedup_min")"
    row "\`docker rm -f \$(docker ps -aq --filter label=...)\`" "$(measured '`docker rm -f')" "" "" "reference"
    row "one by one: \`docker rm -f ID\` in a loop" "$(measured "one by one")" "" "" "reference"
    row "\`docker container prune -f --filter label=...\`" "$(measured '`docker container prune')" "" "" \
        "not comparable: prune removes only stopped containers and leaves the running half"
    row "gc peak RSS (/usr/bin/time)" "$rss KiB" "\`cleanup-agent --version\`: $floor KiB" "< $gc_rss_kib_max KiB" \
        "$(verdict "$rss" lt "$gc_rss_kib_max")"
}

# Issue 23: the leak receipt's cost: run with and without --report and --junit, interleaved.
bench_receipt() {
    local n
    n=$(pick 3 20)
    section receipt "The leak receipt's cost: \`run\` with and without \`--report\` (issue 23)"
    run_bench receipt "$bench/bench_run" receipt "$n" || return 1
    echo "Medians of $n interleaved pairs. The receipt's records are always kept (the summary names the worst offender"
    echo "from them); \`--report\` and \`--junit\` add writing them out. The suite creates 20 containers with the docker CLI"
    echo "through the session's proxy and leaves them for the end to remove."
    echo
    include_tables "$work/receipt.out"
}

# Issue 8: the Docker proxy: the same requests direct and through a proxy on a session socket, interleaved.
bench_proxy() {
    local reps
    reps=$(pick 1 30)
    section proxy "Docker proxy: latency through the proxy against direct (issue 8)"
    run_bench proxy "$bench/bench_proxy" --reps "$reps" || return 1
    local f=$work/proxy.out
    local ps_d ps_p ps_a run_d run_p run_a run_pct ping_f ping_k
    ps_d=$(num "$(cell "$f" 'docker ps' 3)")
    ps_p=$(num "$(cell "$f" 'docker ps' 4)")
    ps_a=$(calc "$ps_p" - "$ps_d" %+.3f)
    run_d=$(num "$(cell "$f" 'docker run --rm' 3)")
    run_p=$(num "$(cell "$f" 'docker run --rm' 4)")
    run_a=$(calc "$run_p" - "$run_d" %+.1f)
    run_pct=$(calc "$(calc "$run_a" / "$run_d" %.6f)" '*' 100 %+.2f)
    ping_f=$(cell "$f" 'fresh connection' 5)
    ping_k=$(cell "$f" 'kept-alive' 5)
    echo "Medians of $reps interleaved pairs (docker CLI: \`/usr/bin/docker\`, with DOCKER_HOST on the engine or on the proxy's"
    echo "socket); the raw /_ping round trips show the proxy's own cost without the CLI's start-up noise."
    echo
    table_head
    row "GET /_ping on a fresh connection, added by the proxy" "$ping_f" "" "" "the proxy's own cost"
    row "GET /_ping on a kept-alive connection, added by the proxy" "$ping_k" "" "" "the proxy's own cost"
    row "\`docker ps\` direct (the limit)" "$ps_d ms" "" "" "limit"
    row "\`docker ps\` through the proxy" "$ps_p ms" "$ps_a ms over direct" "< 1 ms added" "$(verdict "$ps_a" lt 1)"
    # The CLI's start-up varies by more than the target: the second direct run of each triple shows by how much, and
    # the two requests docker ps sends, timed alone, are what the proxy adds to it (issue 21's proposed measure).
    local floor_a two_a
    floor_a=$(num "$(cell "$f" 'noise floor' 5)")
    two_a=$(num "$(cell "$f" 'HEAD /_ping + GET' 5)")
    row "\`docker ps\` direct, then direct again (the method's noise floor)" "$floor_a ms" "" "" "noise floor"
    row "what \`docker ps\` sends (HEAD /_ping, GET /containers/json, new connection), added by the proxy" \
        "$two_a us" "" "< 1000 us added (proposed, issue 21)" "$(verdict "$two_a" lt 1000)"
    row "\`docker run --rm\` direct (the limit)" "$run_d ms" "" "" "limit"
    row "\`docker run --rm\` through the proxy" "$run_p ms" "$run_a ms, $run_pct% over direct" "< 5% added" \
        "$(verdict "$run_pct" lt 5)"
    local par_d par_p par_pct rss_0 rss_i rss_a thr_a
    par_d=$(num "$(cell "$f" '50 parallel' 3)")
    par_p=$(num "$(cell "$f" '50 parallel' 4)")
    par_pct=$(calc "$(calc "$(calc "$par_p" - "$par_d")" / "$par_d" %.6f)" '*' 100 %+.2f)
    rss_0=$(cell "$f" 'RSS, 256 idle' 2)
    rss_i=$(cell "$f" 'RSS, 256 idle' 3)
    rss_a=$(num "$(cell "$f" 'RSS, 256 idle' 4)")
    thr_a=$(num "$(cell "$f" 'threads, 256 idle' 4)")
    row "50 parallel \`docker run --rm\` direct, until the last ended (the limit)" "$par_d ms" "" "" "limit"
    row "50 parallel \`docker run --rm\` through the proxy" "$par_p ms" "$par_pct% over direct" "< 5% added" \
        "$(verdict "$par_pct" lt 5)"
    row "RSS of the process running the proxy, 256 idle connections" "$rss_i KiB" \
        "$rss_a KiB over none ($rss_0 KiB), $(calc "$rss_a" / 256 %.1f) KiB and $(calc "$thr_a" / 256 %.0f) threads per connection" \
        "< 32768 KiB added" "$(verdict "$rss_a" lt 32768)"
}

# --- the machine ---------------------------------------------------------------------------------------------
cgroup_mode() {
    case $(stat -fc %T /sys/fs/cgroup 2>/dev/null) in
    cgroup2fs) echo "unified (cgroup v2 only)" ;;
    tmpfs)
        if [[ $(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null) == cgroup2fs ]]; then
            echo "hybrid (v1 controllers, cgroup2 without controllers at /sys/fs/cgroup/unified)"
        else
            echo "legacy (cgroup v1 only)"
        fi
        ;;
    *) echo "unknown" ;;
    esac
}

# The system's libcurl, which the agent links: the file it resolves to and its Debian package's version.
curl_kind() {
    local path version
    path=$(ldd "$agent" 2>/dev/null | awk '$1 ~ /^libcurl/ { print $3; exit }' || true)
    version=$(dpkg-query -W -f '${Version}' libcurl4 2>/dev/null || true)
    echo "${path:-libcurl.so.4} (libcurl4 ${version:-version unknown})"
}

machine() {
    local cc
    cc=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
    local cc_version
    cc_version=$("${cc:-cc}" --version 2>/dev/null | head -n 1 || echo unknown)
    local build_type
    build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
    echo "| | |"
    echo "|---|---|"
    echo "| CPU | $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1) |"
    echo "| cores | $(nproc) online ($(grep -c '^processor' /proc/cpuinfo) in /proc/cpuinfo) |"
    echo "| memory | $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) |"
    echo "| kernel | $(uname -r) ($(uname -m)) |"
    echo "| cgroup mode | $(cgroup_mode) |"
    echo "| Docker engine | $(docker_cli version --format '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null), CLI $(/usr/bin/docker version --format '{{.Client.Version}}' 2>/dev/null) ($docker_bin) |"
    echo "| storage driver | $(docker_cli info --format '{{.Driver}}' 2>/dev/null) |"
    echo "| engine used | $( ((started_engine)) && echo "a private engine started by run-all.sh" || echo "DOCKER_HOST=$DOCKER_HOST")$( [[ " $selected " != *" gc "* ]] || echo "; bench_gc.sh: its own private engine") |"
    echo "| compiler | $cc_version (build type ${build_type:-none}, $build/) |"
    echo "| libcurl | $(curl_kind) |"
    echo "| source | $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- 2>/dev/null || echo ' with local changes') |"
    echo "| date | $(date -u '+%Y-%m-%d %H:%M UTC') |"
}

# --- main ----------------------------------------------------------------------------------------------------
main() {
    selected=""
    local id
    for id in "${BENCHES[@]}"; do
        [[ -z $only || " $only " == *" $id "* ]] && selected+=" $id"
    done
    local load0 t0=$SECONDS
    load0=$(cut -d' ' -f1-3 /proc/loadavg)
    machine >"$work/machine.md"
    : >"$summary"
    local failed=() durations=()
    for id in $selected; do
        local s=$SECONDS
        if "bench_$id" >"$work/$id.md"; then
            durations+=("| $id | $((SECONDS - s)) s | ok |")
            echo "$prog: [$id] done in $((SECONDS - s)) s" >&2
        else
            failed+=("$id")
            durations+=("| $id | $((SECONDS - s)) s | FAILED |")
            echo "$prog: [$id] FAILED after $((SECONDS - s)) s" >&2
        fi
    done
    local load1
    load1=$(cut -d' ' -f1-3 /proc/loadavg)
    local busy
    # Other work is what was running when this run began; the end figure is mostly gc's own 500-container populations.
    busy=$(awk -v a="${load0%% *}" -v n="$(nproc)" 'BEGIN { print (a > n / 2) ? 1 : 0 }')

    local tmp_out
    mkdir -p "$(dirname -- "$out")"
    tmp_out=$(mktemp "$out.XXXXXX")
    {
        echo "# Benchmarks"
        echo
        echo "Written by \`tests/bench/run-all.sh$( ((quick)) && echo " --quick")\` in $((SECONDS - t0)) s$( [[ -z $only ]] || echo ", only:$selected"). Every figure below was measured in"
        echo "this one run, on this machine; the alternatives were measured next to ours. Medians over repeated runs"
        echo "(the number is given per benchmark). Reproduce a line by running its command from the repository root, as"
        echo "root, after \`cmake -B $build -G Ninja -DAG_WERROR=ON && cmake --build $build\`, with DOCKER_HOST set to the engine."
        if ((quick)); then
            echo
            echo "**Quick mode**: few repetitions and small sizes. A smoke test of the benchmarks, not figures to quote."
        fi
        echo
        echo "## Machine"
        echo
        cat "$work/machine.md"
        echo
        if ((busy)); then
            echo "**The machine was loaded** by other work when this run began (load average $load0 at the start, $load1 at"
            echo "the end, on $(nproc) CPUs): timings are noisy. Run it again on a quiet machine for figures to quote."
        else
            echo "Load average $load0 at the start, $load1 at the end, on $(nproc) CPUs$([[ " $selected " != *" gc "* ]] ||
                echo " (the end figure is the gc benchmark's own: it runs last, on populations of containers)")."
        fi
        echo
        echo "## Summary of the targets"
        echo
        echo "| benchmark | what | target | measured | result |"
        echo "|---|---|---|---|---|"
        cat "$summary"
        for id in $selected; do cat "$work/$id.md"; done
        echo
        echo "## This run"
        echo
        echo "| benchmark | wall time | status |"
        echo "|---|---|---|"
        printf '%s\n' "${durations[@]}"
        echo "| total | $((SECONDS - t0)) s | $( ((${#failed[@]})) && echo "FAILED: ${failed[*]}" || echo ok) |"
    } >"$tmp_out"
    chmod 644 "$tmp_out"
    mv -f -- "$tmp_out" "$out"
    echo "$prog: wrote $out in $((SECONDS - t0)) s" >&2
    if ((${#failed[@]})); then
        echo "$prog: FAILED: ${failed[*]} (see the sections in $out)" >&2
        return 1
    fi
}

# One line: bash has read all of the script before it runs, so editing the file during a long run is safe.
main; exit
