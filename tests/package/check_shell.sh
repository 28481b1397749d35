#!/bin/bash
# Every shell script of the repository passes shellcheck at severity warning, following what it sources (-x): the
# scripts the package installs (deploy/), the test command (.ci/run, tests/run.sh) and the tests' own. Where a check is
# off, a directive in the file says why. The scripts are the checkout's (git ls-files): a build tree's are not.
# Usage: check_shell.sh REPO
set -uo pipefail
repo=$1
cd "$repo" || exit 1
command -v shellcheck >/dev/null || { echo "FAIL: shellcheck is not installed (apt-get install shellcheck)"; exit 1; }
mapfile -t files < <(git ls-files -- '*.sh' .ci/run) || { echo "FAIL: $repo is not a git checkout"; exit 1; }
((${#files[@]} > 0)) || { echo "FAIL: no shell script found in $repo"; exit 1; }
echo "shellcheck $(shellcheck --version | sed -n 's/^version: //p'), ${#files[@]} scripts"
shellcheck -x -S warning -f gcc "${files[@]}"
