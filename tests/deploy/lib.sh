# Sourced by the shell tests of tests/deploy/: one line per check ("ok   NAME", "FAIL NAME: DETAIL"), and the counts.
passed=0 failed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1${2:+: $2}"; failed=$((failed + 1)); }
# expect NAME COMMAND...: ok when the command succeeds
expect() { local name=$1; shift; if "$@"; then ok "$name"; else fail "$name"; fi; }
