# shellcheck shell=bash disable=SC2016 # sourced after lib.sh by bash -c in the VM; single quotes are meant
# tests/systemd/suite_user.sh: `cleanup-agent run` as a non-root user with lingering on (a systemd user manager), in an
# ssh login session (tests/vm/systemd-vm.sh run --user ci), as a CI runner service's user would run it.
# Today the agent has no writable cgroup there (the login session's scope belongs to root): it tracks processes by
# process group instead, and refuses limits. The systemd driver (issue 22) changes both through the user manager.

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

# The systemd driver will change this case: limits through the user manager's delegated scope, exit 0.
case_begin "limits without a writable cgroup are refused: 125 and one line"
agent_run run --no-docker-proxy --memory 64M -- true
rc=$?
check_rc 125 "$rc"
check_err "limits need a writable cgroup"

suite_end
