# shellcheck shell=sh disable=SC2154 # sourced by the command clients.sh writes (inside.sh, W, P, TL, IMG)
# docker-compose up -d of compose_slow.yml, SIGKILLed (compose, then this command itself) while `up` waits for the
# first service's health before it creates the second.
docker-compose -p "$P" -f "$CLIENTS_DIR/cmd/compose_slow.yml" up -d >"$W/compose.out" 2>&1 &
pid=$!
running() { [ -n "$(docker ps -q --filter "label=com.docker.compose.project=$P" --filter status=running)" ]; }
wait_for 60 running || die "the first service of compose_slow.yml did not start: $(tail -n 3 "$W/compose.out")"
sleep 1
kill -0 "$pid" 2>/dev/null || die "docker-compose up ended before the kill: $(tail -n 3 "$W/compose.out")"
for c in $(docker ps -aq --no-trunc --filter "label=com.docker.compose.project=$P"); do labeled container "$c"; done
labeled network "${P}_net"
labeled volume "${P}_data"
kill -9 "$pid"
kill -9 $$
