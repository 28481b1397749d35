# Sourced by the shell tests of tests/deploy/: one line per check ("ok   NAME", "FAIL NAME: DETAIL"), and the counts.
passed=0 failed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1${2:+: $2}"; failed=$((failed + 1)); }
# expect NAME COMMAND...: ok when the command succeeds
expect() { local name=$1; shift; if "$@"; then ok "$name"; else fail "$name"; fi; }
# test_label_key REPO: the key of the label tests put on what they create, as tests/test_label.h defines it.
test_label_key() {
    local h=$1/tests/test_label.h
    echo "$(sed -nE 's/^#define AG_TEST_LABEL_NS "(.*)"$/\1/p' "$h")$(sed -nE 's/^#define AG_TEST_LABEL_KEY AG_TEST_LABEL_NS "(.*)"$/\1/p' "$h")"
}
