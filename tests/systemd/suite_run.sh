# shellcheck shell=bash disable=SC2016 # sourced after lib.sh by bash -c in the VM; single quotes are meant
# tests/systemd/suite_run.sh: `cleanup-agent run` as root on a stock Debian 12 host (systemd as PID 1, pure cgroup v2),
# the basics users rely on: a leaky suite's tree, containers' networks and volumes gone at the end, --timeout,
# the OOM report of --memory, --pids, signals to the agent, and the guardian's cleanup after a SIGKILL of the agent.
# Sent after lib.sh to `bash -s` in the VM by tests/systemd/in-vm.sh.
# Today's driver is cgroupfs on this host too; the systemd driver (issue 22) will add the scope's assertions here.

# nothing_left ID: what a user checks after a run: no process of the session, no network or volume labeled with it,
# no cgroup named after it, and `cleanup-agent ps` does not list it.
nothing_left() {
    local id=$1
    check "no process of session $id left ($(session_procs "$id") found)" wait_for 5 no_session_procs "$id"
    check "no network or volume of session $id left: $(docker_left "$id" | tr '\n' ' ')" no_docker_left "$id"
    check "no cgroup of session $id left: $(find /sys/fs/cgroup -name "*$id*" | head -n 3)" \
        test -z "$(find /sys/fs/cgroup -name "*$id*")"
    check "ps does not list session $id" wait_for 20 not_listed "$id"
}

case_begin "a leaky suite exits with its status and leaves nothing"
agent_run run -- bash -c "$(leaky_script "$work/id" 'exit 3')"
rc=$?
check_rc 3 "$rc"
check_err "outlived the command"
check_err "removed 1 network, 1 volume"
nothing_left "$(cat "$work/id")"

case_begin "a run of true takes little time"
start=$(date +%s%N)
agent_run run -- true
rc=$?
echo "  cleanup-agent run -- true: $((($(date +%s%N) - start) / 1000000)) ms"
check_rc 0 "$rc"

case_begin "--timeout kills a tree that ignores SIGTERM and exits 124"
rm -f "$work/id"
agent_run run --timeout 3s --grace 300ms -- sh -c \
    "trap '' TERM; sh -c 'trap \"\" TERM; exec sleep 1000' & echo \$CLEANUP_AGENT_SESSION > $work/id; sleep 1000"
rc=$?
check_rc 124 "$rc"
check_err "--timeout 3s expired"
nothing_left "$(cat "$work/id")"

case_begin "--memory: the OOM kill is reported and exits 137"
agent_run run --memory 32M -- sh -c 'echo $CLEANUP_AGENT_SESSION > '"$work/id"'; exec tail /dev/zero'
rc=$?
check_rc 137 "$rc"
check_err "killed by the OOM killer (memory limit 32M"
nothing_left "$(cat "$work/id")"

case_begin "--pids: the command sees the limit and cannot fork past it"
agent_run run --pids 16 -- sh -c 'echo $CLEANUP_AGENT_SESSION > '"$work/id"'
    cat "/sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)/pids.max"
    for i in $(seq 40); do sleep 60 & done
    echo all 40 started'
rc=$?
check "the command's cgroup says pids.max 16 (stdout: $(head -c 200 "$out"))" grep -qx 16 "$out"
check "the 40 sleepers did not all start" lacks "$out" "all 40 started"
check "the command failed (status $rc)" test "$rc" -ne 0
nothing_left "$(cat "$work/id")"

# start_leaky: a run of the leaky suite that sleeps on, in the background; its pid in $agent_pid, its session in $id.
start_leaky() {
    rm -f "$work/id"
    "$agent" run --grace 1s -- bash -c "$(leaky_script "$work/id" 'sleep 1000')" >"$out" 2>"$err" &
    agent_pid=$!
    id=$(wait_marker "$work/id") || { check "the leaky suite started" false; id=none; }
}

case_begin "SIGTERM to the agent ends the run with 143 and leaves nothing"
start_leaky
kill -TERM "$agent_pid"
wait "$agent_pid"
rc=$?
check_rc 143 "$rc"
nothing_left "$id"

case_begin "SIGKILL of the agent: its guardian removes the tree, the network and the volume"
start_leaky
check "the session's tree runs ($(session_procs "$id") processes)" test "$(session_procs "$id")" -gt 0
check "the session's network and volume exist" test -n "$(docker_left "$id")"
kill -KILL "$agent_pid"
wait "$agent_pid"
rc=$?
check_rc 137 "$rc"
check "the guardian removed the tree within 5 s ($(session_procs "$id") left)" wait_for 5 no_session_procs "$id"
check "the guardian removed the network and volume within 5 s" wait_for 5 no_docker_left "$id"
check_err "guardian: the agent died"
nothing_left "$id"

suite_end
