#!/bin/bash
# tests/systemd/in-vm.sh [--user NAME] SUITE: runs a suite of the systemd label (tests/systemd/suite_*.sh, after
# lib.sh) inside the Debian 12 VM (tests/vm/systemd-vm.sh run, which boots it or reuses a running one and installs
# the agent of $AG_SYSTEMD_VM_AGENT), as root or as NAME. Exit status: the suite's (the number of failed cases),
# 255 when the VM cannot be built, booted or reached.
set -euo pipefail
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
user=()
if [[ ${1:-} == --user ]]; then
    user=(--user "$2")
    shift 2
fi
suite=${1:?usage: in-vm.sh [--user NAME] SUITE}
[[ $suite == */* ]] || suite=$here/$suite
# Files of the tree a suite runs as written (a line "# needs: PATH" per file, PATH from the repository's top): each
# goes along as $files/PATH in the VM (a temp dir), written before lib.sh runs.
repo=$(cd -- "$here/../.." && pwd)
prologue='files=$(mktemp -d /tmp/ag-files.XXXXXX)'$'\n'
while read -r need; do
    [[ -f $repo/$need ]] || { echo "in-vm.sh: $suite needs $need, which is not in $repo" >&2; exit 255; }
    prologue+="mkdir -p \"\$files/$(dirname -- "$need")\"; printf '%s\\n' $(printf %q "$(cat "$repo/$need")") >\"\$files/$need\""$'\n'
    if [[ -x $repo/$need ]]; then prologue+="chmod +x \"\$files/$need\""$'\n'; fi
done < <(sed -n 's/^# needs: //p' "$suite")
script=$prologue$(cat "$here/lib.sh" "$suite")
# The script goes as an argument, not on stdin: a command of the suite must not read the suite's own text.
exec "$here/../vm/systemd-vm.sh" run "${user[@]}" -- bash -c "$script" "$(basename -- "$suite")" </dev/null
