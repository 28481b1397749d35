#!/bin/bash
# Every shell script of the repository passes shellcheck at severity warning, following what it sources (-x): the
# scripts the package installs (deploy/, the bash completion), the test command (.ci/run, tests/run.sh) and the tests'
# own. Where a check is off, a directive in the file says why. The scripts are the work tree's that git knows or would
# add (tracked, or new and not ignored: a build tree's are not), and that exist.
# Usage: check_shell.sh REPO
set -uo pipefail
repo=$1
cd "$repo" || exit 1
command -v shellcheck >/dev/null || { echo "FAIL: shellcheck is not installed (apt-get install shellcheck)"; exit 1; }
git rev-parse --is-inside-work-tree >/dev/null || { echo "FAIL: $repo is not a git work tree git can read"; exit 1; }
files=()
while IFS= read -r f; do
    [[ -f $f ]] && files+=("$f")
done < <(git ls-files --cached --others --exclude-standard -- '*.sh' '*.bash' .ci/run | sort -u)
((${#files[@]} > 0)) || { echo "FAIL: no shell script found in $repo"; exit 1; }
echo "shellcheck $(shellcheck --version | sed -n 's/^version: //p'), ${#files[@]} scripts"
shellcheck -x -S warning -f gcc "${files[@]}"
