# shellcheck shell=sh disable=SC2154 # sourced by the command clients.sh writes (inside.sh, W, P, TL, IMG)
# Testcontainers for Node, TC_MODE=exit (the process exits) or kill (SIGKILLed once both containers run).
# TESTCONTAINERS_HOST_OVERRIDE: the test engine runs without docker0, and Testcontainers otherwise looks for the
# host's address in the `bridge` network's gateway and gives up.
export TESTCONTAINERS_RYUK_DISABLED=true TESTCONTAINERS_HOST_OVERRIDE=localhost
mode="wait"
[ "$TC_MODE" = exit ] && mode="exit"
node "$CLIENTS_DIR/cmd/testcontainers.js" "$mode" >"$W/tc.out" 2>"$W/tc.err" &
pid=$!
# shellcheck disable=SC2317 # called by wait_for
two() { [ "$(grep -c '^container ' "$W/tc.out")" = 2 ]; }
wait_for 120 two || { kill -9 "$pid"; die "testcontainers: $(tail -n 5 "$W/tc.err")"; }
while read -r kind id; do labeled "$kind" "$id"; done <"$W/tc.out"
if [ "$mode" = exit ]; then wait "$pid" || die "node exited with $?"; else kill -9 "$pid"; fi
exit 0
