#!/bin/bash
# tests/run.sh: the test command. As root on a fresh Debian 12 machine it, by itself:
#   1. installs what is missing (apt-get): the distribution's packages, its docker.io engine among them,
#   2. brings up the real things: a Docker engine (started here only when none answers, stopped at the end only
#      if started here), the cleanup-test/busybox:latest image, and a check that the cgroup v2 VM boots (its kernel
#      is unpacked from linux-image-cloud-amd64 into a cache, never installed: tests/vm/vm-kernel.sh),
#   2b. builds (or takes from its cache) the Debian 12 systemd image in the background from the start
#      (tests/vm/systemd-vm.sh), so that it overlaps the builds and the suites of build/,
#   3. builds twice: build/ (-DAG_WERROR=ON) and build-asan/ (-DAG_WERROR=ON -DAG_SANITIZE=ON), both linking the
#      system's libcurl (libcurl4-openssl-dev),
#   4. runs ctest on both (every label on build/; unit, docker and cgroup on build-asan/); on build/ the cgroup
#      label (-j1) and then the chaos label (alone on the engine, -j1) run last, after the other suites, and the
#      systemd label runs in that VM at the same time (its suites use the VM's own engine; all of them mostly wait),
#      the VM stopped after it (one VM at a time); a label or a selection with no test in a build
#      fails (tests/run-lib.sh), and a sentinel (a dead session's container without the test label, planted before
#      the suites, removed at the end) must survive every suite: tests run gc only on what is their own,
#   5. builds the Debian package in a copy of the tree and runs lintian on it (tests/package/build-deb.sh), in the
#      background of the host suites of build/, so that the systemd label installs it in the VM and runs its suites
#      against the installed /usr/bin/cleanup-agent,
#   6. builds the libFuzzer targets in build-fuzz/ (clang, -DAG_FUZZ=ON) and runs each for 10 seconds, one at a
#      time (tests/fuzz/run-fuzzers.sh), beside the cgroup suites of build-asan/: a crash, a sanitizer report, a leak
#      or a timeout fails the run. The build-asan/ and build-fuzz/ builds run in the background of the chaos suites,
#      at a lower priority.
# It exits 0 only when every step passed. An engine or a VM that cannot be brought up is a failure, never a skip.
#
# Options:  --env-only   steps 1 and 2 only (bring the environment up, check it, tear down what was started)
#           --host-only  everything but what needs qemu: no cgroup v2 VM boot check, no ctest label vm, no Debian 12
#                        systemd image, boot or label systemd. For a run inside the Debian 12 image itself
#                        (tests/vm/systemd-vm.sh, a stock host: systemd PID 1, pure cgroup v2), where qemu cannot nest
#                        under TCG. The rest runs as usual (packages, engine, sentinel, build/, the package, chaos,
#                        build-asan/, fuzz); the summary names what was left out and how many tests that is.
# Environment (optional):
#   DOCKER_HOST=unix:///path   the engine's socket (default /var/run/docker.sock)
#   AG_ENGINE_ROOT=DIR         start a private engine under DIR (its own data root, exec root and pid file) when
#                              none answers; for testing this script next to a host engine
#   AG_ENGINE_WAIT=SEC         how long to wait for a started engine to answer (default 60)
#   AG_FUZZ_TIME=SEC           seconds per fuzz target (default 10)
#   AG_TIMEOUT_SCALE=N         multiplies every time limit of the suites (default 1), for a slow host: the test
#                              command inside the Debian 12 image under qemu without KVM (tests/systemd/stock-host.sh)
#   ASAN_OPTIONS, UBSAN_OPTIONS override the defaults used for build-asan/
set -euo pipefail

prog=tests/run.sh
repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

env_only=0
host_only=0
for arg in "$@"; do
    case $arg in
    --env-only) env_only=1 ;;
    --host-only) host_only=1 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "$prog: unknown option '$arg' (try --help)" >&2; exit 2 ;;
    esac
done

say() { printf '\n==> %s\n' "$*"; }
packages=(build-essential dpkg-dev cmake ninja-build pkg-config libcurl4-openssl-dev libcjson-dev libcriterion-dev
    libsystemd-dev
    docker.io busybox-static qemu-system-x86 cpio libhttp-parser-dev clang libclang-rt-14-dev shellcheck
    systemd python3-yaml python3-pyhcl docker-compose time iproute2 debootstrap python3-docker podman
    openssh-client e2fsprogs debhelper scdoc lintian man-db git curl)
# Testcontainers for Node (tests/clients): Debian's nodejs and npm, unless a node with its npm is there already
# (NodeSource's nodejs bundles npm and conflicts with Debian's npm package).
command -v npm >/dev/null || packages+=(nodejs npm)

work=$(mktemp -d "${TMPDIR:-/tmp}/cleanup-agent-tests.XXXXXX")
# Steps 1 and 2 (packages, the Docker engine, the test image) are shared with deploy/quickstart.sh.
# shellcheck source-path=SCRIPTDIR/.. source=deploy/env.sh
source "$repo/deploy/env.sh"
# The guards: every label of every build has tests, and the sentinel every suite must leave alone.
# shellcheck source=tests/run-lib.sh
source "$repo/tests/run-lib.sh"
failures=()        # one line per failed step
phase_names=()
phase_secs=()
# The sanitizers' options for build-asan/'s suites only (test_asan), the caller's or these.
asan_options=${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=0:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}
ubsan_options=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
unset ASAN_OPTIONS UBSAN_OPTIONS
passed_total=0
failed_total=0

# The sentinel goes first, while the engine still answers; env_on_exit reads the exit status from $?.
run_on_exit() {
    local rc=$?
    sentinel_remove
    local pid
    for pid in "${bg_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ -n $side_pid ]]; then wait "$side_pid" 2>/dev/null || true; fi
    if [[ -n $systemd_tests_pid ]]; then wait "$systemd_tests_pid" 2>/dev/null || true; fi
    systemd_vm_stop
    (exit "$rc")
    env_on_exit
}
trap run_on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# phase NAME CMD...: runs one step, records its time, and records a failure instead of stopping, so one run
# reports everything that is wrong.
phase() {
    local name=$1
    shift
    say "$name"
    local start=$SECONDS rc=0
    "$@" || rc=$?
    phase_names+=("$name")
    phase_secs+=($((SECONDS - start)))
    if ((rc != 0)); then
        failures+=("$name")
        note "FAILED: $name"
    fi
    return "$rc"
}

# The proof the docker suites need: a container from the image runs without a network, under memory and pids
# limits, as root and as an unprivileged user.
check_image() {
    import_image || return 1
    local out
    check_containers_gone=1
    out=$(docker_cli run --rm --network none --memory 64m --pids-limit 64 --label io.cleanup-test=env-check \
        "$image" /bin/sh -c 'echo container-ok') || true
    if [[ $out != container-ok ]]; then
        echo "$prog: the engine on $socket cannot run a container from $image (got '${out}')" >&2
        return 1
    fi
    out=$(docker_cli run --rm --network none --user 65534:65534 --init --label io.cleanup-test=env-check \
        "$image" /bin/sh -c 'test -x /bin/busybox && echo user-ok') || true
    if [[ $out != user-ok ]]; then
        echo "$prog: a non-root container (--init --user 65534) from $image does not run (got '${out}')" >&2
        return 1
    fi
    echo "containers from $image run (as root, and as user 65534 with --init)"
}

# --rm does not remove a container that failed to start; sweep what the checks above left, by their label.
remove_check_containers() {
    local ids
    ids=$(docker_cli ps -aq --filter label=io.cleanup-test=env-check 2>/dev/null || true)
    if [[ -n $ids ]]; then
        # shellcheck disable=SC2086 # one id per word
        docker_cli rm -f $ids >/dev/null 2>&1 || true
    fi
}

# The VM suites need qemu, the cloud kernel (unpacked into a cache on first use) and busybox; booting a trivial binary
# proves all three.
check_vm() {
    local rc=0
    tests/vm/run-in-vm.sh /bin/true 2>&1 | tee "$work/vm-check.log" || rc=$?
    vm_timing=$(sed -n 's/^run-in-vm: PASS true (\(.*\))$/\1/p' "$work/vm-check.log")
    return "$rc"
}

# The Debian 12 systemd VM (tests/vm/systemd-vm.sh): the image built or taken from the cache in the background from
# the start (on a fresh machine, debootstrap and apt take minutes: they overlap the builds and the suites of build/),
# then booted once those and the vm label are done (one VM at a time: the vm label boots its own); systemd_vm_wait
# says how that went. An image that cannot be built or a VM that does not boot fails the run, never a skip.
systemd_vm_pid=""
systemd_vm_start() {
    tests/vm/systemd-vm.sh image >"$work/systemd-vm.log" 2>&1 &
    systemd_vm_pid=$!
}
systemd_vm_wait() {
    local rc=0
    wait "$systemd_vm_pid" || rc=$?
    systemd_vm_pid=""
    if ((rc == 0)); then tests/vm/systemd-vm.sh boot >>"$work/systemd-vm.log" 2>&1 || rc=$?; fi
    cat "$work/systemd-vm.log"
    if ((rc != 0)); then
        echo "$prog: the Debian 12 systemd VM could not be built or booted (above)" >&2
        return 1
    fi
    systemd_timing=$(grep -a '^boot: ' "$work/systemd-vm.log" | tail -n 1 || true)
}
systemd_vm_stop() {
    ((!host_only)) || return 0
    if [[ -n $systemd_vm_pid ]]; then wait "$systemd_vm_pid" 2>/dev/null || true; fi
    tests/vm/systemd-vm.sh stop 2>/dev/null || true
}

# bg_start NAME CMD...: runs CMD in the background, its output in $work/NAME.log; bg_wait NAME waits for it, prints
# that log and returns CMD's status (1 when it was not started). The package (tests/package/build-deb.sh) builds in
# the background of the host suites of build/ (they wait on the engine and the VM more than on the CPU); the systemd
# label installs it, so it is waited for before that label. The fuzz targets run one at a time in the background of
# the sanitizer build's cgroup suites, which run one at a time and mostly wait.
declare -A bg_pids=()
bg_start() {
    local name=$1
    shift
    "$@" >"$work/$name.log" 2>&1 &
    bg_pids[$name]=$!
}
bg_wait() {
    local name=$1 rc=0
    [[ -n ${bg_pids[$name]:-} ]] || return 1
    wait "${bg_pids[$name]}" || rc=$?
    unset "bg_pids[$name]"
    cat "$work/$name.log"
    return "$rc"
}

# The systemd label in the VM booted above, one suite at a time; the fixture stops the VM after the last. It runs
# in the background of the host's cgroup and chaos suites (systemd_tests_start), from build/tests/systemd/ so that
# the two ctest runs keep their Testing/ files apart; systemd_tests_wait prints its output and adds its counts to the
# totals.
systemd_tests_pid=""
test_systemd() {
    local rc=0 dir=build/tests/systemd
    require_label build systemd || return 1
    echo "--- build/: systemd (-j1, in the Debian 12 VM)"
    ctest_group "$dir" 1 systemd -L '^systemd$' || rc=1
    grep -ah -e '^  cleanup-agent run -- true: ' -e '^boot: ' "$dir/Testing/Temporary/LastTest.log" 2>/dev/null || true
    return "$rc"
}
systemd_tests_start() {
    (
        # shellcheck disable=SC2030 # counted here from 0; systemd_tests_wait adds them to the run's
        passed_total=0 failed_total=0 rc=0
        test_systemd >"$work/systemd-tests.log" 2>&1 || rc=$?
        echo "$rc $passed_total $failed_total" >"$work/systemd-tests.result"
    ) &
    systemd_tests_pid=$!
}
systemd_tests_wait() {
    [[ -n $systemd_tests_pid ]] || return 1
    wait "$systemd_tests_pid" || true
    systemd_tests_pid=""
    cat "$work/systemd-tests.log"
    local rc=1 passed=0 failed=1
    read -r rc passed failed <"$work/systemd-tests.result" || true
    # shellcheck disable=SC2031 # the run's own counts, which the subshell above did not touch
    passed_total=$((passed_total + passed)) failed_total=$((failed_total + failed))
    return "$rc"
}

# --- 3. and 4. builds and tests ------------------------------------------------------------------------------
# configure DIR -D...: Ninja for a new build dir; an existing one keeps the generator it was made with.
configure() {
    local dir=$1
    shift
    local gen=(-G Ninja)
    [[ ! -f $dir/CMakeCache.txt ]] || gen=()
    cmake -S "$repo" -B "$dir" "${gen[@]}" -DAG_TESTS=ON -DAG_TIMEOUT_SCALE="${AG_TIMEOUT_SCALE:-1}" "$@"
}

# build DIR: builds everything it can (keep going past a failed target, so the tests of the rest still run).
build() {
    local dir=$1 keep=()
    grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$dir/CMakeCache.txt" && keep=(-- -k 0)
    cmake --build "$dir" "${keep[@]}"
}

build_normal() {
    configure build -DAG_WERROR=ON -DAG_SANITIZE=OFF || return 1
    configured+=(build)
    build build || return 1
    [[ -x build/cleanup-agent ]] || { echo "$prog: the build did not produce build/cleanup-agent" >&2; return 1; }
}

build_asan() {
    configure build-asan -DAG_WERROR=ON -DAG_SANITIZE=ON || return 1
    configured+=(build-asan)
    build build-asan
}

# ctest_group DIR JOBS WHAT LABEL-ARGS...: one ctest run; adds its counts to the totals. A selection that runs no test
# fails, naming WHAT and DIR (an empty cgroup or sanitizer set must not pass).
ctest_group() {
    local dir=$1 jobs=$2 what=$3
    shift 3
    local log=$work/ctest.$BASHPID.log rc=0 # one per process: the systemd group runs beside others
    if ! require_selection "$dir" "$what" "$@"; then
        failed_total=$((failed_total + 1))
        return 1
    fi
    rm -f "$dir/Testing/Temporary/LastTest.log" # reject_skips reads this run's, or none
    # pipefail: the pipeline's status is ctest's.
    ctest --test-dir "$dir" --output-on-failure --no-tests=error -j "$jobs" "$@" 2>&1 | tee "$log" || rc=$?
    local line total failed
    line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1 || true)
    if [[ -n $line ]]; then
        failed=$(sed -E 's/.* ([0-9]+) tests? failed out of.*/\1/' <<<"$line")
        total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")
        passed_total=$((passed_total + total - failed))
        failed_total=$((failed_total + failed))
    elif ((rc != 0)); then
        failed_total=$((failed_total + 1)) # ctest itself failed before running anything
    fi
    # A Criterion test that skipped passed in ctest's eyes: here every test must run (--host-only lists them with
    # what it leaves out).
    local skips l
    if ! skips=$(reject_skips "$dir"); then
        echo "$skips"
        if ((host_only)); then
            while IFS= read -r l; do left_out+=("$dir/: ${l#criterion: }"); done <<<"$skips"
        else
            echo "$prog: $dir/: a test skipped (above): on this host every test must run" >&2
            failed_total=$((failed_total + 1))
            rc=1
        fi
    fi
    return "$rc"
}

test_normal() {
    local rc=0
    require_label build unit || rc=1
    require_label build docker || rc=1
    require_label build vm || rc=1
    require_label build lint || rc=1
    # The VM suites one at a time (they are RUN_SERIAL too); the rest but cgroup two at a time. The host cgroup
    # suites run after them, one at a time, beside the systemd VM (test_cgroup).
    echo "--- build/: all labels but cgroup, vm and chaos (-j2)"
    ctest_group build 2 "all but cgroup, vm, systemd and chaos" -LE '^(cgroup|vm|systemd|chaos)$' || rc=1
    if ((host_only)); then
        left_out+=("ctest label vm on build/: $(ctest_selected build -L '^vm$') tests (they boot qemu)")
        return "$rc"
    fi
    echo "--- build/: vm (-j1)"
    ctest_group build 1 vm -L '^vm$' || rc=1
    # ctest keeps a passing test's output to itself; the harness's timing line is worth seeing.
    grep -ah '^run-in-vm: ' build/Testing/Temporary/LastTest.log 2>/dev/null || true
    return "$rc"
}

# The host cgroup suites, one at a time: they count and signal the processes of this host's cgroup tree. They run
# beside the systemd label (its VM is one qemu process here), as chaos does after them.
test_cgroup() {
    require_label build cgroup || return 1
    echo "--- build/: cgroup (-j1)"
    ctest_group build 1 cgroup -L '^cgroup$'
}

# Fault injection, alone and one test at a time: gc and the next start collect every dead session on the engine,
# including the ones the docker suites stage on purpose. Its result lines are kept for tests/chaos/reliability.sh.
test_chaos() {
    local rc=0
    require_label build chaos || return 1
    export CHAOS_RESULTS=$work/chaos-results.txt
    : >"$CHAOS_RESULTS"
    echo "--- build/: chaos (-j1, alone)"
    ctest_group build 1 chaos -L '^chaos$' || rc=1
    unset CHAOS_RESULTS
    echo "--- chaos results (tests/chaos/reliability.sh --from FILE turns them into docs/RELIABILITY.md)"
    cat "$work/chaos-results.txt"
    cp "$work/chaos-results.txt" build/chaos-results.txt 2>/dev/null || true
    return "$rc"
}

# test_asan LABEL...: the sanitizer build's suites of those labels (unit and docker two at a time; cgroup one at a
# time, beside the fuzz targets).
test_asan() {
    local rc=0 jobs=2 exclude='^(cgroup|vm)$' label
    if [[ $1 == cgroup ]]; then jobs=1 exclude='^vm$'; fi
    local -x ASAN_OPTIONS=$asan_options UBSAN_OPTIONS=$ubsan_options
    echo "ASAN_OPTIONS=$ASAN_OPTIONS"
    echo "UBSAN_OPTIONS=$UBSAN_OPTIONS"
    for label in "$@"; do require_label build-asan "$label" || rc=1; done
    local labels
    labels=$(IFS='|' && echo "$*")
    echo "--- build-asan/: $* (-j$jobs)"
    ctest_group build-asan "$jobs" "$*" -L "^($labels)\$" -LE "$exclude" || rc=1
    return "$rc"
}

# The fuzz targets: a clang build of their own (libFuzzer needs clang's runtime, libclang-rt-14-dev): the fuzz_all
# target and the binary (the rest of the project is built and tested by gcc above).
build_fuzz() {
    configure build-fuzz -DCMAKE_C_COMPILER=clang -DAG_FUZZ=ON -DAG_TESTS=OFF -DAG_WERROR=ON || return 1
    # and the binary: the whole agent compiles under clang's -Werror too, not only the parsers.
    cmake --build build-fuzz --target fuzz_all cleanup-agent
}

run_fuzz() {
    tests/fuzz/run-fuzzers.sh --build-dir build-fuzz --time "${AG_FUZZ_TIME:-10}" --jobs 1
}

# The sanitizer and fuzz builds run in the background of the chaos suites (which mostly wait for the engine and for
# their kills), at a lower priority, as the package does in the background of the host suites. Each build's log and
# status go to $work/side-<name>.{log,rc}; side_builds_wait NAME prints the log and returns the status.
side_pid=""
side_builds_start() {
    (
        renice -n 10 -p "$BASHPID" >/dev/null || true
        local rc=0
        build_asan >"$work/side-asan.log" 2>&1 || rc=$?
        echo "$rc" >"$work/side-asan.rc"
        [[ " ${configured[*]} " != *" build-asan "* ]] || touch "$work/side-asan.configured"
        rc=0
        build_fuzz >"$work/side-fuzz.log" 2>&1 || rc=$?
        echo "$rc" >"$work/side-fuzz.rc"
    ) &
    side_pid=$!
}
side_builds_wait() {
    local name=$1
    [[ -z $side_pid ]] || wait "$side_pid" || true
    side_pid=""
    cat "$work/side-$name.log" 2>/dev/null
    [[ $(cat "$work/side-$name.rc" 2>/dev/null) == 0 ]]
}

# --- main ----------------------------------------------------------------------------------------------------
run_start=$SECONDS
note "repo $repo, $(uname -r), $(nproc) CPUs, running as $(id -un)"

if ! phase "packages" install_packages; then
    # Nothing below can work without them.
    note "FAIL: required packages are missing"
    exit 1
fi
export DOCKER_HOST="unix://$socket"
check_containers_gone=0
engine_ready=0
phase "docker engine" start_engine && phase "test image" check_image && engine_ready=1 || true
if ((check_containers_gone)); then remove_check_containers; fi
left_out=() # what --host-only leaves out, said in the summary
if ((host_only)); then
    note "--host-only: no qemu (the vm boot check, the vm and systemd labels, the systemd image are left out)"
    left_out+=("the cgroup v2 VM boot check (tests/vm/run-in-vm.sh)" "the Debian 12 systemd image and its boot")
else
    phase "vm boot" check_vm || true
    systemd_vm_start
fi
if ((env_only && !host_only)); then
    phase "systemd vm (image and boot)" systemd_vm_wait || true
    systemd_vm_stop
fi

if ((!env_only)); then
    # Tests run after a failed build too, when this run configured it: a test whose binary is missing counts as
    # failed, and the others still say what works.
    configured=()
    if ((engine_ready)); then phase "sentinel planted" sentinel_plant || true; fi
    phase "build (build/, AG_WERROR)" build_normal || true
    bg_start build-deb tests/package/build-deb.sh
    if [[ " ${configured[*]} " == *" build "* ]]; then phase "tests (build/)" test_normal || true; fi
    # The Debian package, built in a copy of the tree and checked by lintian (build-deb/, see its header); the phase's
    # time is the wait after the host suites, its own times are in its lines ("built ... in", "lintian in").
    deb_ok=0
    phase "package (dpkg-buildpackage, lintian; waited for)" bg_wait build-deb && deb_ok=1 || true
    systemd_ok=0
    if ((host_only)); then
        left_out+=("ctest label systemd on build/: $(ctest_selected build -L '^systemd$') tests (they boot qemu)")
    else
        phase "systemd vm (image and boot)" systemd_vm_wait && systemd_ok=1 || true
    fi
    # Without the package the systemd suites have nothing to install (their fixture would only build it again).
    if ((systemd_ok && deb_ok)) && [[ " ${configured[*]} " == *" build "* ]]; then systemd_tests_start; fi
    if [[ " ${configured[*]} " == *" build "* ]]; then
        phase "tests (build/, cgroup; beside systemd)" test_cgroup || true
    fi
    phase "sentinel kept (build/)" sentinel_check "the suites of build/" || true
    side_builds_start
    if [[ " ${configured[*]} " == *" build "* ]]; then phase "chaos (build/)" test_chaos || true; fi
    phase "sentinel kept (chaos)" sentinel_check "the chaos suites" || true
    # The phase's time is the wait after chaos; the suites' own times are in their lines.
    if [[ -n $systemd_tests_pid ]]; then
        phase "tests (build/, systemd; beside cgroup and chaos, waited for)" systemd_tests_wait || true
    fi
    systemd_vm_stop
    # The builds' phases below are the waits after chaos (their own times are in their logs), the fuzz phase the wait
    # after the cgroup suites of build-asan/ (its targets' times are in its lines).
    phase "build (build-asan/, AG_SANITIZE; waited for)" side_builds_wait asan || true
    [[ ! -e $work/side-asan.configured ]] || configured+=(build-asan)
    asan=0
    [[ " ${configured[*]} " != *" build-asan "* ]] || asan=1
    if ((asan)); then phase "tests (build-asan/, unit and docker)" test_asan unit docker || true; fi
    if phase "build (build-fuzz/, clang libFuzzer; waited for)" side_builds_wait fuzz; then bg_start fuzz run_fuzz; fi
    if ((asan)); then phase "tests (build-asan/, cgroup; beside fuzz)" test_asan cgroup || true; fi
    phase "sentinel kept (build-asan/)" sentinel_check "the suites of build-asan/" || true
    if [[ -n ${bg_pids[fuzz]:-} ]]; then
        phase "fuzz (${AG_FUZZ_TIME:-10} s per target; waited for)" bg_wait fuzz || true
    fi
fi

if ((${#failures[@]})) && [[ -n $engine_pid && -s $work/dockerd.log ]]; then
    say "dockerd log (last 30 lines), since something failed"
    tail -n 30 "$work/dockerd.log" || true
fi
sentinel_remove
stop_engine # here rather than only in the exit trap, so the summary below is the last thing printed

say "summary"
for i in "${!phase_names[@]}"; do
    status=ok
    for f in "${failures[@]+"${failures[@]}"}"; do [[ $f == "${phase_names[$i]}" ]] && status=FAILED; done
    printf '  %-36s %6s s  %s\n' "${phase_names[$i]}" "${phase_secs[$i]}" "$status"
done
printf '  %-36s %6s s\n' "total" $((SECONDS - run_start))
for l in "${left_out[@]+"${left_out[@]}"}"; do echo "  left out (--host-only): $l"; done
if [[ -n ${vm_timing:-} ]]; then echo "  VM: $vm_timing"; fi
if [[ -n ${systemd_timing:-} ]]; then echo "  systemd VM: $systemd_timing"; fi
grep -h -e '^build-deb.sh: built ' -e '^build-deb.sh: lintian in ' "$work/build-deb.log" 2>/dev/null | sed 's/^/  /' || true
if ((${#failures[@]})); then
    note "FAIL: ${failures[*]}"
else
    note "PASS"
fi
echo "$passed_total passed, $failed_total failed"
((${#failures[@]} == 0))
