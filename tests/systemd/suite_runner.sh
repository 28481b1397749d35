# shellcheck shell=bash disable=SC2016,SC2154
# Sourced after lib.sh (its work, out, err, agent) by bash -c in the VM; single quotes are meant.
# tests/systemd/suite_runner.sh: a CI runner service with KillMode=control-group (systemd's default, and what a
# runner's stop does to the whole job) stopped in the middle of a job that runs under `cleanup-agent run` and
# started a container, a network and a volume through the session's proxy and a tree that ignores SIGTERM.
# With SIGTERM first (systemctl stop as shipped) the agent cleans up itself; with SIGKILL for everything in the
# service's cgroup the agent dies at once, and its guardian (in a scope of its own, outside the service's cgroup)
# must still remove the session: its processes, containers, network and volume, its scopes and its state files.

# An image the VM can run without a registry (it has no network): sleep and the libraries it needs.
if ! docker image inspect ca-sleep:latest >/dev/null 2>&1; then
    tar -C / -chf - usr/bin/sleep lib64/ld-linux-x86-64.so.2 usr/lib/x86_64-linux-gnu/libc.so.6 |
        docker import - ca-sleep:latest >/dev/null
fi

docker_all_left() {
    docker ps -aq --filter "label=io.cleanup-agent.session=$1"
    docker_left "$1"
}
no_docker_all_left() { test -z "$(docker_all_left "$1")"; }
state_files() { find /run/cleanup-agent/sessions/ -mindepth 1 -maxdepth 1 -name "*$1*" -printf '%f\n' 2>/dev/null; }
no_state_files() { test -z "$(state_files "$1")"; }
unit_gone() { [[ $(systemctl show -p ActiveState --value "$1") =~ ^(inactive|failed)$ ]]; }
# why_kept ID: why session ID stays registered, for a failed check: the reason its registry records (collect_error)
# and what its guardian said (the agent's stderr, which it kept: the runner service's journal stream; not always
# filed under the unit once the service's cgroup is gone, so the whole boot's journal is searched).
why_kept() {
    sed -n 's/.*"collect_error":[[:space:]]*"\([^"]*\)".*/  | collect_error: \1/p' "/run/cleanup-agent/sessions/$1.json" \
        2>/dev/null
    journalctl -b -o cat --no-pager 2>/dev/null | grep -F "$1" | grep -F guardian | tail -n 5 | sed 's/^/  | /'
}

# runner_job SIGNAL: a runner-like service (KillMode=control-group, KillSignal=SIGNAL) runs the job under the agent;
# it is stopped once the job's container runs. Leaves the session id in $id.
runner_job() {
    local unit=ca-runner-$1.service
    rm -f "$work/id"
    # A failed unit of the same name (an earlier run of this suite in the same VM) would refuse the new one.
    systemctl reset-failed "$unit" 2>/dev/null
    # The job is a file: systemd expands $ in a transient unit's command line ($$ became $, an invalid volume name).
    {
        echo "docker run -d --network none ca-sleep:latest /usr/bin/sleep 1000 \
            >/dev/null || exit 92"
        leaky_script "$work/id" 'sleep 1000'
    } >"$work/job.sh"
    systemd-run --quiet --unit "$unit" -p KillMode=control-group -p KillSignal="$1" -p TimeoutStopSec=30 \
        "$(command -v "$agent")" run -- bash "$work/job.sh"
    id=$(wait_marker "$work/id") || { check "the job started (journal: $(journalctl -u "$unit" -o cat | tail -n 3))" false; id=none; }
    local cid
    cid=$(docker ps -q --filter "label=io.cleanup-agent.session=$id")
    check "the job's container runs" test -n "$cid"
    # A stock host: docker.io with the apparmor it recommends, so the container is confined as on such a host.
    check "the job's container runs confined by AppArmor ($(docker inspect -f '{{.AppArmorProfile}}' "$cid" 2>&1))" \
        test "$(docker inspect -f '{{.AppArmorProfile}}' "$cid" 2>/dev/null)" = docker-default
    check "the job's processes run ($(session_procs "$id"))" test "$(session_procs "$id")" -gt 0
    guardian=$(registry_field "$id" guardian_pid)
    check "the guardian ($guardian) is outside the service's cgroup: $(cut -d: -f3 "/proc/$guardian/cgroup" 2>/dev/null)" \
        grep -q "cleanup-agent-guardian-$id.scope" "/proc/$guardian/cgroup"
    systemctl stop "$unit"
    check "the runner service stopped" unit_gone "$unit"
}

# nothing_left_of ID: what a user checks after the stop.
nothing_left_of() {
    local id=$1
    check "no process of session $id left ($(session_procs "$id"))" wait_for 60 no_session_procs "$id"
    check "no container, network or volume of session $id left: $(docker_all_left "$id" | tr '\n' ' ')" \
        wait_for 60 no_docker_all_left "$id"
    check "no state file of session $id left: $(state_files "$id" | tr '\n' ' ')" wait_for 30 no_state_files "$id"
    no_state_files "$id" || why_kept "$id"
    check "the session's scopes are gone" wait_for 30 scope_gone "cleanup-agent-run-$id.scope"
    check "the guardian's scope is gone" wait_for 30 scope_gone "cleanup-agent-guardian-$id.scope"
    check "ps does not list session $id" wait_for 20 not_listed "$id"
}

case_begin "KillMode=control-group, SIGTERM (systemctl stop as shipped): the agent cleans the session up"
runner_job SIGTERM
nothing_left_of "$id"

case_begin "KillMode=control-group, SIGKILL to the whole service cgroup: the guardian still cleans the session up"
runner_job SIGKILL
nothing_left_of "$id"

suite_end
