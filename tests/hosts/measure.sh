#!/bin/bash
# tests/hosts/measure.sh [AGENT]: observes every host kind of docs/HOSTS.md this machine can reach, then writes it
# (tests/hosts/write-hosts.sh): this host as root and as nobody (its state dir in a temp dir), a container with its
# own cgroup namespace (observe-container.sh), and the Debian 12 VM (tests/vm/systemd-vm.sh, the package of
# build-deb/ installed: tests/systemd/suite_hosts.sh as root and as the user ci). As root; AGENT defaults to
# build/cleanup-agent. A kind that cannot be reached keeps "not measured"; AG_HOSTS_NO_VM=1 leaves the VM out.
set -uo pipefail
repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
agent=$(realpath "${1:-$repo/build/cleanup-agent}")
cells=$(mktemp /tmp/hosts-cells.XXXXXX)
tmp=$(mktemp -d /tmp/hosts-measure.XXXXXX)
trap 'rm -rf -- "$cells" "$tmp"' EXIT
chmod 711 "$tmp"
{
    AG_AGENT=$agent "$repo/tests/hosts/observe.sh" "hybrid cgroups, no systemd, root"
    install -d -o nobody -m 700 "$tmp/nobody"
    runuser -u nobody -- env AG_AGENT="$agent" TMPDIR="$tmp/nobody" CLEANUP_AGENT_STATE_DIR="$tmp/nobody/state" \
        bash "$repo/tests/hosts/observe.sh" "no writable cgroup (user nobody, no systemd)"
    "$repo/tests/hosts/observe-container.sh" "$agent"
    if [[ -z ${AG_HOSTS_NO_VM:-} ]]; then
        AG_SYSTEMD_VM_DEB=${AG_SYSTEMD_VM_DEB:-$repo/build-deb} "$repo/tests/systemd/in-vm.sh" suite_hosts.sh
        AG_SYSTEMD_VM_DEB=${AG_SYSTEMD_VM_DEB:-$repo/build-deb} "$repo/tests/systemd/in-vm.sh" --user ci suite_hosts.sh
    fi
} 2>&1 | tee "$cells"
"$repo/tests/hosts/write-hosts.sh" "$cells"
