#!/bin/bash
# tests/clients/docker-py-suite.sh AGENT DOCKER_PY_SRC [PYTEST_ARGS...]: docker-py's own integration suite
# (tests/integration of github:docker/docker-py at the tag of Debian's python3-docker, 5.0.3) run twice, each time
# against a fresh private engine of its own: once directly, once as the command of `AGENT run` (DOCKER_HOST is then
# the session's proxy). Then the two runs are compared test by test: a test that passes directly and fails through
# the proxy is a difference; the differences docs/RELIABILITY.md explains (docker-py) are listed below, and any
# other one fails this script. By hand only, not in CI: it needs the fetched source, which never goes into this
# repository (`git archive 5.0.3 | tar -x -C /tmp/docker-py` from a clone of docker-py). As root: the private
# engines need a bridge of their own.
#
# Both runs deselect what needs a registry (pulls), swarm (services, secrets, configs, nodes) or plugins. The image
# names the suite uses are tags of cleanup-test/busybox:latest, loaded from the engine of DOCKER_HOST (default
# /var/run/docker.sock; only read). PARALLEL=1 runs both passes at once (each on its own engine), OUT=DIR keeps the
# logs and junit files there (default a temp dir, kept), K=EXPR replaces the -k expression (default "not pull"; a
# quick check: K="not pull and ExecTest").
set -uo pipefail

die() {
    echo "docker-py-suite: $*" >&2
    exit 1
}
[[ $# -ge 2 ]] || die "usage: $0 AGENT DOCKER_PY_SRC [PYTEST_ARGS...]"
agent=$(realpath -- "$1") || die "no agent at $1"
src=$(realpath -- "$2") || die "no docker-py source at $2"
shift 2
[[ -x $agent ]] || die "$agent is not executable"
[[ -f $src/tests/integration/conftest.py && -d $src/docker ]] ||
    die "$src is not a docker-py source tree (fetch github:docker/docker-py and extract tag 5.0.3 there)"
[[ $(id -u) == 0 ]] || die "run as root: the private engines need bridges of their own"
export PATH=/usr/bin:/bin:/usr/sbin:/sbin:$PATH # Debian's docker.io and python3
for p in python3 dockerd docker; do command -v "$p" >/dev/null || die "no $p (apt-get install docker.io python3)"; done
/usr/bin/python3 -c 'import pytest, pytest_timeout, paramiko' 2>/dev/null ||
    die "apt-get install python3-pytest python3-pytest-timeout python3-paramiko"

host_engine=${DOCKER_HOST:-unix:///var/run/docker.sock}
out=${OUT:-$(mktemp -d /tmp/dpys-out-XXXXXX)}
mkdir -p "$out" || die "cannot create $out"
image=cleanup-test/busybox:latest
names=(busybox:latest busybox:buildroot-2014.02 alpine:3.10 alpine:latest hello-world:latest)
selection=(tests/integration -k "${K:-not pull}")
for f in api_swarm api_service api_secret api_config api_plugin models_services models_swarm models_nodes; do
    selection+=("--ignore=tests/integration/${f}_test.py")
done
# Differences explained in docs/RELIABILITY.md (docker-py): name -> reason (the session labels, or a race of the test).
declare -A intended=(
    [BuildTest::test_build_labels]="the image carries built-by=<session> next to the test's own"
    [TestNetworks::test_create_network_with_labels]="the network carries the session labels next to the test's own"
    [VolumesTest::test_create_get]="the volume carries the session labels next to the test's own"
    [BuildTest::test_build_with_cache_from]="the engine makes one cached LABEL step for the built-by label: 4 'Using cache', not 3"
    [BuildTest::test_build_in_context_dockerfile]="reads the logs right after start without waiting: fails directly too, by chance"
)

engines=()
engine_start() { # engine_start NAME N: a private engine in /tmp/NAME (short: the socket path), bridge NAME, pools by N
    local dir=/tmp/$1 n=$2 i
    rm -rf "$dir"
    mkdir -p "$dir" || die "cannot create $dir"
    ip link del "$1" 2>/dev/null
    { ip link add "$1" type bridge && ip addr add "10.$((230 + n)).0.1/24" dev "$1" && ip link set "$1" up; } ||
        die "cannot create the bridge $1"
    setsid dockerd --iptables=false --ip6tables=false --bridge="$1" --storage-driver=vfs \
        --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/docker.pid" --host "unix://$dir/docker.sock" \
        --default-address-pool "base=10.$((231 + n)).0.0/16,size=24" >"$dir/log" 2>&1 </dev/null &
    echo "$! $1" >>"$out/engines"
    engines+=("$! $1")
    for ((i = 0; i < 300; i++)); do
        docker -H "unix://$dir/docker.sock" version >/dev/null 2>&1 && break
        kill -0 "$!" 2>/dev/null || die "the private dockerd exited: $(tail -1 "$dir/log")"
        sleep 0.1
    done
    docker -H "$host_engine" save "$image" | docker -H "unix://$dir/docker.sock" load >/dev/null || die "cannot load $image"
    for i in "${names[@]}"; do docker -H "unix://$dir/docker.sock" tag "$image" "$i" || die "cannot tag $i"; done
}
engine_stop_all() {
    local e pid br sock i
    for e in "${engines[@]}"; do
        read -r pid br <<<"$e"
        sock=/tmp/$br/docker.sock
        docker -H "unix://$sock" ps -aq | xargs -r docker -H "unix://$sock" rm -f >/dev/null 2>&1
        docker -H "unix://$sock" network prune -f >/dev/null 2>&1
        kill -TERM "$pid" 2>/dev/null
        for ((i = 0; i < 300; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        ip link del "$br" 2>/dev/null
        rm -rf "/tmp/$br"
    done
    rm -rf /tmp/dpys-state-direct /tmp/dpys-state-proxy # with their engines gone, nothing there is collectable
    engines=()
}
trap engine_stop_all EXIT

# pass NAME ENGINE [WRAPPER...]: pytest of the selection against ENGINE, junit in $out/NAME.xml
pass() {
    local name=$1 engine=$2
    shift 2
    # docker-py 5.0.3's conftest turns warnings into errors, and setuptools' distutils warns on every StrictVersion.
    # The context tests write (and leave) a context next to the docker config, or in the working directory when there
    # is none: each pass gets a config directory of its own.
    rm -rf "${out:?}/$name-config" "$src/contexts"
    { mkdir -p "$out/$name-config" && echo '{}' >"$out/$name-config/config.json"; } || die "cannot write $out/$name-config"
    (cd "$src" && DOCKER_HOST=$engine DOCKER_CONFIG=$out/$name-config SETUPTOOLS_USE_DISTUTILS=stdlib \
        CLEANUP_AGENT_STATE_DIR=/tmp/dpys-state-$name "$@" /usr/bin/python3 -m pytest -p no:cacheprovider -rA \
        --timeout=300 --junitxml="$out/$name.xml" "${selection[@]}" "${extra[@]}") >"$out/$name.log" 2>&1
}
extra=("$@")
engine_start dpys-d 0
engine_start dpys-p 2
echo "docker-py-suite: logs and junit files in $out"
if [[ ${PARALLEL:-0} == 1 ]]; then
    pass direct unix:///tmp/dpys-d/docker.sock &
    direct_pid=$!
    pass proxy unix:///tmp/dpys-p/docker.sock "$agent" run -- &
    wait "$direct_pid" "$!" # not a bare wait: the engines are children too
else
    pass direct unix:///tmp/dpys-d/docker.sock
    pass proxy unix:///tmp/dpys-p/docker.sock "$agent" run --
fi
engine_stop_all

# The comparison: counts of both runs, then each test that passed directly and did not through the proxy.
for k in "${!intended[@]}"; do printf '%s\t%s\n' "$k" "${intended[$k]}"; done >"$out/intended"
/usr/bin/python3 - "$out" <<'EOF'
import sys, xml.etree.ElementTree as ET
out = sys.argv[1]
def outcomes(name):
    res = {}
    for tc in ET.parse(f"{out}/{name}.xml").iter("testcase"):
        key = tc.get("classname").split(".")[-1] + "::" + tc.get("name")
        kids = [c.tag for c in tc]
        res[key] = ("failed" if "failure" in kids or "error" in kids else
                    "skipped" if "skipped" in kids else "passed")
    return res
d, p = outcomes("direct"), outcomes("proxy")
for name, r in (("direct", d), ("proxy", p)):
    counts = {k: list(r.values()).count(k) for k in ("passed", "failed", "skipped")}
    print(f"{name}: {len(r)} tests, {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
intended = dict(l.rstrip("\n").split("\t", 1) for l in open(f"{out}/intended") if l.strip())
bad = 0
for k in sorted(set(d) | set(p)):
    if d.get(k) == p.get(k):
        continue
    why = intended.get(k)
    if d.get(k) == "passed" and why is None:
        bad += 1
    print(f"{'explained' if why else 'DIFFERENT'}: {k}: direct {d.get(k)}, proxy {p.get(k)}" + (f" ({why})" if why else ""))
sys.exit(1 if bad else 0)
EOF
