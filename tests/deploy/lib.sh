# shellcheck shell=bash
# Sourced by the shell tests of tests/deploy/: one line per check ("ok   NAME", "FAIL NAME: DETAIL"), and the counts.
passed=0 failed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1${2:+: $2}"; failed=$((failed + 1)); }
# expect NAME COMMAND...: ok when the command succeeds
expect() { local name=$1; shift; if "$@"; then ok "$name"; else fail "$name"; fi; }
# test_label_key REPO: the key of the label tests put on what they create, as tests/test_label.h defines it.
test_label_key() {
    local h=$1/tests/test_label.h
    echo "$(sed -nE 's/^#define AG_TEST_LABEL_NS "(.*)"$/\1/p' "$h")$(sed -nE 's/^#define AG_TEST_LABEL_KEY AG_TEST_LABEL_NS "(.*)"$/\1/p' "$h")"
}

# private_engine_start DIR: a dockerd of its own under DIR (data and exec root, pid file, socket DIR/docker.sock, log
# DIR/dockerd.log), started as tests/docker_api/private_engine.c starts it; sets engine_pid once it answers (30 s).
# A gc that a test runs goes there: on the shared engine it would collect a developer's real leftovers.
engine_pid=''
private_engine_start() {
    local dir=$1 i
    mkdir -p "$dir" || return 1
    # In a network namespace of its own: dockerd --bridge=none deletes a docker0 it finds (the host engine's).
    unshare --net dockerd --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/docker.pid" \
        -H "unix://$dir/docker.sock" --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
        >>"$dir/dockerd.log" 2>&1 &
    engine_pid=$!
    for ((i = 0; i < 300; i++)); do
        docker -H "unix://$dir/docker.sock" version >/dev/null 2>&1 && return 0
        kill -0 "$engine_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "the private engine in $dir did not answer; its log:" >&2
    tail -n 5 "$dir/dockerd.log" >&2
    private_engine_stop
    return 1
}

# private_engine_stop: SIGTERM to the engine started above, SIGKILL after 30 s.
private_engine_stop() {
    [[ -n $engine_pid ]] || return 0
    local i
    # Its networks first: a stopped dockerd leaves their bridges on the host, and ~30 of them exhaust every engine's
    # address pools. Everything on this engine is the test's.
    [[ -n ${engine_dir:-} ]] && docker -H "unix://$engine_dir/docker.sock" network prune -f >/dev/null 2>&1
    kill "$engine_pid" 2>/dev/null
    for ((i = 0; i < 300; i++)); do
        kill -0 "$engine_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$engine_pid" 2>/dev/null
    wait "$engine_pid" 2>/dev/null
    engine_pid=''
}
