#!/bin/bash
# deploy/quickstart.sh: from a Debian 12 host to cleanup-agent at work, in one command (as root).
#   1. installs what is missing, 2. builds build/cleanup-agent, 3. starts a Docker engine when none answers
#   (and stops it again at the end), 4. runs a leaky demo suite under `cleanup-agent run`: background daemons that
#   ignore SIGTERM, an escaped setsid process, a container the suite labels and forgets, and a container and a
#   network created with the plain docker CLI and no label at all (the agent's Docker proxy labels them);
#   5. shows that nothing is left.
# Exit status: 0 when nothing of the demo is left, 1 otherwise.
set -euo pipefail

prog=quickstart
repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
packages=(build-essential dpkg-dev cmake ninja-build pkg-config libcurl4-openssl-dev libcjson-dev libhttp-parser-dev libsystemd-dev docker.io
    busybox-static)
work=$(mktemp -d "${TMPDIR:-/tmp}/cleanup-agent-quickstart.XXXXXX")
# shellcheck source-path=SCRIPTDIR/.. source=deploy/env.sh
source "$repo/deploy/env.sh"

trap env_on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -t 1 ]]; then
    step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
else
    step() { printf '\n==> %s\n' "$*"; }
fi

step "packages"
install_packages
step "build"
# A build/ configured before (a developer's tree) keeps its own options, tests included; a new one gets none.
if [[ -f build/CMakeCache.txt ]]; then
    cmake -S . -B build >/dev/null
else
    cmake -S . -B build -G Ninja -DAG_TESTS=OFF >/dev/null
fi
cmake --build build
step "Docker engine"
start_engine
import_image

# The demo suite: it passes, and leaves behind what real suites leave behind.
cat >"$work/leaky-suite.sh" <<'SUITE'
#!/bin/sh
echo "$CLEANUP_AGENT_SESSION" >"$DEMO_DIR/session"
echo "suite: running tests in session $CLEANUP_AGENT_SESSION"
# A test server that daemonizes (double fork) and ignores SIGTERM.
( trap '' TERM; sleep 600 & ) &
# A helper that escapes into its own session, as `setsid` or an sshd-style daemon would.
setsid sh -c 'trap "" TERM HUP; exec sleep 600' &
# A database container the suite forgets to stop; it carries the session label, as the agent asks.
docker run -d --network none --label "io.cleanup-agent.session=$CLEANUP_AGENT_SESSION" \
    cleanup-test/busybox:latest sleep 600 >/dev/null
# A test that knows nothing of cleanup-agent: plain docker CLI, no label. DOCKER_HOST points at the session's proxy,
# which labels what it creates.
docker network create "demo-net-$$" >"$DEMO_DIR/plain-objects"
docker run -d --network none cleanup-test/busybox:latest sleep 600 >>"$DEMO_DIR/plain-objects"
echo "suite: all tests passed (and 2 processes, 2 containers and a network are still there)"
exit 0
SUITE
chmod +x "$work/leaky-suite.sh"

step "cleanup-agent run -- leaky-suite.sh"
echo "\$ build/cleanup-agent run -- leaky-suite.sh"
rc=0
DEMO_DIR=$work build/cleanup-agent run -- "$work/leaky-suite.sh" || rc=$?
echo "exit status: $rc (the suite's own)"

step "what is left"
id=$(cat "$work/session")
left=0
procs=$(grep -l "CLEANUP_AGENT_SESSION=$id" /proc/[0-9]*/environ 2>/dev/null | wc -l || true)
containers=$(docker_cli ps -aq --filter "label=io.cleanup-agent.session=$id" | wc -l)
networks=$(docker_cli network ls -q --filter "label=io.cleanup-agent.session=$id" | wc -l)
# The unlabeled network and container, by the ids the suite got: gone whether or not they were labeled.
plain=0
while read -r obj; do
    [[ -z $obj ]] || ! docker_cli inspect "$obj" >/dev/null 2>&1 || plain=$((plain + 1))
done <"$work/plain-objects"
cgroups=$(find /sys/fs/cgroup -maxdepth 3 -name "run-$id" 2>/dev/null | wc -l)
state=$(find /run/cleanup-agent/sessions -name "$id*" 2>/dev/null | wc -l)
printf '  processes of the session:  %s\n  its containers:            %s\n  its networks:              %s\n  its cgroups:               %s\n  its state files:           %s\n  the unlabeled ones:        %s\n' \
    "$procs" "$containers" "$networks" "$cgroups" "$state" "$plain"
((procs + containers + networks + cgroups + state + plain == 0)) || left=1
if ((left)); then
    echo "$prog: something was left behind: please report it" >&2
    exit 1
fi
echo "nothing is left. Next: wrap your own CI command, e.g.  build/cleanup-agent run --timeout 30m -- make test"
