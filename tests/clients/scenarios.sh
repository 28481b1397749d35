# shellcheck shell=bash disable=SC2154 # here, W, P, TL, IMG, cache: set by clients.sh
# tests/clients/scenarios.sh: the scenarios of clients.sh (sourced by it), one function scenario_NAME each. Each
# runs its command under cleanup-agent run and ends with check_run (and its own checks).

# ---- the docker CLI ------------------------------------------------------------------------------------------------
scenario_cli_basic() { simple cli_basic; }
scenario_cli_volume_implied() { simple cli_volume_implied; }
scenario_cli_volume_existing() {
    d volume create --label "$TL" "$P-pre" >/dev/null || { fail "volume create $P-pre (outside the session)"; return; }
    # shellcheck disable=SC2034 # read by check_run
    scenario_keeps=" $P-pre "
    simple cli_volume_existing
    expect "the volume that existed before the run is still there" quiet d volume inspect "$P-pre"
}
# The builds: the images may stay (images_may_stay: run keeps them by default), except with --images remove.
scenario_cli_build() { images_may_stay=1 simple cli_build; }
scenario_cli_build_image_removed() {
    # shellcheck disable=SC2034 # read by run_agent (clients.sh)
    run_opts=(--images remove)
    simple cli_build
}
scenario_cli_build_buildkit() { images_may_stay=1 simple cli_build_buildkit; }
scenario_cli_build_failed_run() { images_may_stay=1 simple cli_build_failed_run; }
scenario_cli_build_no_rm() { images_may_stay=1 simple cli_build_no_rm; }

# ---- docker-compose ------------------------------------------------------------------------------------------------
scenario_compose_up() { simple compose_up; }
# The command is SIGKILLed: run exits 128+9.
scenario_compose_kill() { simple compose_kill 137; }

# ---- the Python Docker SDK -----------------------------------------------------------------------------------------
scenario_python_sdk() { simple python_sdk; }

# ---- Testcontainers for Node ---------------------------------------------------------------------------------------
# node_install: the pinned packages of tests/clients/node/ (package-lock.json) in the cache, once per lock file;
# sets NODE_MODULES.
node_install() {
    local lock=$here/node/package-lock.json dir
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        fail "node and npm are installed"
        return 1
    fi
    dir=$cache/node-$(sha256sum "$lock" | head -c 16)
    mkdir -p "$cache" || return 1
    (
        flock 9
        [[ -e $dir/.installed ]] && exit 0
        rm -rf "$dir" && mkdir -p "$dir" && cp "$here/node/package.json" "$lock" "$dir/" &&
            (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts --cache "$cache/npm-cache" >npm.log 2>&1) &&
            touch "$dir/.installed"
    ) 9>"$cache/node.lock"
    expect "npm ci of tests/clients/node (node $(node --version))" test -e "$dir/.installed" || {
        tail -n 5 "$dir/npm.log" 2>/dev/null
        return 1
    }
    export NODE_MODULES=$dir/node_modules
}
scenario_testcontainers_exit() { node_install && TC_MODE="exit" simple testcontainers; }
scenario_testcontainers_kill() { node_install && TC_MODE="kill" simple testcontainers; }

# ---- Podman as the engine ------------------------------------------------------------------------------------------
# podman_start: a private `podman system service` (its own storage, run and network dirs under $W/podman) answering
# on $W/podman/podman.sock, with the test image loaded; engine points at it from then on.
podman_pid=''
podman_start() {
    local pd=$W/podman i
    command -v podman >/dev/null || { fail "podman is installed (apt-get install podman)"; return 1; }
    mkdir -p "$pd/net" "$pd/tmp" || return 1
    # Podman sets RLIMIT_NOFILE and RLIMIT_NPROC of a root container to 1048576 and more by default; where the
    # agent's tests run without CAP_SYS_RESOURCE (a CI container), runc cannot raise them ("error setting rlimit
    # type 7: operation not permitted"). Lower ones can always be set. Logs to files: where systemd is PID 1 podman's
    # default is journald, and its logs -f is refused there.
    printf '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\nlog_driver = "k8s-file"\n' >"$pd/containers.conf"
    podman_args=(--root "$pd/root" --runroot "$pd/run" --tmpdir "$pd/tmp" --storage-driver vfs
        --network-config-dir "$pd/net" --cgroup-manager cgroupfs --events-backend file)
    CONTAINERS_CONF=$pd/containers.conf podman "${podman_args[@]}" system service --time 0 "unix://$pd/podman.sock" \
        >"$pd/service.log" 2>&1 &
    podman_pid=$!
    local docker_engine=$engine
    engine=unix://$pd/podman.sock
    for ((i = 0; i < 300; i++)); do
        d version >/dev/null 2>&1 && break
        sleep 0.1
    done
    expect "podman system service answers" quiet d version || { tail -n 5 "$pd/service.log"; return 1; }
    docker -H "$docker_engine" save "$IMG" | d load >/dev/null
    expect "the test image is loaded into podman" quiet d image inspect "$IMG"
}
scenario_cleanup() {
    [[ -n $podman_pid ]] || return 0
    kill "$podman_pid" 2>/dev/null
    wait "$podman_pid" 2>/dev/null
    CONTAINERS_CONF=$W/podman/containers.conf podman "${podman_args[@]}" rm -a -f -t 0 >/dev/null 2>&1
    # The conmon of each exec outlives its container (--exit-delay 300): those of this service, by their pids.
    local f pids=()
    for f in /proc/[0-9]*/cmdline; do
        tr '\0' ' ' 2>/dev/null <"$f" | grep -q "^/usr/bin/conmon .*$W/podman/" && pids+=("${f//[^0-9]/}")
    done
    ((${#pids[@]} == 0)) || kill -9 "${pids[@]}" 2>/dev/null
    findmnt -rn -o TARGET | grep "^$W/" | sort -r | xargs -r umount -l
}
scenario_podman_cli() { podman_start && simple cli_basic; }
