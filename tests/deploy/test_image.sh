#!/bin/bash
# deploy/Dockerfile, built and run as deploy/README.md says, against the test engine ($DOCKER_HOST):
#   build   builds the image (its Debian 12 base images are made with debootstrap when the engine lacks them: Debian's
#           archive is the only registry here; the image installs the Debian package its build stage makes) and runs
#           `--version` in it
#   gc      runs the image's gc with the engine socket mounted and nothing else (--network none, read-only, no
#           capabilities): it removes the expired session's container (running and created), network and volume,
#           and leaves a keep=true one, an unexpired one of another host and an unlabeled one. The engine is a private
#           dockerd of this step (the image and the test image copied into it): gc on the shared engine would take a
#           developer's real leftovers and what other suites stage
#   clean   removes the containers, network and volume of this test, the image and every other image the build made
#           (the build stage's layers, and the base images when it imported them)
# ctest runs them as one fixture: build (alongside other suites), gc, clean.
# Usage: test_image.sh REPO BUILD_DIR build|gc|clean
set -uo pipefail
repo=$1 build=$2 step=$3
prog=test_image.sh
image=cleanup-agent:ctest
bases=(debian:12 debian:12-slim)
mirror=${AG_DEBIAN_MIRROR:-http://deb.debian.org/debian}
rootfs_tar=/var/cache/cleanup-agent/debian-12-minbase.tar
# For clean: the images there were before the build; every other one is the build's.
images_before=$build/deploy-image.before

# shellcheck source=tests/deploy/lib.sh
source "$repo/tests/deploy/lib.sh"
# The test label (tests/test_label.h: a namespace of its own, which the product never reads).
label=$(test_label_key "$repo")=deploy-image
die() { echo "$prog: $*" >&2; exit 1; }
engine_dir=''
finish() {
    private_engine_stop
    [[ -z $engine_dir ]] || rm -rf --one-file-system -- "$engine_dir"
    echo "$prog $step: $passed passed, $failed failed"
    ((failed == 0))
    exit
}

[[ -n ${DOCKER_HOST:-} ]] || die "DOCKER_HOST is not set: run through tests/run.sh, or export the test engine's socket"
docker version >/dev/null 2>&1 || die "no engine answers on $DOCKER_HOST; start it (tests/run.sh --env-only)"

# The Debian 12 rootfs as a tar, made once with debootstrap (minbase: apt, dpkg, bash; about 30 s) and cached.
make_rootfs_tar() {
    [[ -s $rootfs_tar ]] && return 0
    command -v debootstrap >/dev/null || { echo "debootstrap not found (apt-get install debootstrap)"; return 1; }
    local dir
    dir=$(mktemp -d /var/tmp/deploy-image-rootfs.XXXXXX) || return 1
    mkdir -p "$(dirname "$rootfs_tar")" || return 1
    if ! debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$build/deploy-image.debootstrap.log" 2>&1; then
        tail -n 5 "$build/deploy-image.debootstrap.log"
        rm -rf -- "$dir"
        return 1
    fi
    tar -C "$dir" -c . >"$rootfs_tar.tmp" && mv "$rootfs_tar.tmp" "$rootfs_tar"
    local rc=$?
    rm -rf -- "$dir"
    return $rc
}

do_build() {
    docker images -aq --no-trunc | sort -u >"$images_before"
    local b
    for b in "${bases[@]}"; do
        docker image inspect "$b" >/dev/null 2>&1 && continue
        if ! make_rootfs_tar; then fail "Debian 12 base image $b made with debootstrap"; finish; fi
        if docker import "$rootfs_tar" "$b" >/dev/null; then
            ok "base image $b imported from a debootstrap of $mirror"
        else
            fail "base image $b imported"
            finish
        fi
    done
    # --network host: the engine under test has no bridge, and the build stages fetch from Debian's archive.
    local log=$build/deploy-image.build.log t0=$SECONDS
    if docker build --network host -f "$repo/deploy/Dockerfile" -t "$image" "$repo" >"$log" 2>&1; then
        ok "docker build -f deploy/Dockerfile (in $((SECONDS - t0)) s; context $(sed -nE 's/^Sending build context to Docker daemon +//p' "$log"))"
    else
        fail "docker build -f deploy/Dockerfile" "$(tail -n 15 "$log")"
        finish
    fi
    # The first line, the version: the libcurl line names the image's own library, which may differ from the host's.
    local want got
    want=$("$build/cleanup-agent" --version | head -n 1)
    got=$(docker run --rm --network none "$image" --version 2>&1 | head -n 1)
    [[ $got == "$want" ]] && ok "the image's cleanup-agent --version: $got" || fail "the image's --version" "$got (want $want)"
    finish
}

hex32() { head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
# exists KIND ID / gone KIND ID: whether the engine still has the container, network or volume
exists() { docker "$1" inspect "$2" >/dev/null 2>&1; }
gone() { ! exists "$@"; }

do_gc() {
    docker image inspect "$image" >/dev/null 2>&1 || { fail "the image $image exists (built by the build step)"; finish; }
    engine_dir=$build/deploy-image-engine
    rm -rf --one-file-system -- "$engine_dir"
    private_engine_start "$engine_dir" || { fail "a private engine starts in $engine_dir"; finish; }
    if docker save "$image" cleanup-test/busybox:latest | docker -H "unix://$engine_dir/docker.sock" load -q >/dev/null; then
        ok "the image and the test image copied into a private engine (gc never runs on the shared one)"
    else
        fail "the image and the test image copied into the private engine"
        finish
    fi
    export DOCKER_HOST=unix://$engine_dir/docker.sock
    local now expired live
    now=$(date +%s)
    expired=$(hex32) live=$(hex32)
    # Another host's sessions on a shared engine: only the expiry rule can apply.
    local common=(--label "$label" --label io.cleanup-agent.managed=true --label io.cleanup-agent.host=another-runner
        --label io.cleanup-agent.boot-id=00000000-0000-0000-0000-000000000000 --label io.cleanup-agent.mode=run
        --label "io.cleanup-agent.created=$((now - 7200))")
    local exp=("${common[@]}" --label "io.cleanup-agent.session=$expired" --label "io.cleanup-agent.expires=$((now - 60))")
    local run=(--network none cleanup-test/busybox:latest sleep 600)
    local c_running c_created c_keep c_live c_foreign n_exp v_exp
    c_running=$(docker run -d "${exp[@]}" "${run[@]}") &&
        c_created=$(docker create "${exp[@]}" "${run[@]}") &&
        c_keep=$(docker run -d "${exp[@]}" --label io.cleanup-agent.keep=true "${run[@]}") &&
        c_live=$(docker create "${common[@]}" --label "io.cleanup-agent.session=$live" \
            --label "io.cleanup-agent.expires=$((now + 3600))" "${run[@]}") &&
        c_foreign=$(docker create --label "$label" "${run[@]}") &&
        n_exp=$(docker network create --internal "${exp[@]}" "deploy-image-$expired") &&
        v_exp=$(docker volume create "${exp[@]}") || { fail "the population is made"; finish; }

    local sock=${DOCKER_HOST#unix://} out rc=0
    [[ $sock != "$DOCKER_HOST" ]] || { fail "the test engine is on a Unix socket ($DOCKER_HOST)"; finish; }
    # As the Dockerfile's header and deploy/README.md say: the socket and nothing else.
    out=$(docker run --rm --network none --read-only --tmpfs /run/cleanup-agent:mode=0700 --cap-drop ALL \
        --security-opt no-new-privileges -v "$sock:/var/run/docker.sock" "$image" gc 2>&1) || rc=$?
    [[ $rc == 0 ]] && ok "gc in the image exits 0" || fail "gc in the image exits 0 (got $rc)" "$out"
    echo "$out" | sed 's/^/    /'
    expect "the expired running container is removed" gone container "$c_running"
    expect "gc names the running container" grep -q "${c_running:0:12}" <<<"$out"
    expect "the expired created container is removed" gone container "$c_created"
    expect "gc names the created container" grep -q "${c_created:0:12}" <<<"$out"
    expect "the expired network is removed" gone network "$n_exp"
    expect "the expired volume is removed" gone volume "$v_exp"
    expect "keep=true stays, running" test "$(docker inspect -f '{{.State.Running}}' "$c_keep" 2>&1)" == true
    expect "an unexpired session of another host stays" exists container "$c_live"
    expect "a container without a session label stays" exists container "$c_foreign"
    expect "gc says the rule: expired" grep -q expired <<<"$out"
    finish
}

# descends_from_base ID BASE_IDS: whether ID is one of BASE_IDS or has one among its parents.
descends_from_base() {
    local id=$1 base_ids=$2
    while [[ -n $id ]]; do
        grep -qxF -- "$id" <<<"$base_ids" && return 0
        id=$(docker image inspect -f '{{.Parent}}' "$id" 2>/dev/null) || return 1
    done
    return 1
}
# build_made: the images new since the build that are the Debian bases or descend from them, one id a line.
build_made() {
    local base_ids id
    base_ids=$(for b in "${bases[@]}"; do docker image inspect -f '{{.Id}}' "$b" 2>/dev/null; done)
    [[ -n $base_ids ]] || base_ids=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null)
    for id in $(comm -13 "$images_before" <(docker images -aq --no-trunc | sort -u)); do
        descends_from_base "$id" "$base_ids" && echo "$id"
    done
}
do_clean() {
    local kind ids all force
    for kind in container network volume; do
        all=() force=()
        [[ $kind == container ]] && all=(-a) force=(-f)
        ids=$(docker "$kind" ls -q "${all[@]}" --filter "label=$label")
        # shellcheck disable=SC2086 # one id per word
        [[ -z $ids ]] || docker "$kind" rm "${force[@]}" $ids >/dev/null || fail "this test's ${kind}s removed"
    done
    docker image inspect "$image" >/dev/null 2>&1 && { docker rmi "$image" >/dev/null || fail "$image removed"; }
    # The build's other images (the build stage's layers, imported bases), children before parents: each pass
    # removes what nothing depends on any more. Only images new since the build that descend from a Debian base:
    # other suites build from busybox at the same time, and their intermediate images are new too.
    if [[ -f $images_before ]]; then
        local left pass
        for ((pass = 0; pass < 30; pass++)); do
            left=$(build_made)
            [[ -n $left ]] || break
            # shellcheck disable=SC2086
            docker rmi $left >/dev/null 2>&1 || true
        done
        [[ -z $left ]] && ok "the images the build made are removed" || fail "the images the build made are removed" "$left"
    fi
    rm -f -- "$images_before"
    finish
}

case $step in
build) do_build ;;
gc) do_gc ;;
clean) do_clean ;;
*) die "usage: $prog REPO BUILD_DIR build|gc|clean" ;;
esac
