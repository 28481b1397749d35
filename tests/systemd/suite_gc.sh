# shellcheck shell=bash disable=SC2016,SC2154
# Sourced after lib.sh (its work, out, err, agent) by bash -c in the VM; single quotes are meant.
# tests/systemd/suite_gc.sh: `cleanup-agent gc` collects a dead session on a stock Debian 12 host: the agent and its
# guardian both SIGKILLed (what a runner that kills the whole job does), then gc removes the tree, the network and
# the volume, and ps no longer lists the session. The VM's engine is the VM's own, so gc may run unrestricted here.

case_begin "gc collects a session whose agent and guardian were SIGKILLed"
rm -f "$work/id"
"$agent" run -- bash -c "$(leaky_script "$work/id" 'sleep 1000')" >"$out" 2>"$err" &
agent_pid=$!
id=$(wait_marker "$work/id") || { check "the leaky suite started" false; id=none; }
guardian=$(registry_field "$id" guardian_pid)
check "the registry names the guardian ($guardian)" test -n "$guardian"
kill -KILL "$guardian" "$agent_pid"
wait "$agent_pid"
sleep 0.5
check "the dead session's tree is still there ($(session_procs "$id") processes)" test "$(session_procs "$id")" -gt 0
check "the dead session's network and volume are still there" test -n "$(docker_left "$id")"
check "ps lists the dead session" listed "$id"

agent_run gc --dry-run
rc=$?
check_rc 0 "$rc"
check "gc --dry-run removed nothing" test -n "$(docker_left "$id")"

agent_run gc
rc=$?
check_rc 0 "$rc"
check_err "gc: removed"
check "no process of session $id left" wait_for 5 no_session_procs "$id"
check "no network or volume of session $id left" no_docker_left "$id"
check "no cgroup of session $id left" test -z "$(find /sys/fs/cgroup -name "*$id*")"
check "ps does not list session $id" not_listed "$id"

suite_end
