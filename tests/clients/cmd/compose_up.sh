# shellcheck shell=sh disable=SC2154 # sourced by the command clients.sh writes (inside.sh, W, P, TL, IMG)
# docker-compose up -d of compose.yml (two services, a named network, a named volume); the command exits without
# `down`.
docker-compose -p "$P" -f "$CLIENTS_DIR/cmd/compose.yml" up -d >"$W/compose.out" 2>&1 ||
    die "docker-compose up -d: $(tail -n 3 "$W/compose.out")"
for c in $(docker ps -q --no-trunc --filter "label=com.docker.compose.project=$P"); do labeled container "$c"; done
[ "$(docker ps -q --filter "label=com.docker.compose.project=$P" | wc -l)" = 2 ] || die "two services are not running"
labeled network "${P}_net"
labeled volume "${P}_data"
exit 0
