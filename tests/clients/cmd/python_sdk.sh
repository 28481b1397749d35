# shellcheck shell=sh disable=SC2154 # sourced by the command clients.sh writes (inside.sh, W, P, TL, IMG)
# The Python Docker SDK: python_sdk.py, then the label of all it made.
/usr/bin/python3 "$CLIENTS_DIR/cmd/python_sdk.py" >"$W/py.out" 2>"$W/py.err"
rc=$?
while read -r kind id; do labeled "$kind" "$id"; done <"$W/py.out"
[ "$rc" = 0 ] || die "$(tail -n 3 "$W/py.err")"
exit 0
