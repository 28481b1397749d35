#!/bin/bash
# tests/bench/bench_scale.sh: how the end of a session and gc grow with what they remove (issue 19). Not a ctest test.
#
#   end  for each N of -e: the end of a `cleanup-agent run` session whose command left N containers (the even half
#        running `sleep`), max(1, N/10) networks (each container on one) and N/2 named volumes (one per container of
#        the first half), created through the session's proxy; timed from the command's last instruction to the
#        agent's exit (with --teardown-timeout 30m, so that the whole removal is timed, not the default deadline's
#        part of it). Against, for the same population: `docker-compose down -v` of a compose project that declares
#        it, `docker rm -f -v $(docker ps -aq --filter label=...)` then `docker network rm` and `docker volume rm` of
#        the same, and one-by-one removal through the API, one DELETE after the other (what Testcontainers' Ryuk
#        does). -m names the methods (default "session compose rmf one"); -r repeats each N, the methods alternating
#        within a repetition, and the tables give medians.
#   fake for each N of -f: gc's own cost, without the engine's work: against a fake engine (python3, a unix socket)
#        that lists N containers of dead sessions and answers each DELETE at once; wall time and peak RSS, before
#        and after. For populations too large to create on a loaded machine.
#   gc   for each N of -g: `cleanup-agent gc` with N containers of dead sessions (created, not running, labeled as a
#        session of this machine before a reboot), its wall time and peak RSS (/usr/bin/time), for the agent of -B
#        (before the streamed list) and of -b (after), each on a fresh population, and `gc --dry-run` on the same;
#        against, each on a fresh population of its own, the CLI methods of -G (default "prune rmf"):
#        `docker container prune -f --filter label=...` and `docker rm -f $(docker ps -aq --filter label=...)`.
# Everything runs on a private engine (tests/bench/engine.sh): gc collects every dead session of its engine, and on the
# shared one it would take other suites' staged leftovers. Writes markdown tables to stdout, and with -o FILE into
# FILE between the markers "<!-- bench_scale begin -->" and "<!-- bench_scale end -->" (appended when absent).
#
# Usage: tests/bench/bench_scale.sh [-b AGENT] [-B AGENT_BEFORE] [-e "10 100 300"] [-m METHODS] [-r REPS]
#                                   [-g "100 1000 5000"] [-G "prune rmf"] [-f "5000 20000"] [-j JOBS] [-o FILE]
# Needs root, dockerd, docker-compose, curl, GNU time, cleanup-test/busybox:latest on the host engine.
set -euo pipefail

prog=tests/bench/bench_scale.sh
repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
image=cleanup-test/busybox:latest
agent=$repo/build/cleanup-agent
before=""
end_sizes="10 100 300"
gc_sizes="100 1000 5000"
fake_sizes=""
methods="session compose rmf one"
gc_cli="prune rmf"
reps=1
jobs=8
out=""
while getopts "b:B:e:m:r:g:G:f:j:o:h" o; do
    case $o in
    b) agent=$OPTARG ;;
    B) before=$OPTARG ;;
    e) end_sizes=$OPTARG ;;
    m) methods=$OPTARG ;;
    r) reps=$OPTARG ;;
    G) gc_cli=$OPTARG ;;
    g) gc_sizes=$OPTARG ;;
    f) fake_sizes=$OPTARG ;;
    j) jobs=$OPTARG ;;
    o) out=$OPTARG ;;
    h) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) exit 2 ;;
    esac
done
die() { echo "$prog: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "needs root"
[[ -x $agent ]] || die "no agent at $agent"
[[ -z $before || -x $before ]] || die "no agent at $before"
[[ -x /usr/bin/time ]] || die "/usr/bin/time missing: apt-get install time"
command -v docker-compose >/dev/null || die "docker-compose missing: apt-get install docker-compose"

run_id=$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
bench_label=io.cleanup-agent-tests.bench=$run_id
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-scale.XXXXXX")
chmod 700 "$work"
cg_mount=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
cg_root=$cg_mount/cleanup-agent-bench.$run_id
# shellcheck source=tests/bench/engine.sh
. "$repo/tests/bench/engine.sh"
cleanup() {
    # running containers of a stopped engine would outlive it (their shims stay): they go first
    [[ -z $engine_pid ]] || clear_all 2>/dev/null || true
    engine_stop
    # The root and, on a hybrid host, the v1 parents of the same name the agent made next to it.
    local d
    for d in "$cg_root" /sys/fs/cgroup/*/"${cg_root##*/}"; do
        [[ ! -d $d ]] || find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
    rm -rf --one-file-system -- "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
engine_start "$work/engine" "$image"
dk="/usr/bin/docker -H unix://${sock:?}"
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
# left: containers, networks and volumes on the private engine (it holds nothing else)
left() { echo $(($($dk ps -aq | wc -l) + $($dk network ls -q --filter type=custom | wc -l) + $($dk volume ls -q | wc -l))); }

# populate.sh SOCKET N PREFIX: the end benchmark's population through the API at SOCKET (the session's proxy, or the
# engine), JOBS requests at a time. Every object carries the benchmark's label.
cat >"$work/populate.sh" <<EOF
#!/bin/bash
set -euo pipefail
sock=\$1 n=\$2 prefix=\$3 nets=\$(( \$2 / 10 > 0 ? \$2 / 10 : 1 ))
api() { curl -sf --unix-socket "\$sock" -X POST -H 'Content-Type: application/json' -d "\$2" "http://localhost/v1.41\$1" >/dev/null; }
export -f api; export sock prefix
labels='{"${bench_label%%=*}":"${bench_label#*=}"}'
for ((i = 0; i < nets; i++)); do api /networks/create "{\"Name\":\"\$prefix-n\$i\",\"Labels\":\$labels}"; done
for ((i = 0; i < n / 2; i++)); do echo "/volumes/create {\"Name\":\"\$prefix-v\$i\",\"Labels\":\$labels}"; done |
    xargs -P $jobs -L 1 -d '\n' bash -c 'set -- \$0; api "\$1" "\$2"'
for ((i = 0; i < n; i++)); do
    mounts=""; ((i >= n / 2)) || mounts=",\"Binds\":[\"\$prefix-v\$i:/data\"]"
    echo "\$i {\"Image\":\"$image\",\"Cmd\":[\"sleep\",\"3600\"],\"Labels\":\$labels,\"HostConfig\":{\"NetworkMode\":\"\$prefix-n\$((i % nets))\"\$mounts}}"
done | xargs -P $jobs -L 1 -d '\n' bash -c 'set -- \$0; i=\$1; shift; api "/containers/create?name=\$prefix-c\$i" "\$*"; ((i % 2)) || api "/containers/\$prefix-c\$i/start" ""'
EOF
chmod +x "$work/populate.sh"

# compose.yml for the same population as a compose project
compose_file() {
    local n=$1 nets=$(($1 / 10 > 0 ? $1 / 10 : 1)) i
    {
        echo "version: '2.4'"
        echo "services:"
        for ((i = 0; i < n; i++)); do
            printf '  c%d:\n    image: %s\n    command: ["sleep", "3600"]\n    labels: ["%s"]\n    networks: [n%d]\n' \
                "$i" "$image" "$bench_label" $((i % nets))
            ((i >= n / 2)) || printf '    volumes: ["v%d:/data"]\n' "$i"
        done
        echo "networks:"
        for ((i = 0; i < nets; i++)); do printf '  n%d:\n    labels: ["%s"]\n' "$i" "$bench_label"; done
        echo "volumes:"
        for ((i = 0; i < n / 2; i++)); do printf '  v%d:\n    labels: ["%s"]\n' "$i" "$bench_label"; done
    } >"$work/compose.yml"
}

# end_session N: seconds from the command's last instruction to the agent's exit, and what was left
end_session() {
    local n=$1 t1 rc=0
    # shellcheck disable=SC2016 # the command's shell expands them, inside the session
    CLEANUP_AGENT_STATE_DIR=$work/state CLEANUP_AGENT_CGROUP_ROOT=$cg_root \
        "$agent" --docker-host "unix://$sock" --log-level warning --teardown-timeout 30m run -- \
        bash -c '"$0" "${DOCKER_HOST#unix://}" "$1" "s$2" && date +%s.%N >"$3"' \
        "$work/populate.sh" "$n" "$run_id" "$work/cmd_end" >"$work/run.out" 2>"$work/run.err" || rc=$?
    t1=$(now)
    if ((rc != 0)) || [[ ! -s $work/cmd_end ]]; then
        echo "$prog: run failed ($rc): $(tail -3 "$work/run.err")" >&2
        echo "failed $(left)"
        return
    fi
    echo "$(elapsed "$(cat "$work/cmd_end")" "$t1") $(left)"
    rm -f "$work/cmd_end"
}
end_compose() {
    local n=$1 t0 i running=()
    compose_file "$n"
    # docker-compose 1.29 runs each service's task and, inside it, the task of its container in one bounded pool
    # (COMPOSE_PARALLEL_LIMIT, 64): with more services than slots every slot holds a service task that waits for its
    # container's, and `up` stops for good (300 services: after 58 containers with the default, 15 with 16; no
    # request in flight for 27 minutes; docker/compose#5864, #7486). A pool larger than the project's objects lets it
    # finish; `down -v` gets the same parallelism, if anything in compose's favour.
    export DOCKER_HOST=unix://$sock COMPOSE_HTTP_TIMEOUT=900 COMPOSE_PARALLEL_LIMIT=${COMPOSE_PARALLEL_LIMIT:-$((2 * n + 64))}
    if ! docker-compose -p "b$run_id" -f "$work/compose.yml" up --no-start >"$work/compose.log" 2>&1; then
        echo "$prog: compose up failed: $(tail -3 "$work/compose.log")" >&2
        echo "failed $(left)"
        return
    fi
    for ((i = 0; i < n; i += 2)); do running+=("c$i"); done
    docker-compose -p "b$run_id" -f "$work/compose.yml" start "${running[@]}" >"$work/compose.log" 2>&1 ||
        echo "$prog: compose start: $(tail -3 "$work/compose.log")" >&2
    t0=$(now)
    docker-compose -p "b$run_id" -f "$work/compose.yml" down -v >"$work/compose.log" 2>&1 ||
        echo "$prog: compose down -v: $(tail -3 "$work/compose.log")" >&2
    echo "$(elapsed "$t0" "$(now)") $(left)"
}
# one by one through the API, as Ryuk does: the containers (forced, with their anonymous volumes), then networks,
# then volumes, one request after the other
end_one() {
    local n=$1 t0 id f
    "$work/populate.sh" "$sock" "$n" "o$run_id"
    f=$(printf 'filters={"label":["%s"]}' "$bench_label")
    t0=$(now)
    api_get() { curl -sf --unix-socket "$sock" -G --data-urlencode "$f" "http://localhost/v1.41$1"; }
    for id in $(api_get '/containers/json?all=1' | python3 -c 'import json,sys; print("\n".join(c["Id"] for c in json.load(sys.stdin)))'); do
        curl -sf --unix-socket "$sock" -X DELETE "http://localhost/v1.41/containers/$id?force=1&v=1" >/dev/null
    done
    for id in $(api_get /networks | python3 -c 'import json,sys; print("\n".join(c["Id"] for c in json.load(sys.stdin)))'); do
        curl -sf --unix-socket "$sock" -X DELETE "http://localhost/v1.41/networks/$id" >/dev/null
    done
    for id in $(api_get /volumes | python3 -c 'import json,sys; print("\n".join(c["Name"] for c in json.load(sys.stdin)["Volumes"] or []))'); do
        curl -sf --unix-socket "$sock" -X DELETE "http://localhost/v1.41/volumes/$id" >/dev/null
    done
    echo "$(elapsed "$t0" "$(now)") $(left)"
}

# docker rm -f of the containers by the benchmark's label, then docker network rm and docker volume rm of the same
# shellcheck disable=SC2046,SC2086 # the ids are words; $dk is the docker command with its -H option
end_rmf() {
    local n=$1 t0
    "$work/populate.sh" "$sock" "$n" "r$run_id"
    t0=$(now)
    $dk rm -f -v $($dk ps -aq --filter "label=$bench_label") >/dev/null
    $dk network rm $($dk network ls -q --filter "label=$bench_label") >/dev/null
    $dk volume rm $($dk volume ls -q --filter "label=$bench_label") >/dev/null
    echo "$(elapsed "$t0" "$(now)") $(left)"
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# clear: whatever a method left goes before the next one (the private engine holds nothing else)
# shellcheck disable=SC2086 # $dk is the docker command with its -H option: several words
clear_all() {
    local ids
    ids=$($dk ps -aq); [[ -z $ids ]] || echo "$ids" | xargs -P "$jobs" -n 20 $dk rm -f -v >/dev/null
    ids=$($dk network ls -q --filter type=custom); [[ -z $ids ]] || echo "$ids" | xargs $dk network rm >/dev/null
    ids=$($dk volume ls -q); [[ -z $ids ]] || echo "$ids" | xargs $dk volume rm -f >/dev/null
}

host=$(hostname)
machine=$(cat /etc/machine-id)
other_boot=$(cat /proc/sys/kernel/random/uuid)
# populate_dead N: N created containers of dead sessions (20 a session) of this machine before a reboot
populate_dead() {
    local n=$1 i sid created=$(($(date +%s) - 3600))
    for ((i = 0; i < n; i++)); do
        ((i % 20)) || sid=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
        printf '{"Image":"%s","Cmd":["sleep","3600"],"HostConfig":{"NetworkMode":"none"},"Labels":{"%s":"%s","io.cleanup-agent.session":"%s","io.cleanup-agent.managed":"true","io.cleanup-agent.host":"%s","io.cleanup-agent.machine":"%s","io.cleanup-agent.boot-id":"%s","io.cleanup-agent.owner-pid":"1","io.cleanup-agent.owner-start":"1","io.cleanup-agent.created":"%s","io.cleanup-agent.mode":"run"}}\n' \
            "$image" "${bench_label%%=*}" "${bench_label#*=}" "$sid" "$host" "$machine" "$other_boot" "$created"
    done | xargs -P "$jobs" -L 1 -d '\n' curl -sf --unix-socket "$sock" -X POST -H 'Content-Type: application/json' \
        -o /dev/null "http://localhost/v1.41/containers/create" -d
    local have
    have=$($dk ps -aq | wc -l)
    ((have == n)) || die "population: $have containers instead of $n"
}
# gc_measure AGENT [--dry-run]: "seconds peak_rss_kib left"
gc_measure() {
    local a=$1 rc=0
    shift
    /usr/bin/time -f "%e %M" -o "$work/time" "$a" --docker-host "unix://$sock" --state-dir "$work/state" \
        --cgroup-root "$cg_root" --log-level warning gc "$@" >"$work/gc.out" 2>"$work/gc.err" || rc=$?
    ((rc == 0)) || die "gc failed ($rc): $(tail -3 "$work/gc.err")"
    echo "$(tail -1 "$work/time") $($dk ps -aq | wc -l)"
}

mkdir -p "$work/state" "$cg_root"
chmod 700 "$work/state"
cpus=$(nproc)
load=$(cut -d' ' -f1-3 /proc/loadavg)
{
    echo "<!-- bench_scale begin -->"
    echo "## Scaling: the end of a session and gc against the population (issue 19)"
    echo
    echo "\`sudo $prog -e \"$end_sizes\" -m \"$methods\" -r $reps -g \"$gc_sizes\" -G \"$gc_cli\" -f \"$fake_sizes\"$([[ -z $before ]] || echo " -B <agent before the streamed list>")\`, $(date -u +%Y-%m-%d), $cpus CPUs, a private engine"
    echo "($($dk version --format '{{.Server.Version}}'), vfs). The machine was shared with five other helpers building and testing"
    echo "at the same time (load average $load at the start): absolute times are noisy; each row's methods ran one after"
    echo "another on the same machine, alternating, so the ratios within a row are the figures to read. Medians of $reps."
    echo
} >"$work/report"

declare -A method_title=([session]="\`cleanup-agent run\` end (s)" [compose]="\`docker-compose down -v\` (s)"
    [rmf]="\`docker rm -f\`, \`network rm\`, \`volume rm\` (s)" [one]="one by one, as Ryuk (s)")
if [[ -n $end_sizes ]]; then
    {
        echo "### The end of a session: N containers (half running), N/10 networks, N/2 volumes"
        echo
        head="| N | reps |"; rule="| ---: | ---: |"
        for m in $methods; do head+=" ${method_title[$m]} | left |"; rule+=" ---: | ---: |"; done
        echo "$head"; echo "$rule"
    } >>"$work/report"
    for n in $end_sizes; do
        declare -A times=() lefts=()
        for ((r = 1; r <= reps; r++)); do
            for m in $methods; do
                t0=$(now)
                case $m in
                session) read -r t l < <(end_session "$n") || t=failed ;;
                compose) read -r t l < <(end_compose "$n") || t=failed ;;
                rmf) read -r t l < <(end_rmf "$n") || t=failed ;;
                one) read -r t l < <(end_one "$n") || t=failed ;;
                *) die "unknown method $m" ;;
                esac
                clear_all
                echo "$prog: end N=$n rep $r: $m $t s (left $l) [$(elapsed "$t0" "$(now)") s with the population]" >&2
                times[$m]+=" $t"; lefts[$m]+=" $l"
            done
        done
        row="| $n | $reps |"
        for m in $methods; do
            row+=" $(echo "${times[$m]}" | median) | $(echo "${lefts[$m]}" | tr ' ' '\n' | sort -g | tail -1) |"
        done
        echo "$row" >>"$work/report"
        echo "$prog: end N=$n: ${row}" >&2
        unset times lefts
    done
    echo >>"$work/report"
fi

if [[ -n $gc_sizes ]]; then
    {
        echo "### gc: N dead containers (created, not running)"
        echo
        echo "| N | method | wall time (s) | peak RSS (KiB) | left | \`gc --dry-run\` wall time (s) | \`gc --dry-run\` peak RSS (KiB) |"
        echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"
    } >>"$work/report"
    for n in $gc_sizes; do
        for which in before after; do
            a=$agent
            if [[ $which == before ]]; then [[ -n $before ]] || continue; a=$before; fi
            t0=$(now)
            populate_dead "$n"
            echo "$prog: gc N=$n: population made in $(elapsed "$t0" "$(now)") s" >&2
            read -r d_t d_rss _ < <(gc_measure "$a" --dry-run)
            read -r g_t g_rss g_l < <(gc_measure "$a")
            echo "$prog: gc N=$n $which: $g_t s, $g_rss KiB, left $g_l; dry run $d_t s, $d_rss KiB" >&2
            echo "| $n | \`cleanup-agent gc\` ($which) | $g_t | $g_rss | $g_l | $d_t | $d_rss |" >>"$work/report"
            clear_all
        done
        for m in $gc_cli; do
            t0=$(now)
            populate_dead "$n"
            echo "$prog: gc N=$n: population made in $(elapsed "$t0" "$(now)") s" >&2
            case $m in
            prune) cmd="$dk container prune -f --filter label=$bench_label" ;;
            rmf) cmd="$dk rm -f \$($dk ps -aq --filter label=$bench_label)" ;;
            *) die "unknown gc method $m" ;;
            esac
            /usr/bin/time -f "%e %M" -o "$work/time" bash -c "$cmd" >/dev/null 2>"$work/gc.err" ||
                echo "$prog: $cmd: $(tail -3 "$work/gc.err")" >&2
            read -r c_t c_rss < <(tail -1 "$work/time")
            c_l=$($dk ps -aq | wc -l)
            echo "$prog: gc N=$n $m: $c_t s, $c_rss KiB, left $c_l" >&2
            echo "| $n | \`${cmd//$dk/docker}\` | $c_t | $c_rss | $c_l | | |" >>"$work/report"
            clear_all
        done
    done
    echo >>"$work/report"
fi
if [[ -n $fake_sizes ]]; then
    cat >"$work/fake.py" <<'EOF'
import socket, sys, threading
path, n, labels = sys.argv[1], int(sys.argv[2]), sys.argv[3]
item = ('{"Id":"%064x","Names":["/c%08d"],"Image":"cleanup-test/busybox:latest","Command":"sleep 3600",'
        '"Created":1796460918,"Ports":[],"Labels":' + labels + ',"State":"created","Status":"Created",'
        '"HostConfig":{"NetworkMode":"none"},"NetworkSettings":{"Networks":{}},"Mounts":[]}')
body = ("[" + ",".join(item % (i + 1, i) for i in range(n)) + "]").encode()
s = socket.socket(socket.AF_UNIX)
s.bind(path)
s.listen(64)
def serve(c):
    f = c.makefile("rb")
    while True:
        line = f.readline()
        if not line:
            return
        method, p = line.split()[0], line.split()[1].decode()
        length = 0
        while True:
            h = f.readline()
            if h in (b"\r\n", b""):
                break
            if h.lower().startswith(b"content-length:"):
                length = int(h.split(b":")[1])
        f.read(length)
        if method == b"DELETE":
            c.sendall(b"HTTP/1.1 204 No Content\r\nApi-Version: 1.41\r\n\r\n")
            continue
        b = b"OK" if p == "/_ping" else body if "/containers/json" in p else \
            b'{"Volumes":[],"Warnings":null}' if "/volumes" in p else b"[]"
        c.sendall(b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(b) + b)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF
    {
        echo "### gc's own cost: a fake engine that lists N dead containers and answers each DELETE at once"
        echo
        echo "| N | agent | \`gc\` wall time (s) | \`gc\` peak RSS (KiB) | \`gc --dry-run\` wall time (s) | \`gc --dry-run\` peak RSS (KiB) |"
        echo "| ---: | --- | ---: | ---: | ---: | ---: |"
    } >>"$work/report"
    fake_labels=$(printf '{"io.cleanup-agent.session":"%s","io.cleanup-agent.managed":"true","io.cleanup-agent.host":"%s","io.cleanup-agent.machine":"%s","io.cleanup-agent.boot-id":"%s","io.cleanup-agent.owner-pid":"1","io.cleanup-agent.owner-start":"1","io.cleanup-agent.created":"%s","io.cleanup-agent.mode":"run"}' \
        "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" "$host" "$machine" "$other_boot" $(($(date +%s) - 3600)))
    for n in $fake_sizes; do
        rm -f "$work/fake.sock"
        python3 "$work/fake.py" "$work/fake.sock" "$n" "$fake_labels" &
        fake_pid=$!
        for ((i = 0; i < 600; i++)); do [[ -S $work/fake.sock ]] && break; sleep 0.1; done
        for which in before after; do
            a=$agent
            if [[ $which == before ]]; then [[ -n $before ]] || continue; a=$before; fi
            row=()
            for mode in "" --dry-run; do
                rc=0
                # shellcheck disable=SC2086 # mode is one word or none
                /usr/bin/time -f "%e %M" -o "$work/time" "$a" --docker-host "unix://$work/fake.sock" \
                    --state-dir "$work/state" --cgroup-root "$cg_root" --log-level error gc $mode >/dev/null \
                    2>"$work/gc.err" || rc=$?
                # 0: all collected, 1: something left; either way the whole work was done
                ((rc <= 1)) || echo "$prog: fake N=$n $which gc $mode: exit $rc: $(tail -2 "$work/gc.err")" >&2
                read -r t m < <(tail -1 "$work/time")
                row+=("$t" "$m")
            done
            echo "$prog: fake N=$n $which: gc ${row[0]} s ${row[1]} KiB; dry run ${row[2]} s ${row[3]} KiB" >&2
            echo "| $n | $which | ${row[0]} | ${row[1]} | ${row[2]} | ${row[3]} |" >>"$work/report"
        done
        kill "$fake_pid"
        wait "$fake_pid" 2>/dev/null || true
    done
    echo >>"$work/report"
fi
echo "<!-- bench_scale end -->" >>"$work/report"
cat "$work/report"
if [[ -n $out ]]; then
    if grep -q '^<!-- bench_scale begin -->$' "$out"; then
        awk -v r="$work/report" '/^<!-- bench_scale begin -->$/ { while ((getline l < r) > 0) print l; skip = 1; next }
            /^<!-- bench_scale end -->$/ { skip = 0; next } !skip' "$out" >"$work/out" && cat "$work/out" >"$out"
    else
        { echo; cat "$work/report"; } >>"$out"
    fi
fi
