#!/bin/bash
# shellcheck source-path=SCRIPTDIR/../..
# tests/clients/clients.sh AGENT SCENARIO: real Docker clients under `cleanup-agent run` against the real engine
# (issue 21, "Proven by real clients"). The command of a scenario (tests/clients/cmd/SCENARIO.sh, or a function
# below) creates things with its client and checks, while it runs, that each carries the session label
# (inside.sh); after the run this driver checks that nothing is left: no container, network, volume or image that
# the command recorded, that carries the session's label or the test label, or whose name starts with the scenario's
# unique prefix. Every name starts with that prefix and everything carries the test label where the client can
# set one; the clean-up at the end removes only those (and the build step containers whose command holds the prefix).
#
# Environment: DOCKER_HOST (unix:// only) the engine, default /var/run/docker.sock; AG_CLIENTS_CACHE the cache of
# the pinned npm packages (default /var/cache/cleanup-agent-tests).
set -uo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd -- "$here/../.." && pwd)
# shellcheck source=tests/deploy/lib.sh
source "$repo/tests/deploy/lib.sh"

agent=$1 scenario=$2
export PATH=/usr/bin:/bin:/usr/sbin:/sbin:$PATH # Debian's docker CLI and python3 (the packages tests/run.sh installs)
engine=${DOCKER_HOST:-unix:///var/run/docker.sock}
cache=${AG_CLIENTS_CACHE:-/var/cache/cleanup-agent-tests}
rid=$(head -c 64 /dev/urandom | tr -dc a-z0-9 | head -c 10)
W=$(mktemp -d /var/tmp/agc-XXXXXX) || exit 1 # short: the session socket is $W/state/sessions/<id>.sock
P=agclients-$rid
TL="$(test_label_key "$repo")=$P"
IMG=cleanup-test/busybox:latest
export W P TL IMG CLIENTS_DIR=$here
cg2=/sys/fs/cgroup/unified
[[ -e $cg2/cgroup.procs ]] || cg2=/sys/fs/cgroup
cgroot=$cg2/cleanup-agent-test-$P
agent_pid=''
scenario_keeps='' # ids check_run does not count as left (a scenario sets it)
# Set by a scenario: the images it built are not counted as left (`run` keeps them by default, as build cache);
# cli_build_image_removed runs with --images remove and counts them.
images_may_stay=''
run_opts=() # set by a scenario: options of `run` before its --

# d ARGS...: the docker CLI against the engine itself (not a session's proxy)
d() { docker -H "$engine" "$@"; }
quiet() { "$@" >/dev/null 2>&1; }

# ---- clean-up: only what carries the test label, or a name with this scenario's unique prefix -----------------------
ours() { # ours KIND: the ids of KIND that are this scenario's
    local kind=$1
    case $kind in
    container) d ps -aq --no-trunc --filter "label=$TL"; d ps -aq --no-trunc --filter "name=^/?$P"
        d ps -a --no-trunc --format '{{.ID}} {{.Command}}' | awk -v p="$P" 'index($0, p) {print $1}' ;;
    network) d network ls -q --filter "label=$TL"; d network ls -q --filter "name=^$P" ;;
    volume) d volume ls -q --filter "label=$TL"; d volume ls -q --filter "name=^$P" ;;
    image) d images -q --no-trunc --filter "label=$TL"; d images -q --no-trunc --filter "reference=$P*" ;;
    esac 2>/dev/null | sort -u
}
cleanup() {
    local rc=$? kind id
    [[ -n $agent_pid ]] && kill -9 "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
    for kind in container network volume image; do
        for id in $(ours "$kind"); do
            case $kind in
            container) d rm -f -v "$id" ;;
            image) d rmi -f "$id" ;;
            *) d "$kind" rm "$id" ;;
            esac >/dev/null 2>&1
        done
    done
    [[ $(type -t scenario_cleanup) == function ]] && scenario_cleanup
    find "$cgroot" /sys/fs/cgroup/*/"cleanup-agent-test-$P" -depth -type d -exec rmdir {} + 2>/dev/null
    rm -rf --one-file-system "$W"
    exit "$rc"
}
trap cleanup EXIT

# ---- the run and the checks ----------------------------------------------------------------------------------------
# run_agent ARGS...: cleanup-agent run -- ARGS in the background (agent_pid), output in $W/agent.{out,err}
run_agent() {
    "$agent" --state-dir "$W/state" --cgroup-root "$cgroot" --docker-host "$engine" run "${run_opts[@]}" -- "$@" \
        >"$W/agent.out" 2>"$W/agent.err" &
    agent_pid=$!
}
wait_agent() { # sets agent_rc
    agent_rc=0
    wait "$agent_pid" || agent_rc=$?
    agent_pid=''
}
session_id() { sed -n 1p "$W/session" 2>/dev/null; }
# proxy_socket_of ID HOST: HOST is session ID's proxy socket: in the state dir, or in the short socket dir when the
# engine's socket is shared with a group (docs/DESIGN.md, the labeling proxy)
proxy_socket_of() {
    [[ -n $1 ]] && case $2 in
        "unix://$W/state/sessions/$1.sock" | "unix:///run/cleanup-agent.sockets/$1.sock") return 0 ;;
        *) return 1 ;;
    esac
}
# check_run WANT_RC: the checks every scenario ends with
check_run() {
    local want=$1 id kind oid left
    id=$(session_id)
    expect "the command saw a session (CLEANUP_AGENT_SESSION and DOCKER_HOST, the proxy's socket)" \
        proxy_socket_of "$id" "$(sed -n 2p "$W/session" 2>/dev/null)"
    if [[ -s $W/died ]]; then fail "every step of the client worked" "$(cat "$W/died")"; else ok "every step of the client worked"; fi
    if [[ $agent_rc == "$want" ]]; then ok "run exits $want"; else
        fail "run exits $want" "it exited $agent_rc; its stderr: $(tail -n 5 "$W/agent.err")"
    fi
    if [[ -s $W/created ]]; then ok "the command created things ($(wc -l <"$W/created"))"; else fail "the command created things"; fi
    if [[ -s $W/unlabeled ]]; then fail "all it created carried the session label while it ran" "$(tr '\n' ';' <"$W/unlabeled")"
    else ok "all it created carried the session label while it ran"; fi
    left=''
    while read -r kind oid; do
        [[ $kind == image && -n $images_may_stay ]] && continue
        d "$kind" inspect "$oid" >/dev/null 2>&1 && left+=" $kind $oid;"
    done < <(sort -u "$W/created" 2>/dev/null)
    for kind in container network volume; do
        [[ -n $id ]] && for oid in $(d "$kind" ls -q --filter "label=io.cleanup-agent.session=$id" 2>/dev/null); do
            left+=" $kind $oid (session label);"
        done
    done
    local kinds=(container network volume image)
    [[ -n $images_may_stay ]] && kinds=(container network volume)
    for kind in "${kinds[@]}"; do
        for oid in $(ours "$kind"); do
            [[ ${scenario_keeps:-} == *" $oid "* ]] || left+=" $kind $oid (test label or name);"
        done
    done
    if [[ -z $left ]]; then ok "nothing is left after the run"; else fail "nothing is left after the run" "$left"; fi
}

# cmd_script NAME: the command of a scenario, tests/clients/cmd/NAME.sh, with the session written down first
# shellcheck disable=SC2016 # the $ in the printf format are for the script it writes
cmd_script() {
    printf '#!/bin/sh\nprintf "%%s\\n%%s\\n" "$CLEANUP_AGENT_SESSION" "$DOCKER_HOST" > "$W/session"\n. "%s/inside.sh"\n. "%s/cmd/%s.sh"\n' \
        "$here" "$here" "$1" >"$W/cmd.sh"
    chmod +x "$W/cmd.sh"
    echo "$W/cmd.sh"
}
# simple NAME [WANT_RC]: run cmd/NAME.sh to its end, then check
simple() {
    run_agent "$(cmd_script "$1")"
    wait_agent
    check_run "${2:-0}"
}

# shellcheck source=tests/clients/scenarios.sh
source "$here/scenarios.sh"

if [[ $(type -t "scenario_$scenario") != function ]]; then
    echo "unknown scenario '$scenario'" >&2
    exit 2
fi
"scenario_$scenario"
echo "$passed passed, $failed failed"
((failed == 0)) || { sed 's/^/  agent: /' "$W/agent.err" 2>/dev/null | tail -n 10; exit 1; }
