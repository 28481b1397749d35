# shellcheck shell=bash # sent to bash -c in the VM, before a suite
# tests/systemd/lib.sh: what every suite of the systemd label shares. tests/systemd/in-vm.sh sends it, then the
# suite, to `bash -s` inside the Debian 12 VM (tests/vm/systemd-vm.sh); the agent is /usr/local/bin/cleanup-agent.
# A suite is a list of cases (case_begin NAME ... ); a failed check fails its case and the suite goes on with the
# next one; the suite's exit status is the number of failed cases (0: passed).
set -uo pipefail
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C
agent=cleanup-agent
cases=0
failed=0
case_name=""
case_failed=0
work=$(mktemp -d /tmp/systemd-suite.XXXXXX)
# A CI host's engine runs before its jobs: docker.socket would start it on the first request, slower than the
# agent's 10 s ping under TCG.
if ((EUID == 0)); then
    systemctl start docker.service
    for _ in $(seq 120); do docker info >/dev/null 2>&1 && break; sleep 1; done
fi
out=$work/out
err=$work/err
# Which agent the suite runs: the package's /usr/bin/cleanup-agent (systemd-vm.sh --deb), else a copied build.
echo "agent: $(command -v "$agent") ($(dpkg-query -W -f '${Package} ${Version}' cleanup-agent 2>/dev/null ||
    echo 'no package installed'))"

case_end() {
    [[ -n $case_name ]] || return 0
    if ((case_failed)); then
        failed=$((failed + 1))
        echo "FAIL $case_name"
    else
        echo "PASS $case_name"
    fi
    case_name=""
}
case_begin() {
    case_end
    cases=$((cases + 1))
    case_name=$1
    case_failed=0
    echo "--- $case_name"
}
suite_end() {
    case_end
    echo "$((cases - failed)) of $cases cases passed"
    rm -rf -- "$work"
    exit "$failed"
}

# check DESCRIPTION CMD...: CMD must succeed; otherwise the case fails, saying what was expected, with run's stderr.
check() {
    local what=$1
    shift
    if ! "$@"; then
        echo "  FAILED: $what"
        if [[ -s $err ]]; then sed 's/^/  | /' "$err" | tail -n 20; fi
        case_failed=1
    fi
}
# lacks FILE TEXT: FILE does not say TEXT.
lacks() { ! grep -qF -- "$2" "$1"; }
# check_rc WANT GOT: the exit status of the last run.
check_rc() { check "exit status $1 (got $2)" test "$2" -eq "$1"; }
# check_err TEXT: run's stderr says TEXT.
check_err() { check "stderr says '$1'" grep -qF -- "$1" "$err"; }

# agent_run ARG...: cleanup-agent ARG..., stdout in $out, stderr in $err; returns its status.
agent_run() { "$agent" "$@" >"$out" 2>"$err"; }

# session_procs ID: how many processes carry the session in their environment (a cleared environment is found by
# the session's cgroup, but a user looks for the tree this way).
session_procs() {
    grep -lsaF "CLEANUP_AGENT_SESSION=$1" /proc/[0-9]*/environ 2>/dev/null | wc -l
}
# wait_for SECONDS CMD...: polls CMD every 0.2 s until it succeeds; 1 when it never did.
wait_for() {
    local end=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < end)) || return 1
        sleep 0.2
    done
}
no_session_procs() { test "$(session_procs "$1")" -eq 0; }
# scope_gone UNIT: systemd no longer knows the unit (or only as inactive).
scope_gone() { [[ $(systemctl show -p ActiveState --value "$1" 2>/dev/null) == inactive ]]; }
# docker_left ID: the networks and volumes labeled with the session, as `docker ... ls` shows them.
docker_left() {
    docker network ls -q --filter "label=io.cleanup-agent.session=$1"
    docker volume ls -q --filter "label=io.cleanup-agent.session=$1"
}
no_docker_left() { test -z "$(docker_left "$1")"; }
# listed ID: `cleanup-agent ps` lists the session.
listed() { "$agent" ps 2>/dev/null | grep -q "^$1 "; }
not_listed() { ! listed "$1"; }
# registry_field ID FIELD: a number from the session's registry (root's state dir).
registry_field() {
    sed -n "s/.*\"$2\":[[:space:]]*\([0-9][0-9]*\).*/\1/p" "${STATE_DIR:-/run/cleanup-agent}/sessions/$1.json" | head -n 1
}

# The leaky suite: a network and a volume through the session's socket, a double-forked sleeper that ignores
# SIGTERM, then the session id in $1 (a marker file) before it goes on with "$2" (exit 3, sleep ...).
leaky_script() {
    cat <<SH
docker network create leaky-net-\$\$ >/dev/null || exit 90
docker volume create leaky-vol-\$\$ >/dev/null || exit 91
( trap '' TERM; sleep 1000 & ) &
echo \$CLEANUP_AGENT_SESSION > $1
$2
SH
}
# wait_marker FILE: the session id the script wrote, once it is there (180 s: docker.socket starts dockerd, and
# TCG on a loaded machine is slow).
wait_marker() {
    wait_for 180 test -s "$1" || return 1
    cat "$1"
}

# user_service NAME EXECSTART: runs EXECSTART as the user service NAME of this user's manager (a CI runner as a user
# service), its stdout in $out and stderr in $err; waits up to 240 s for its end and prints its exit status. The
# image has no user bus (no dbus-user-session): systemctl --user talks to the manager's private socket, which has no
# --wait, so the end is polled.
user_service_done() { ! systemctl --user is-active --quiet "$1.service"; }
user_service() {
    local name=$1 exec=$2
    mkdir -p ~/.config/systemd/user
    printf '[Service]\nType=exec\nExecStart=%s\nStandardOutput=file:%s\nStandardError=file:%s\n' "$exec" "$out" "$err" \
        >~/.config/systemd/user/"$name".service
    rm -f "$out" "$err"
    systemctl --user daemon-reload
    systemctl --user start "$name.service"
    wait_for 240 user_service_done "$name"
    systemctl --user show -p ExecMainStatus --value "$name.service"
    rm -f ~/.config/systemd/user/"$name".service
    systemctl --user daemon-reload
}
