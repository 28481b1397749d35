#!/bin/bash
# tests/hosts/write-hosts.sh [FILE...]: writes docs/HOSTS.md from the "HOSTS-CELL|KIND|PROMISE|RESULT" lines that
# tests/hosts/observe.sh printed (in FILEs, else stdin; other lines are ignored): one row per host kind, one column
# per promise, each cell what was observed there; a cell nobody observed says "not measured".
# Usage: tests/hosts/measure.sh (observes every kind it can reach, then calls this).
set -euo pipefail
repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
out=${AG_HOSTS_MD:-$repo/docs/HOSTS.md}
kinds=("systemd + cgroup v2, root" "systemd + cgroup v2, user (user manager)" "systemd + cgroup v2, user (login session)"
    "hybrid cgroups, no systemd, root" "no writable cgroup (user nobody, no systemd)" "inside a container (own cgroup namespace)"
    "inside a privileged container (own cgroup namespace, cgroup v2)")
promises=("tree kill (setsid escapee)" "memory limit" "pids limit" "cpu limit" "OOM report" "labeled containers"
    "guardian after SIGKILL" "collection at next start")
cells=$(grep -h '^HOSTS-CELL|' "$@" | sort -u || true)
{
    echo "# What cleanup-agent does on each kind of host, measured"
    echo
    echo "Written by \`tests/hosts/write-hosts.sh\` from what \`tests/hosts/observe.sh\` saw on $(date -u +%Y-%m-%d):"
    echo "each cell is the result of doing it there (a run with a setsid escapee that ignores SIGTERM; \`run --memory\`,"
    echo "\`--pids\`, \`--cpus\`; a command over a 32M limit; a network created through the session's \`DOCKER_HOST\`; the"
    echo "agent SIGKILLed; agent and guardian SIGKILLed, then the next \`run\`). \"not measured\": not tried there. Regenerate"
    echo "with \`sudo tests/hosts/measure.sh\` (this host, a container, and the Debian 12 VM of tests/vm/systemd-vm.sh)."
    echo "\`cleanup-agent check\` prints the same columns for one host, as a prediction."
    echo
    printf '| host kind |'
    for p in "${promises[@]}"; do printf ' %s |' "$p"; done
    printf '\n|---|'
    for _ in "${promises[@]}"; do printf -- '---|'; done
    echo
    for k in "${kinds[@]}"; do
        printf '| %s |' "$k"
        for p in "${promises[@]}"; do
            v=$(awk -F'|' -v k="$k" -v p="$p" '$2 == k && $3 == p { sub(/^[^|]*\|[^|]*\|[^|]*\|/, ""); print; exit }' <<<"$cells")
            printf ' %s |' "${v:-not measured}"
        done
        echo
    done
} >"$out.tmp"
mv "$out.tmp" "$out"
echo "write-hosts.sh: wrote $out ($(grep -c . <<<"$cells") cells measured)"
