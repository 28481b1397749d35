# shellcheck shell=bash
# tests/bench/engine.sh: sourced by the benchmark scripts that need a private engine. engine_start DIR IMAGE starts a
# dockerd of their own (its own data root, exec root, socket and pid file under DIR, its own network namespace; vfs,
# no default bridge, an address pool of its own for the networks a benchmark creates), loads IMAGE into it from the host engine, and sets
# engine_pid and sock; engine_stop stops it. The caller's die() reports failures.
engine_pid=""
sock=""
engine_start() {
    local dir=$1 image=$2 dockerd i
    dockerd=$(command -v dockerd) || die "dockerd not found (apt-get install docker.io)"
    mkdir -p "$dir"
    sock=$dir/docker.sock
    # In a network namespace of its own: dockerd --bridge=none deletes a docker0 it finds (the host engine's).
    setsid unshare --net "$dockerd" --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs --data-root "$dir/data" \
        --exec-root "$dir/exec" --pidfile "$dir/docker.pid" --host "unix://$sock" \
        --default-address-pool "base=10.$((200 + RANDOM % 50)).0.0/16,size=24" >"$dir/log" 2>&1 </dev/null &
    engine_pid=$!
    for ((i = 0; i < 300; i++)); do
        /usr/bin/docker -H "unix://$sock" version >/dev/null 2>&1 && break
        kill -0 "$engine_pid" 2>/dev/null || die "the private dockerd exited: $(tail -1 "$dir/log")"
        sleep 0.1
    done
    /usr/bin/docker save "$image" | /usr/bin/docker -H "unix://$sock" load >/dev/null || die "cannot load $image"
}
engine_stop() {
    local i
    [[ -n $engine_pid ]] || return 0
    # a stopped dockerd leaves its bridges on the host: its networks go first
    /usr/bin/docker -H "unix://$sock" network prune -f >/dev/null 2>&1 || true
    kill -TERM "$engine_pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do kill -0 "$engine_pid" 2>/dev/null || break; sleep 0.1; done
    engine_pid=""
}
