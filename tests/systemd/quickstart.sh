#!/bin/bash
# tests/systemd/quickstart.sh: the README's quick start as a new user runs it, in the Debian 12 VM of the systemd
# label (tests/vm/systemd-vm.sh): the files of this tree that git tracks, copied into a fresh directory as a clone
# would hold them, then `deploy/quickstart.sh` as root, as written (no sudo in the image: the test checks that): it
# installs the build's packages from Debian's archive, builds, runs the leaky demo under `cleanup-agent run` and shows
# what is left. Passes when it exits 0 and says that nothing is left. Exit status: 0, 1 (failed) or 255 (no VM).
set -euo pipefail
repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
out=$(mktemp)
trap 'rm -f -- "$out"' EXIT
inside='set -e
d=/root/cleanup-agent-quickstart
rm -rf "$d" && mkdir -p "$d" && tar -x -C "$d" && cd "$d"
if command -v sudo >/dev/null; then echo "quickstart: the image has sudo; the quick start is for one without"; exit 90; fi
deploy/quickstart.sh </dev/null'
rc=0
start=$SECONDS
git -C "$repo" ls-files -z | tar -C "$repo" --null -T - -c |
    "$repo/tests/vm/systemd-vm.sh" run -- bash -c "$inside" >"$out" 2>&1 || rc=$?
# The steps and their verdicts, without apt's and the compiler's progress lines.
grep -avE '^(Get:|Unpacking|Setting up|Selecting|Preparing|Processing|\(Reading|\[[0-9]+/[0-9]+\])' "$out" | tail -n 40
echo "quickstart: exit $rc after $((SECONDS - start)) s in the VM"
((rc != 255)) || exit 255
if ((rc == 0)) && grep -aq '^nothing is left' "$out"; then exit 0; fi
echo "quickstart: FAIL: deploy/quickstart.sh as root in a fresh Debian 12 image did not end with 'nothing is left'" >&2
exit 1
