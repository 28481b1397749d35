#!/bin/bash
# tests/agent/check_container.sh AGENT: `cleanup-agent check` inside a container with its own cgroup namespace on
# this host (a runner that is itself a container: GitLab's docker executor, a Kubernetes runner pod), as a user
# would run it there: the test image (busybox, static) with the agent and the host's shared libraries bind-mounted
# read-only, a tmpfs /run (an image's /run), `--cgroupns private`, not privileged.
# Expected there: no writable cgroup (/sys/fs/cgroup is read-only in the container), so process tracking with the
# escape-proof kill, the limits and the OOM report each "no" with the container fix; the state directory and the
# guardian "yes"; the engine and the proxy "yes" when the engine's socket is mounted in (exit 0: all run needs),
# "no" with their fix when it is not (exit 3).
set -uo pipefail
agent=$(realpath "${1:?usage: check_container.sh AGENT}")
repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
image=cleanup-test/busybox:latest
socket=${DOCKER_HOST:-unix:///var/run/docker.sock}
socket=${socket#unix://}
label=$(sed -nE 's/^#define AG_TEST_LABEL_NS "(.*)"$/\1/p' "$repo/tests/test_label.h")id=check-container-$$
work=$(mktemp -d /tmp/check-container.XXXXXX)
trap 'rm -rf -- "$work"' EXIT
failed=0
fail() { echo "FAILED: $*"; failed=$((failed + 1)); }

# in_container [DOCKER-RUN-ARGS...] -- ARGS...: cleanup-agent ARGS in the container; output in $work/out, status in rc.
in_container() {
    local opts=()
    while [[ $1 != -- ]]; do opts+=("$1"); shift; done
    shift
    rc=0
    docker run --rm --label "$label" --cgroupns private --tmpfs /run \
        -v "$agent:/usr/bin/cleanup-agent:ro" \
        -v /usr/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu:ro -v /usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu:ro \
        -v /usr/lib64:/lib64:ro "${opts[@]}" "$image" /usr/bin/cleanup-agent "$@" >"$work/out" 2>"$work/err" || rc=$?
    sed 's/^/  | /' "$work/out" "$work/err"
}
verdict() { grep -E "^  (yes|no ) +$(sed 's/[][().*+?^$|]/\\&/g' <<<"$1") " "$work/out" | head -n 1; }
expect() { # expect TITLE yes|no
    [[ $(verdict "$1") == "  $2 "* ]] || fail "$1: want $2, got '$(verdict "$1")'"
}

echo "--- check in a container with its own cgroup namespace, the engine's socket mounted in"
in_container -v "$socket:/var/run/docker.sock" -- check
((rc == 0)) || fail "exit status 0 wanted (everything run needs works), got $rc"
grep -qE '^  cgroup mode +no writable cgroup: process-tracking mode' "$work/out" || fail "process-tracking mode"
grep -qF 'fix: mount cgroup2 read-write (in a container: a private cgroup namespace with a writable /sys/fs/cgroup)' \
    "$work/out" || fail "the container fix for the cgroup verdicts"
expect "state directory" yes
expect "session tracking" yes
for t in "escape-proof tree kill" "memory limit (--memory)" "pids limit (--pids)" "cpu limit (--cpus)" "OOM report"; do
    expect "$t" no
done
expect "Docker engine" yes
expect "labeling Docker proxy" yes
expect guardian yes
in_container -v "$socket:/var/run/docker.sock" -- check --format json
grep -qE '"tracking":[[:space:]]+"process"' "$work/out" || fail "json: tracking process"
grep -qE '"engine_answers":[[:space:]]+true' "$work/out" || fail "json: engine_answers true"
grep -qE '"ok":[[:space:]]+true,$' <(head -n 3 "$work/out") || fail "json: ok true"

echo "--- the same container without the engine's socket"
in_container -- check
((rc == 3)) || fail "exit status 3 wanted (no engine), got $rc"
expect "Docker engine" no
grep -qF 'fix: start the engine' "$work/out" || fail "the engine's fix"
expect "state directory" yes
expect "session tracking" yes

echo "$failed failed"
((failed == 0))
