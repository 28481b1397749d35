#!/bin/bash
# tests/bench/bench_gc.sh: `cleanup-agent gc` against the docker CLI at removing leftovers (not a ctest test).
#
# Each measurement gets a fresh population of N containers of dead sessions (default 500, in sessions of 20), half
# running (`sleep`), half in the created state, labeled as the agent labels them: a valid session id, this host,
# another boot id (so the `rebooted` rule applies), a creation time, plus cleanup-agent.bench=<run id>. Methods:
#   gc        cleanup-agent gc --parallel P (temp --state-dir, own --cgroup-root), under /usr/bin/time for peak RSS
#   cli       docker rm -f $(docker ps -aq --filter label=...)
#   one       for id in $(docker ps -aq --filter ...); do docker rm -f "$id"; done
#   prune     docker container prune -f --filter label=...   (removes only the stopped half: the running half stays)
# The CLI is /usr/bin/docker (Debian's docker.io). Prints a markdown table of medians over the repetitions: wall time,
# the method's own CPU (user+sys of the command and its children, /usr/bin/time), and the host's busy CPU over the
# measurement (/proc/stat, every process: the engine's work shows here), then gc's time over the CLI's per repetition
# (the methods run one after another within a repetition, so each pair saw the same machine; each repetition starts
# with the next method, so none always runs first). gc and the CLI send the same forced DELETEs: the engine kills the
# running containers for both.
# -P adds `perf record -a` around each measurement and prints which processes the host's CPU went to (needs perf).
#
# Usage: tests/bench/bench_gc.sh [-n N] [-r REPS] [-p PARALLEL] [-m "gc cli one prune"] [-b AGENT] [-j CREATE_JOBS] [-s] [-P]
# By default the benchmark starts a private engine of its own (dockerd with its own data root, exec root, socket and
# pid file under a temp dir; vfs, no bridge), loads the test image into it from the host engine, and stops it at the
# end: gc sees every session-labeled resource on its engine, and on the shared one other suites stage dead sessions
# on purpose (and their gc would take ours). -s uses the engine on /var/run/docker.sock instead: the script then
# refuses to run while any other session-labeled resource exists and checks again right before each gc.
# Needs root, dockerd, cleanup-test/busybox:latest on the host engine, and GNU time (apt-get install time).
set -euo pipefail

prog=tests/bench/bench_gc.sh
repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
docker=/usr/bin/docker
image=cleanup-test/busybox:latest
n=500
reps=3
parallel=32 # gc's own default (DEFAULT_PARALLEL in agent/gc/gc.c): the figure a user gets
# The targets (issue 18): gc within noise of the CLI, at least 2x faster than one-by-one, peak RSS for 500 containers
# with the system libcurl. tests/bench/run-all.sh judges the same ones.
gc_cli_ratio_max=1.05
gc_one_speedup_min=2
gc_rss_kib_max=16384
methods="gc cli one prune"
agent=$repo/build/cleanup-agent
jobs=6
shared=0
profile=0

while getopts "n:r:p:m:b:j:sPh" o; do
    case $o in
    n) n=$OPTARG ;;
    r) reps=$OPTARG ;;
    p) parallel=$OPTARG ;;
    m) methods=$OPTARG ;;
    b) agent=$OPTARG ;;
    j) jobs=$OPTARG ;;
    s) shared=1 ;;
    P) profile=1 ;;
    h) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) exit 2 ;;
    esac
done

die() { echo "$prog: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "needs root (gc's cgroup root, the engine socket)"
[[ -x $agent ]] || die "no agent binary at $agent (build it, or pass -b PATH)"
[[ -x /usr/bin/time ]] || die "/usr/bin/time missing: apt-get install time"
$docker version >/dev/null 2>&1 || die "no engine answers on /var/run/docker.sock"
$docker image inspect "$image" >/dev/null 2>&1 || die "image $image missing (tests/run.sh --env-only builds it)"
((!profile)) || command -v perf >/dev/null || die "-P needs perf (apt-get install linux-perf)"

run_id=$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
bench_label=cleanup-agent.bench=$run_id
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-gc.XXXXXX")
cg_mount=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
[[ -n $cg_mount ]] || die "no cgroup2 mount: gc needs a --cgroup-root of its own"
# gc collects dead leaves of its cgroup root: give it an empty one of its own, never the shared default.
cg_root=$cg_mount/cleanup-agent-bench.$run_id

# shellcheck source=tests/bench/engine.sh
. "$repo/tests/bench/engine.sh"
cleanup() {
    local ids i
    ids=$($docker ps -aq --filter "label=$bench_label" 2>/dev/null || true)
    # shellcheck disable=SC2086 # one id per word
    [[ -z $ids ]] || $docker rm -f $ids >/dev/null 2>&1 || true
    # The root and, on a hybrid host, the v1 parents of the same name the agent made next to it.
    local d
    for d in "$cg_root" /sys/fs/cgroup/*/"${cg_root##*/}"; do
        [[ ! -d $d ]] || find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
    engine_stop
    rm -rf --one-file-system -- "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Session-labeled resources that are not ours: containers, networks, volumes.
foreign_count() {
    local c nw v
    c=$($docker ps -aq --filter label=io.cleanup-agent.session | sort >"$work/all"; $docker ps -aq --filter "label=$bench_label" | sort >"$work/ours"; comm -23 "$work/all" "$work/ours" | wc -l)
    nw=$($docker network ls -q --filter label=io.cleanup-agent.session | wc -l)
    v=$($docker volume ls -q --filter label=io.cleanup-agent.session | wc -l)
    echo $((c + nw + v))
}
docker_host=unix:///var/run/docker.sock
if ((!shared)); then
    engine_start "$work/engine" "$image"
    docker="/usr/bin/docker -H unix://$sock"
    docker_host=unix://$sock
fi

f=$(foreign_count)
((f == 0)) || die "$f session-labeled resources of someone else are on the engine; gc would collect them. Try later."

host=$(hostname)
other_boot=$(cat /proc/sys/kernel/random/uuid)
machine=$(cat /etc/machine-id) # the rebooted rule needs this machine's id (issue 19)
[[ $other_boot != "$(cat /proc/sys/kernel/random/boot_id)" ]] || die "could not make up another boot id"

# populate: N containers in sessions of 20, the even ones running, the odd ones created. Parallel `docker` calls.
populate() {
    local i sid
    : >"$work/specs"
    for ((i = 0; i < n; i++)); do
        if ((i % 20 == 0)); then sid=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'); fi
        echo "$((i % 2)) $sid" >>"$work/specs"
    done
    local created=$(($(date +%s) - 3600))
    # shellcheck disable=SC2016 # expanded by the inner shell
    xargs -P "$jobs" -L 1 sh -c '
        if [ "$1" = 0 ]; then cmd="run -d"; else cmd=create; fi
        exec '"$docker"' $cmd --network none --label '"$bench_label"' --label io.cleanup-agent.managed=true \
            --label "io.cleanup-agent.session=$2" --label io.cleanup-agent.host='"$host"' \
            --label io.cleanup-agent.machine='"$machine"' --label io.cleanup-agent.boot-id='"$other_boot"' --label io.cleanup-agent.owner-pid=1 \
            --label io.cleanup-agent.owner-start=1 --label io.cleanup-agent.created='"$created"' \
            --label io.cleanup-agent.mode=run '"$image"' sleep 3600 >/dev/null' sh <"$work/specs"
    local have
    have=$($docker ps -aq --filter "label=$bench_label" | wc -l)
    ((have == n)) || die "population: $have containers instead of $n"
    have=$($docker ps -q --filter "label=$bench_label" | wc -l)
    ((have == n / 2)) || die "population: $have running instead of $((n / 2))"
}

count_left() { $docker ps -aq --filter "label=$bench_label" | wc -l; }
hz=$(getconf CLK_TCK)
# busy: the host's busy CPU time so far, in clock ticks (every field of /proc/stat's cpu line but idle and iowait)
busy() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }

# measure METHOD: prints "seconds left rss_kib own_cpu_s host_cpu_s". The method's command runs under /usr/bin/time
# (its wall time, its own CPU with its children's, its peak RSS), and under perf record -a with -P.
measure() {
    local m=$1 b0 b1 rss=- cmd
    case $m in
    gc)
        local f
        f=$(foreign_count)
        ((f == 0)) || { echo "$prog: $f foreign session resources appeared; gc skipped" >&2; echo "skip - - - -"; return; }
        cmd=("$agent" --docker-host "$docker_host" --state-dir "$work/state" --cgroup-root "$cg_root" --log-level warning
            gc --parallel "$parallel")
        ;;
    # The inner shell expands $0 (the docker command, split into words) and the ids, one argument each, as users write it
    cli) cmd=(sh -c "\$0 rm -f \$(\$0 ps -aq --filter label=$bench_label)" "$docker") ;;
    one) cmd=(sh -c "for id in \$(\$0 ps -aq --filter label=$bench_label); do \$0 rm -f \"\$id\"; done" "$docker") ;;
    prune) read -ra cmd <<<"$docker container prune -f --filter label=$bench_label" ;;
    esac
    ((!profile)) || cmd=(perf record -q -a -F 499 -o "$work/perf.$m" -- "${cmd[@]}")
    b0=$(busy)
    /usr/bin/time -f "%e %U %S %M" -o "$work/time" "${cmd[@]}" >"$work/$m.out" 2>"$work/$m.err" || true
    b1=$(busy)
    read -r secs user sys rss < <(tail -n 1 "$work/time")
    [[ $m == gc ]] || rss=-
    # -P: perf record is the command /usr/bin/time saw, so its CPU and RSS would be counted as the method's
    ((!profile)) || { user=-; sys=-; rss=-; }
    echo "$secs $(count_left) $rss $(awk -v u="$user" -v s="$sys" 'BEGIN { if (u == "-") print "-"; else printf "%.2f", u + s }') $(awk -v d=$((b1 - b0)) -v hz="$hz" 'BEGIN { printf "%.2f", d / hz }')"
}

# profile_of METHOD CLIENT: the shares of the host's busy CPU (idle left out) in the last measurement of METHOD, by
# process name: the top 5, and CLIENT's own (cleanup-agent or docker) wherever it ranks
profile_of() {
    perf report -q -i "$work/perf.$1" --sort comm --stdio 2>/dev/null | awk -v client="$2" '
        NF >= 2 && $1 ~ /%$/ && $2 != "swapper" { p[++n] = $1 + 0; c[n] = $2; busy += $1 }
        END {
            for (i = 1; i <= n; i++)
                if (i <= 5 || c[i] == client) printf "%s%s %.1f%%", (k++ ? ", " : ""), c[i], busy ? 100 * p[i] / busy : 0
            print ""
        }'
}

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "$prog: run $run_id, N=$n, $reps repetition(s), methods: $methods, gc --parallel $parallel, CLI $($docker version --format '{{.Client.Version}}') ($docker), engine $($docker version --format '{{.Server.Version}}') on $($docker info --format '{{.Driver}}'), $(nproc) CPUs" >&2
for ((r = 1; r <= reps; r++)); do
    # Each repetition starts one method later than the one before: no method always runs first, or last.
    read -ra order <<<"$methods"
    order=("${order[@]:$(((r - 1) % ${#order[@]}))}" "${order[@]:0:$(((r - 1) % ${#order[@]}))}")
    for m in "${order[@]}"; do
        t0=$(now)
        populate
        echo "$prog: rep $r $m: population of $n made in $(elapsed "$t0" "$(now)") s" >&2
        read -r secs left rss own_cpu host_cpu < <(measure "$m")
        echo "$prog: rep $r $m: ${secs} s, $left left, peak RSS ${rss} KiB, own CPU ${own_cpu} s, host CPU ${host_cpu} s" >&2
        ((!profile)) || echo "$prog: rep $r $m: host CPU by process: $(profile_of "$m" "$([[ $m == gc ]] && echo cleanup-agent || echo docker)")" >&2
        [[ $secs == skip ]] || echo "$r $secs" >>"$work/t.$m"
        echo "$left" >>"$work/left.$m"
        [[ $rss == - ]] || echo "$rss" >>"$work/rss.$m"
        [[ $own_cpu == - ]] || echo "$own_cpu" >>"$work/own.$m"
        [[ $host_cpu == - ]] || echo "$host_cpu" >>"$work/host.$m"
        # Whatever a method left (prune: the running half) goes before the next population.
        ids=$($docker ps -aq --filter "label=$bench_label")
        # shellcheck disable=SC2086
        [[ -z $ids ]] || $docker rm -f $ids >/dev/null
    done
done
f=$(foreign_count)
((f == 0)) || echo "$prog: note: $f foreign session-labeled resources exist now (appeared during the run)" >&2

# The table: median time, what each left, and the targets.
# median_of FILE: the median of FILE's last column (t.*: "rep seconds"); "-" when a method was not run (-m)
median_of() { if [[ -f $work/$1 ]]; then awk '{ print $NF }' "$work/$1" | median; else echo -; fi; }
t_gc=$(median_of t.gc)
t_cli=$(median_of t.cli)
t_one=$(median_of t.one)
rss=$(median_of rss.gc)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }
verdict() { awk -v v="$1" -v lim="$2" -v op="$3" 'BEGIN { if (v == "-") print "not measured"; else if ((op == "le" && v <= lim) || (op == "ge" && v >= lim) || (op == "lt" && v < lim)) print "met"; else print "NOT met" }'; }
reps_of() { [[ -f $work/t.$1 ]] && wc -l <"$work/t.$1" || echo 0; }
left_of() { [[ -f $work/left.$1 ]] && sort -n "$work/left.$1" | tail -1 || echo -; }
r_cli=$(ratio "$t_gc" "$t_cli")
r_one=$(ratio "$t_one" "$t_gc")
echo
echo "gc benchmark: $([[ $shared == 1 ]] && echo "shared engine" || echo "private engine"), $n containers of dead sessions ($((n / 2)) running, $((n / 2)) created), $(nproc) CPUs, $($docker info --format '{{.Driver}}') storage driver, CLI $docker $($docker version --format '{{.Client.Version}}')"
echo
c() { median_of "$1.$2"; } # c KIND METHOD: the median of one column
echo "| method | median wall time (s) | reps | left after | median own CPU (s) | median host CPU (s) | target | result |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"
echo "| \`cleanup-agent gc --parallel $parallel\` | $t_gc | $(reps_of gc) | $(left_of gc) | $(c own gc) | $(c host gc) | <= ${gc_cli_ratio_max}x docker CLI (is ${r_cli}x); >= ${gc_one_speedup_min}x faster than one-by-one (is ${r_one}x) | $(verdict "$r_cli" "$gc_cli_ratio_max" le) / $(verdict "$r_one" "$gc_one_speedup_min" ge) |"
echo "| \`docker rm -f \$(docker ps -aq --filter label=...)\` | $t_cli | $(reps_of cli) | $(left_of cli) | $(c own cli) | $(c host cli) | reference | |"
echo "| one by one: \`docker rm -f ID\` in a loop | $t_one | $(reps_of one) | $(left_of one) | $(c own one) | $(c host one) | reference | |"
echo "| \`docker container prune -f --filter label=...\` | $(median_of t.prune) | $(reps_of prune) | $(left_of prune) | $(c own prune) | $(c host prune) | leaves the running half | not comparable |"
echo "| gc peak RSS (KiB, /usr/bin/time) | $rss | $(reps_of gc) | | | | < $gc_rss_kib_max | $(verdict "$rss" "$gc_rss_kib_max" lt) |"
echo
# gc's time over the CLI's in each repetition that measured both: the spread says how far one median ratio can be trusted
pairs=$( [[ -f $work/t.gc && -f $work/t.cli ]] && join "$work/t.gc" "$work/t.cli" | awk '$3 > 0 { printf "%s%.2f", (n++ ? ", " : ""), $2 / $3 }')
echo "gc over the CLI per repetition: ${pairs:--}."
echo "Own CPU: the method's user+sys with its children's; host CPU: every process's, the engine's included (/proc/stat)."
