#!/bin/bash
# The man pages say what --help says: for `cleanup-agent --help` and each command's `--help`, every option it lists
# (the option lines and the Usage lines) is defined in the OPTIONS section of its page, and every option that section
# defines is in --help; every CLEANUP_AGENT_* variable --help names is on the page; and every command
# `cleanup-agent --help` lists has a page. The pages are read as man(1) shows them (man -l), not as sources.
# Usage: check_man.sh BINARY MAN_DIR      (MAN_DIR: the build's man/, with cleanup-agent.1 and the others)
set -uo pipefail
bin=$1 mandir=$2
passed=0 failed=0
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
pass() { passed=$((passed + 1)); }

# help_options: the options a --help text (stdin) lists: the leading options of lines that start with '-', and
# every option of the Usage lines (up to the first blank line).
help_options() {
    awk '
        /^Usage:/ { usage = 1 }
        usage && /^$/ { usage = 0 }
        usage { s = $0; while (match(s, /(^|[[ ])--?[a-zA-Z][a-zA-Z0-9-]*/)) { t = substr(s, RSTART, RLENGTH);
                sub(/^[[ ]/, "", t); if (t != "-" ) print t; s = substr(s, RSTART + RLENGTH) } next }
        /^ *-/ { s = $0; sub(/^ */, "", s);
                 while (match(s, /^--?[a-zA-Z][a-zA-Z0-9-]*/)) { print substr(s, 1, RLENGTH);
                       s = substr(s, RLENGTH + 1); if (s ~ /^, /) s = substr(s, 3); else break } }
    ' | sort -u
}

# page_options: the options the OPTIONS section of a rendered page (stdin) defines: its definition lines, at the
# section's indent, starting with '-'.
page_options() {
    awk '
        /^[A-Z]/ { in_opts = ($0 ~ /OPTIONS/); next }
        in_opts && /^       -/ { s = $0; sub(/^ */, "", s);
                 while (match(s, /^--?[a-zA-Z][a-zA-Z0-9-]*/)) { print substr(s, 1, RLENGTH);
                       s = substr(s, RLENGTH + 1); if (s ~ /^, /) s = substr(s, 3); else break } }
    ' | sort -u
}

render() { LC_ALL=C MANWIDTH=200 MAN_KEEP_FORMATTING=0 man -l "$1" 2>/dev/null | col -bx; }

# check NAME PAGE HELP-ARGS...: one page against one --help.
check() {
    local name=$1 page=$2
    shift 2
    local help text
    if ! help=$("$bin" "$@" --help 2>&1); then
        fail "$name: '$bin $* --help' failed: $help"
        return
    fi
    if [[ ! -s $page ]]; then
        fail "$name: no man page $page (add man/$(basename "$page").scd; without scdoc the build makes none: apt-get install scdoc)"
        return
    fi
    text=$(render "$page")
    [[ -n $text ]] || { fail "$name: man -l $page shows nothing"; return; }
    local ho po missing extra vars v
    ho=$(help_options <<<"$help")
    po=$(page_options <<<"$text")
    missing=$(comm -23 <(echo "$ho") <(echo "$po") | grep -v '^$' | tr '\n' ' ')
    extra=$(comm -13 <(echo "$ho") <(echo "$po") | grep -v '^$' | tr '\n' ' ')
    if [[ -n $missing ]]; then fail "$name: --help lists options its man page's OPTIONS does not: $missing"; else pass; fi
    if [[ -n $extra ]]; then fail "$name: the man page's OPTIONS defines options --help does not list: $extra"; else pass; fi
    vars=$(grep -oE 'CLEANUP_AGENT_[A-Z_]*[A-Z]' <<<"$help" | sort -u)
    missing=""
    for v in $vars; do grep -q -- "$v" <<<"$text" || missing+="$v "; done
    if [[ -n $missing ]]; then fail "$name: variables of --help missing from the man page: $missing"; else pass; fi
    echo "$name: $(wc -w <<<"$ho") options in --help, $(wc -w <<<"$po") in the man page"
}

command -v man >/dev/null || { echo "man not found: apt-get install man-db"; exit 1; }
[[ -x $bin ]] || { echo "no binary $bin"; exit 1; }
check cleanup-agent "$mandir/cleanup-agent.1"
# The commands: the lines under "Commands:" of the top-level --help, up to the blank line.
mapfile -t commands < <("$bin" --help | awk '/^Commands:/ { c = 1; next } c && /^$/ { exit } c { print $1 }')
((${#commands[@]} > 0)) || fail "cleanup-agent --help lists no commands"
for c in "${commands[@]}"; do
    check "cleanup-agent $c" "$mandir/cleanup-agent-$c.1" "$c"
done
echo "$passed passed, $failed failed"
((failed == 0))
