#!/bin/bash
# tests/hosts/observe-container.sh AGENT: tests/hosts/observe.sh inside a container with its own cgroup namespace on
# this host (the test image, busybox; the agent, bash and the host's libraries bind-mounted read-only; a tmpfs /run),
# not privileged, without the engine's socket (a runner container's own engine is its own business).
set -euo pipefail
agent=$(realpath "${1:?usage: observe-container.sh AGENT}")
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
label=$(sed -nE 's/^#define AG_TEST_LABEL_NS "(.*)"$/\1/p' "$here/../test_label.h")id=hosts-observe-$$
exec docker run --rm --label "$label" --cgroupns private --tmpfs /run --tmpfs /tmp \
    -v "$agent:/usr/bin/cleanup-agent:ro" -v /usr/bin/bash:/bin/bash:ro -v "$here/observe.sh:/observe.sh:ro" \
    -v /usr/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu:ro -v /usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu:ro \
    -v /usr/lib64:/lib64:ro -e AG_AGENT=/usr/bin/cleanup-agent cleanup-test/busybox:latest \
    /bin/bash /observe.sh "inside a container (own cgroup namespace)"
