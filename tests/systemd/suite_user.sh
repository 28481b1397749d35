# shellcheck shell=bash disable=SC2016,SC2154
# Sourced after lib.sh (its work, out, err, agent) by bash -c in the VM; single quotes are meant.
# tests/systemd/suite_user.sh: `cleanup-agent run` as a non-root user with lingering on (a systemd user manager), in an
# ssh login session (tests/vm/systemd-vm.sh run --user ci), as a CI runner service's user would run it.
# From the login session the agent has no writable cgroup (the session's scope belongs to root): it tracks processes
# by process group, and refuses limits. From inside the user manager, the systemd driver gives the session a scope.

case_begin "the user has a user manager and a runtime dir"
check "XDG_RUNTIME_DIR is set (${XDG_RUNTIME_DIR:-unset})" test -d "${XDG_RUNTIME_DIR:-/nonexistent}"
check "systemctl --user answers" systemctl --user is-system-running --quiet

case_begin "without limits the run tracks the tree by process group and leaves nothing"
rm -f "$work/id"
agent_run run --no-docker-proxy -- sh -c \
    "( trap '' TERM; sleep 1000 & ) & echo \$CLEANUP_AGENT_SESSION > $work/id; exit 3"
rc=$?
check_rc 3 "$rc"
check_err "no writable cgroup"
id=$(cat "$work/id")
check "no process of session $id left" wait_for 5 no_session_procs "$id"
check "ps does not list session $id" wait_for 20 not_listed "$id"

# A login session's scope is root's: limits need a cgroup the user may write. Asked from there, the run refuses.
case_begin "limits from a login session (no writable cgroup) are refused: 125 and one line"
agent_run run --no-docker-proxy --memory 64M -- true
rc=$?
check_rc 125 "$rc"
check_err "limits need a writable cgroup"

# From inside the user manager (a CI runner as a user service), the systemd driver asks the user manager for the
# session's scope: the limits apply. The job is a user service (lib.sh's user_service).
case_begin "limits from a user service: a scope of the user's cleanup_agent.slice with memory.max"
cat >"$work/job.sh" <<'SH'
cat "/sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)/memory.max"
cut -d: -f3 /proc/self/cgroup
SH
rc=$(user_service ca-job "$(command -v "$agent") run --no-docker-proxy --memory 64M -- /bin/sh $work/job.sh")
check_rc 0 "${rc:-255}"
check "the command's cgroup had memory.max 64M or less (stdout: $(tr '\n' ' ' <"$out"))" \
    awk 'NR == 1 { exit !($1 ~ /^[0-9]+$/ && $1 <= 67108864) }' "$out"
check "the command ran in a scope of the user's cleanup_agent.slice" grep -q "cleanup_agent.slice/cleanup-agent-run-" "$out"

suite_end
