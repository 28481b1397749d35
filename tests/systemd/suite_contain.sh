# shellcheck shell=bash disable=SC2016 # sourced after lib.sh by bash -c in the VM; single quotes are meant
# tests/systemd/suite_contain.sh: `cleanup-agent run --contain-containers` as root on a stock Debian 12 host (systemd
# as PID 1, pure cgroup v2) whose engine uses its systemd cgroup driver: the session gets a slice of its own,
# cleanup_agent-<id>.slice, holding the limits, its scope and the containers (each container's CgroupParent), so
# that --memory and --pids bound the command and its containers together, a container's OOM kill is reported, and
# the end or a kill of the session stops the containers. The hybrid-host versions: tests/agent/test_run_contain.c.
# Sent after lib.sh to `bash -s` in the VM by tests/systemd/in-vm.sh.

if [[ $(docker info -f '{{.CgroupDriver}}' 2>/dev/null) != systemd ]]; then
    echo "the VM's engine does not use the systemd cgroup driver ($(docker info -f '{{.CgroupDriver}}' 2>&1)):" \
        "this suite tests that driver" >&2
    exit 1
fi
if ! docker image inspect ca-usr:latest >/dev/null 2>&1; then
    # An image the VM can run without a registry: an empty root whose /usr is the VM's (bind-mounted by `crun`).
    (r=$(mktemp -d) && cd "$r" && mkdir usr proc sys dev etc tmp run && ln -s usr/bin bin && ln -s usr/lib lib &&
        ln -s usr/lib64 lib64 && ln -s usr/sbin sbin && tar -c . | docker import - ca-usr:latest >/dev/null && rm -rf "$r")
fi
# crun: what the command runs in its container, "docker run" of that image with the VM's /usr.
crun='docker run -v /usr:/usr:ro --label ca-test=contain'

slice_of() { echo "cleanup_agent-$1.slice"; }
slice_gone() { test -z "$(systemctl list-units --all --plain --no-legend "$(slice_of "$1")" 2>/dev/null)"; }
containers_of() { docker ps -aq --filter "label=io.cleanup-agent.session=$1"; }
no_container_of() { test -z "$(containers_of "$1")"; }
running() { test "$(docker inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" = true; }
not_running() { ! running "$1"; }

# nothing_left ID: no slice unit, no container, no cgroup and no process of the session.
nothing_left() {
    local id=$1
    check "no process of session $id left ($(session_procs "$id") found)" wait_for 5 no_session_procs "$id"
    check "no $(slice_of "$id") left: $(systemctl list-units --all --plain --no-legend "$(slice_of "$id")")" \
        wait_for 10 slice_gone "$id"
    check "no container of session $id left: $(containers_of "$id" | tr '\n' ' ')" wait_for 20 no_container_of "$id"
    check "no cgroup of session $id left: $(find /sys/fs/cgroup -name "*$id*" | head -n 3)" \
        test -z "$(find /sys/fs/cgroup -name "*$id*")"
}

case_begin "a container's parent is the session's slice, which holds the limits and the scope"
agent_run run --memory 256M --pids 200 --contain-containers -- sh -c 'echo $CLEANUP_AGENT_SESSION > '"$work/id"'
    c=$('"$crun"' -d ca-usr:latest sleep 1000)
    docker inspect -f "parent={{.HostConfig.CgroupParent}}" $c
    systemctl show -p MemoryMax -p TasksMax "cleanup_agent-$CLEANUP_AGENT_SESSION.slice"
    systemctl show -p Slice -p MemoryMax "cleanup-agent-run-$CLEANUP_AGENT_SESSION.scope" | sed s/^/scope-/
    systemctl show -p Slice "docker-$c.scope" | sed s/^/container-/'
rc=$?
check_rc 0 "$rc"
id=$(cat "$work/id")
cat "$out"
check "the container's CgroupParent is the slice" grep -qx "parent=$(slice_of "$id")" "$out"
check "the slice's MemoryMax is 256M" grep -qx "MemoryMax=268435456" "$out"
check "the slice's TasksMax is 201 (200 and the scope's holder)" grep -qx "TasksMax=201" "$out"
check "the scope is in the slice" grep -qx "scope-Slice=$(slice_of "$id")" "$out"
check "the scope has no limit of its own" grep -qx "scope-MemoryMax=infinity" "$out"
check "the container's scope is in the slice" grep -qx "container-Slice=$(slice_of "$id")" "$out"
nothing_left "$id"

case_begin "--memory 128M: a 200 MiB hog in a container is OOM-killed and the run says so"
agent_run run --memory 128M --contain-containers -- sh -c 'echo $CLEANUP_AGENT_SESSION > '"$work/id"'
    '"$crun"' --rm ca-usr:latest sh -c "head -c 200m /dev/zero | tail >/dev/null"; echo "container exit $?"'
rc=$?
id=$(cat "$work/id")
check_rc 0 "$rc"
check "the container's hog was killed (stdout: $(tr '\n' ' ' <"$out"))" grep -qx "container exit 137" "$out"
check_err "the OOM killer killed 1 process inside the session (the command's tree or its containers; memory limit 128M"
nothing_left "$id"

# Without the slice the command alone could start its 40 sleepers (41 tasks and the holder, under 51); with it the
# container's 31 count too, so the command's dash stops at its first failed fork (its last count says where).
case_begin "--pids 50: the command and its container cannot exceed 50 together"
agent_run run --pids 50 --contain-containers -- sh -c 'echo $CLEANUP_AGENT_SESSION > '"$work/id"'
    '"$crun"' -d ca-usr:latest sh -c "for i in \$(seq 30); do sleep 1000 & done; wait" >/dev/null
    sleep 3
    for i in $(seq 40); do sleep 1000 & echo $i > '"$work/n"'; done'
id=$(cat "$work/id")
n=$(cat "$work/n" 2>/dev/null || echo 0)
echo "  the command started $n of its 40 sleepers"
check "the command ran and started sleepers" test "$n" -gt 0
check "the command started fewer than 40 sleepers ($n): the container's tasks count" test "$n" -lt 40
check "the command and the container stayed within 50 ($n + 31)" test $((n + 31)) -le 50
nothing_left "$id"

# start_contained: a run in the background whose command started a container and waits; sets agent_pid, id and c
# (the container), checks that the container runs. The wait for the id is long: the first `docker run` in the VM
# can take a while when the engine starts on demand.
start_contained() {
    rm -f "$work/id" "$work/c"
    "$agent" run --contain-containers -- sh -c 'echo $CLEANUP_AGENT_SESSION > '"$work/id"'
        '"$crun"' -d ca-usr:latest sleep 1000 > '"$work/c"'; sleep 1000' >"$out" 2>"$err" &
    agent_pid=$!
    wait_for 180 test -s "$work/c"
    id=$(cat "$work/id")
    c=$(cat "$work/c")
    # `docker run -d` prints the id before it starts the container: a kill comes once it runs.
    check "the container runs" wait_for 60 running "$c"
}

case_begin "SIGTERM to the agent stops the session's container within 5 s"
start_contained
start=$SECONDS
kill -TERM "$agent_pid"
check "the container stopped within 5 s" wait_for 5 not_running "$c"
echo "  stopped after $((SECONDS - start)) s"
wait "$agent_pid"
check_rc 143 "$?"
nothing_left "$id"

case_begin "SIGKILL of the agent: its guardian stops the slice and the container"
start_contained
kill -KILL "$agent_pid"
wait "$agent_pid"
check "the container stopped within 20 s" wait_for 20 not_running "$c"
check "stderr says 'guardian: the agent died'" wait_for 20 grep -qF "guardian: the agent died" "$err"
nothing_left "$id"

case_begin "without --contain-containers no slice is made for the session"
agent_run run -- sh -c 'echo $CLEANUP_AGENT_SESSION > '"$work/id"'; cut -d: -f3 /proc/self/cgroup'
check_rc 0 "$?"
id=$(cat "$work/id")
check "the scope is right in cleanup_agent.slice" grep -qx "/cleanup_agent.slice/cleanup-agent-run-$id.scope" "$out"

case_begin "after the suite: no session slice and no container of the suite"
check "no cleanup_agent-*.slice unit: $(systemctl list-units --all --plain --no-legend 'cleanup_agent-*.slice')" \
    test -z "$(systemctl list-units --all --plain --no-legend 'cleanup_agent-*.slice')"
check "no container of the suite: $(docker ps -aq --filter label=ca-test=contain)" \
    test -z "$(docker ps -aq --filter label=ca-test=contain)"
docker ps -aq --filter label=ca-test=contain | xargs -r docker rm -f >/dev/null 2>&1

suite_end
