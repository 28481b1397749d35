#!/bin/bash
# tests/hosts/observe.sh KIND: observes, on the host it runs on and as the user it runs as, each promise of
# `cleanup-agent run` that docs/HOSTS.md has a column for, by doing what a user would do and looking at the result.
# Prints one line per promise: "HOSTS-CELL|KIND|PROMISE|yes" or "...|no: what was seen". A promise it cannot try
# here (no docker CLI, no engine) prints no line: HOSTS.md then says "not measured". The agent is $AG_AGENT, else
# cleanup-agent on PATH. Runs on this host (ctest hosts_observe), in the Debian 12 VM as root and as a user
# (tests/systemd/suite_hosts.sh) and in a container (tests/hosts/observe-container.sh); tests/hosts/write-hosts.sh
# turns the lines into docs/HOSTS.md. Exit 0 unless the observation itself could not run.
set -uo pipefail
kind=${1:?usage: observe.sh KIND}
agent=${AG_AGENT:-cleanup-agent}
work=$(mktemp -d "${TMPDIR:-/tmp}/hosts-observe.XXXXXX")
trap 'rm -rf -- "$work"' EXIT
cell() { echo "HOSTS-CELL|$kind|$1|$2"; }
procs_of() { grep -lsaF "CLEANUP_AGENT_SESSION=$1" /proc/[0-9]*/environ 2>/dev/null | wc -l; }
gone_within() { # gone_within SECONDS ID
    local end=$((SECONDS + $1))
    while (($(procs_of "$2") > 0)); do ((SECONDS < end)) || return 1; sleep 0.2; done
}
run() { "$agent" run "$@" >"$work/out" 2>"$work/err"; }
# why: the run's last line, short enough for a table cell (its reason in parentheses left out).
why() { tail -n 1 "$work/err" | sed 's/^cleanup-agent: //; s/^error: run: //; s/ (.*//; s/|/\//g' | cut -c1-80; }

# Escape-proof tree kill: a process that leaves the group (setsid) and ignores SIGTERM.
run --grace 200ms -- sh -c 'setsid sh -c "trap \"\" TERM; exec sleep 1000" </dev/null >/dev/null 2>&1 &
    echo $CLEANUP_AGENT_SESSION >'"$work/id"'; sleep 0.5'
id=$(cat "$work/id" 2>/dev/null)
if [[ -z $id ]]; then cell "tree kill (setsid escapee)" "no: run failed: $(why)"
elif gone_within 5 "$id"; then cell "tree kill (setsid escapee)" yes
else cell "tree kill (setsid escapee)" "no: $(procs_of "$id") process(es) outlived the run"
fi

# Limits: the run accepts each and the command's cgroup shows it.
for l in "memory --memory 64M" "pids --pids 64" "cpu --cpus 0.5"; do
    set -- $l
    if run "$2" "$3" -- true; then cell "$1 limit" yes; else cell "$1 limit" "no: $(why)"; fi
done

# OOM report: over a 32M limit, run exits 137 and says OOM.
if run --memory 32M -- sh -c 'x=$(head -c 200000000 /dev/zero | tr "\0" x); echo ${#x}'; then
    cell "OOM report" "no: the command was not killed"
else
    rc=$?
    if ((rc == 137)) && grep -qi oom "$work/err"; then cell "OOM report" yes
    elif ((rc == 125)); then cell "OOM report" "no: $(why)"
    else cell "OOM report" "no: exit $rc without an OOM message"
    fi
fi

# Labeled containers: a network created through DOCKER_HOST carries the session label, and is gone after.
if command -v docker >/dev/null && docker version >/dev/null 2>&1; then
    run -- sh -c 'docker network create hosts-observe-$$ >/dev/null &&
        docker network inspect -f "{{index .Labels \"io.cleanup-agent.session\"}}" hosts-observe-$$ >'"$work/label"'
        echo $CLEANUP_AGENT_SESSION >'"$work/id"
    if [[ -s $work/label && $(cat "$work/label") == "$(cat "$work/id")" ]] &&
        [[ -z $(docker network ls -q --filter "label=io.cleanup-agent.session=$(cat "$work/id")") ]]; then
        cell "labeled containers" yes
    else
        cell "labeled containers" "no: label '$(cat "$work/label" 2>/dev/null)': $(why)"
    fi
fi

# start_killable: a run whose command waits, in the background; its session id in $id, the agent's pid in $apid.
start_killable() {
    rm -f "$work/id"
    "$agent" run -- sh -c 'sleep 1000 & echo $CLEANUP_AGENT_SESSION >'"$work/id"'; sleep 1000' >/dev/null 2>&1 &
    apid=$!
    local end=$((SECONDS + 60))
    until [[ -s $work/id ]]; do ((SECONDS < end)) || return 1; sleep 0.2; done
    id=$(cat "$work/id")
}
state_dir=${CLEANUP_AGENT_STATE_DIR:-$( ((EUID == 0)) && echo /run/cleanup-agent || echo "${XDG_RUNTIME_DIR:-/nonexistent}/cleanup-agent")}

# Guardian after SIGKILL of the agent.
if start_killable; then
    kill -KILL "$apid"
    wait "$apid" 2>/dev/null
    if gone_within 30 "$id"; then cell "guardian after SIGKILL" yes
    else cell "guardian after SIGKILL" "no: $(procs_of "$id") process(es) left 30 s after"
    fi
fi

# Collection at the next start: agent and guardian SIGKILLed, then another run.
if start_killable; then
    g=$(sed -n 's/.*"guardian_pid":[[:space:]]*\([0-9]*\).*/\1/p' "$state_dir/sessions/$id.json" 2>/dev/null)
    [[ -n $g ]] && kill -KILL "$g"
    kill -KILL "$apid"
    wait "$apid" 2>/dev/null
    sleep 0.5
    if (($(procs_of "$id") == 0)); then
        cell "collection at next start" "not needed: nothing outlived the SIGKILLs of agent and guardian"
    else
        "$agent" run -- true >/dev/null 2>&1
        if gone_within 10 "$id"; then cell "collection at next start" yes
        else cell "collection at next start" "no: $(procs_of "$id") process(es) left after the next run"
        fi
    fi
fi
