# shellcheck shell=bash disable=SC2154 # prog, work and packages: set by the caller (below)
# deploy/env.sh: brings up what cleanup-agent's quick start and test command need on a Debian 12 host, as root:
# the packages, a Docker engine (started only when none answers; the caller stops it with stop_engine), and the
# cleanup-test/busybox:latest image built from Debian's static busybox (there is no registry to pull from).
# Sourced by tests/run.sh and deploy/quickstart.sh. The caller sets, before sourcing:
#   prog       its name, for messages
#   work       a temp dir it removes at exit
#   packages   the Debian packages it needs (array)
# and installs env_on_exit as its EXIT trap (it stops an engine it started and removes $work).
# Environment: DOCKER_HOST=unix:///path (default /var/run/docker.sock); AG_ENGINE_ROOT=DIR starts a private engine
# under DIR when none answers; AG_ENGINE_WAIT=SEC (default 60).

engine_pid=""      # set only when this script started the engine
policy_installed=0 # set while our temporary policy-rc.d keeps apt from starting services

socket=/var/run/docker.sock
if [[ -n ${DOCKER_HOST:-} ]]; then
    [[ $DOCKER_HOST == unix://* ]] || { echo "$prog: DOCKER_HOST=$DOCKER_HOST: only unix:// sockets are supported" >&2; exit 2; }
    socket=${DOCKER_HOST#unix://}
fi
engine_dir=${AG_ENGINE_ROOT:-}
pidfile=${engine_dir:+$engine_dir/docker.pid}
pidfile=${pidfile:-/var/run/docker.pid}
image=cleanup-test/busybox:latest

note() { printf '%s: %s\n' "$prog" "$*"; }

# --- packages --------------------------------------------------------------------------------------------------
missing_packages() {
    local p
    for p in "${packages[@]}"; do
        [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null) == ii* ]] || echo "$p"
    done
}

# apt_install [APT-OPTION...] -- PACKAGE...: apt-get update and install (no recommends), three attempts. Packages must
# not start services here (docker.io would start an engine with other flags than ours); a policy-rc.d of our own
# sees to that, unless the machine already has one.
apt_install() {
    local apt=(apt-get -q -y -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef
        -o Dpkg::Options::=--force-confold)
    while [[ $1 != -- ]]; do apt+=("$1"); shift; done
    shift
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\n# temporary, from cleanup-agent tests/run.sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        policy_installed=1
    fi
    local attempt ok=0
    for attempt in 1 2 3; do
        if DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 "${apt[@]}" update &&
            DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 "${apt[@]}" install --no-install-recommends \
                "$@" </dev/null; then
            ok=1
            break
        fi
        note "apt-get failed (attempt $attempt of 3)"
        sleep $((attempt * 5))
    done
    if ((policy_installed)); then
        rm -f /usr/sbin/policy-rc.d
        policy_installed=0
    fi
    ((ok))
}

install_packages() {
    local missing
    mapfile -t missing < <(missing_packages)
    if ((${#missing[@]} == 0)); then
        echo "all ${#packages[@]} packages are installed"
        return 0
    fi
    if ((EUID != 0)); then
        echo "$prog: missing packages (run as root, or: apt-get install ${missing[*]})" >&2
        return 1
    fi
    echo "installing: ${missing[*]}"
    apt_install -- "${missing[@]}" || { echo "$prog: could not install: ${missing[*]}" >&2; return 1; }
    mapfile -t missing < <(missing_packages)
    ((${#missing[@]} == 0)) || { echo "$prog: still missing after apt-get: ${missing[*]}" >&2; return 1; }
}

# --- the Docker engine -------------------------------------------------------------------------------------
# Debian's client matches Debian's engine; a newer one elsewhere in PATH also works (it negotiates).
docker_bin=/usr/bin/docker
docker_cli() {
    [[ -x $docker_bin ]] || docker_bin=docker
    timeout 120 "$docker_bin" -H "unix://$socket" "$@"
}

engine_answers() {
    [[ -S $socket ]] || return 1
    [[ -x $docker_bin ]] || docker_bin=docker
    timeout 10 "$docker_bin" -H "unix://$socket" version --format '{{.Server.APIVersion}}' >/dev/null 2>&1
}

start_engine() {
    if engine_answers; then
        echo "an engine answers on $socket (API $(docker_cli version --format '{{.Server.APIVersion}}')): using it, leaving it running"
        return 0
    fi
    if ((EUID != 0)); then
        echo "$prog: no Docker engine answers on $socket, and starting one needs root" >&2
        return 1
    fi
    command -v dockerd >/dev/null || { echo "$prog: dockerd not found (apt-get install docker.io)" >&2; return 1; }

    # A dockerd killed earlier leaves its pid file behind and the next one refuses to start. Remove the file only
    # when its pid is not a running dockerd; a live one that does not answer is not ours to touch.
    if [[ -e $pidfile ]]; then
        local old
        old=$(tr -dc '0-9' <"$pidfile" 2>/dev/null || true)
        if [[ -n $old ]] && [[ $(cat "/proc/$old/comm" 2>/dev/null) == dockerd ]]; then
            echo "dockerd pid $old (from $pidfile) is running but not answering on $socket; waiting for it"
            if wait_for_engine "" 30; then return 0; fi
            echo "$prog: dockerd pid $old holds $pidfile but does not answer on $socket; not touching it" >&2
            return 1
        fi
        echo "removing stale $pidfile (pid '${old:-?}' is not a running dockerd)"
        rm -f -- "$pidfile"
    fi

    local args=(--iptables=false --ip6tables=false --bridge=none --storage-driver=vfs -H "unix://$socket"
        --pidfile "$pidfile")
    if [[ -n $engine_dir ]]; then
        mkdir -p "$engine_dir"
        args+=(--data-root "$engine_dir/data" --exec-root "$engine_dir/exec")
    fi
    echo "starting: dockerd ${args[*]}"
    # Its own session, so a Ctrl-C in the terminal reaches this script (which stops it) and not the engine.
    setsid dockerd "${args[@]}" </dev/null >"$work/dockerd.log" 2>&1 &
    engine_pid=$!
    if ! wait_for_engine "$engine_pid" "${AG_ENGINE_WAIT:-60}"; then
        echo "----- dockerd log (last 40 lines) -----" >&2
        tail -n 40 "$work/dockerd.log" >&2 || true
        echo "$prog: the Docker engine did not come up on $socket" >&2
        return 1
    fi
}

# wait_for_engine PID SEC: until the socket answers; fails early when PID (if given) has exited.
wait_for_engine() {
    local pid=$1 limit=$2 start=$SECONDS
    while ((SECONDS - start < limit)); do
        if engine_answers; then
            echo "engine answers on $socket after $((SECONDS - start)) s"
            return 0
        fi
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
            local rc=0
            wait "$pid" || rc=$?
            engine_pid=""
            echo "$prog: dockerd exited with status $rc before answering" >&2
            return 1
        fi
        sleep 0.2
    done
    echo "$prog: no answer on $socket within $limit s" >&2
    return 1
}

stop_engine() {
    [[ -n $engine_pid ]] || return 0
    local pid=$engine_pid
    engine_pid=""
    note "stopping the Docker engine it started (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || return 0
    local i
    for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        note "dockerd (pid $pid) ignored SIGTERM for 30 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# --- the test image ----------------------------------------------------------------------------------------
# The test image has no registry to come from: it is Debian's static busybox with its applet links. It carries a
# recipe label; an image under that name without the current label (made by hand, or by an older recipe) is
# replaced, so every run tests against the same image. Bump the label when the recipe changes.
image_recipe=busybox-v1
import_image() {
    local have
    have=$(docker_cli image inspect --format '{{index .Config.Labels "io.cleanup-test.image"}}' "$image" 2>/dev/null ||
        true)
    if [[ $have == "$image_recipe" ]]; then
        echo "$image is present ($image_recipe)"
    else
        if docker_cli image inspect "$image" >/dev/null 2>&1; then
            echo "replacing $image: it lacks the label io.cleanup-test.image=$image_recipe of this recipe"
        fi
        local rootfs=$work/rootfs bb
        bb=$(command -v busybox || true)
        [[ -n $bb ]] || { echo "$prog: busybox not found (apt-get install busybox-static)" >&2; return 1; }
        mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,proc,sys,dev,root} || return 1
        chmod 755 "$rootfs" # mktemp's 0700 must not become the image's /: non-root containers need to traverse it
        chmod 1777 "$rootfs/tmp"
        chmod 700 "$rootfs/root"
        cp "$bb" "$rootfs/bin/busybox" || return 1
        local applet
        for applet in $("$rootfs/bin/busybox" --list-full); do
            [[ -e $rootfs/$applet ]] || ln -s /bin/busybox "$rootfs/$applet"
        done
        printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
            >"$rootfs/etc/passwd"
        printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
        echo "importing $image from $bb"
        tar -C "$rootfs" --numeric-owner --owner=0 --group=0 -c . |
            docker_cli import --change "LABEL io.cleanup-test.image=$image_recipe" --change 'CMD ["/bin/sh"]' \
                - "$image" >/dev/null || {
            echo "$prog: docker import of $image failed" >&2
            return 1
        }
        rm -rf -- "$rootfs"
    fi
}

# The EXIT trap of the scripts that source this file: stop what they started, remove what they made.
env_on_exit() {
    local rc=$?
    stop_engine
    if ((policy_installed)); then rm -f /usr/sbin/policy-rc.d; fi
    rm -rf -- "$work"
    exit "$rc"
}
