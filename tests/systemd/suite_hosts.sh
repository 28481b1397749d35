# shellcheck shell=bash disable=SC2154
# Sourced after lib.sh (its work, out, err, agent) by bash -c in the VM.
# tests/systemd/suite_hosts.sh: tests/hosts/observe.sh on a stock Debian 12 host, for docs/HOSTS.md
# (tests/hosts/measure.sh runs it): as root, and as a non-root user both from its ssh login session and from a
# service of its user manager. Its HOSTS-CELL lines are the result; the suite fails only when it could not observe.
# needs: tests/hosts/observe.sh

observe=$files/tests/hosts/observe.sh
if ((EUID == 0)); then
    case_begin "observe as root"
    bash "$observe" "systemd + cgroup v2, root" | tee "$work/cells"
    check "every promise observed" test "$(grep -c '^HOSTS-CELL|' "$work/cells")" -ge 7
    # A privileged CI job container with its own cgroup namespace (its cgroup writable): an empty image whose /usr is
    # the VM's, the agent and observe.sh mounted read-only, no engine socket.
    case_begin "observe in a privileged container with its own cgroup namespace"
    if ! docker image inspect ca-usr:latest >/dev/null 2>&1; then
        (r=$(mktemp -d) && cd "$r" && mkdir usr proc sys dev etc tmp run && ln -s usr/bin bin && ln -s usr/lib lib &&
            ln -s usr/lib64 lib64 && ln -s usr/sbin sbin && tar -c . | docker import - ca-usr:latest >/dev/null &&
            rm -rf "$r")
    fi
    docker run --rm --privileged --network none --cgroupns private --tmpfs /run --tmpfs /tmp -v /usr:/usr:ro \
        -v /etc/passwd:/etc/passwd:ro -v "$(command -v "$agent"):/ca:ro" -v "$observe:/observe.sh:ro" -e AG_AGENT=/ca \
        ca-usr:latest /bin/bash /observe.sh "inside a privileged container (own cgroup namespace, cgroup v2)" |
        tee "$work/cells"
    check "observed" test "$(grep -c '^HOSTS-CELL|' "$work/cells")" -ge 6
    suite_end
fi
case_begin "observe as $(id -un) from the login session"
bash "$observe" "systemd + cgroup v2, user (login session)" | tee "$work/cells"
check "observed" test "$(grep -c '^HOSTS-CELL|' "$work/cells")" -ge 6
case_begin "observe as $(id -un) from a user service"
rc=$(user_service ca-observe "/bin/bash $observe 'systemd + cgroup v2, user (user manager)'")
cat "$out"
check "observed (exit $rc)" test "$(grep -c '^HOSTS-CELL|' "$out")" -ge 6
suite_end
