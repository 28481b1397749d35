# shellcheck shell=sh disable=SC2154 # sourced by the command clients.sh writes (inside.sh, W, P, TL, IMG)
# The same build through BuildKit (DOCKER_BUILDKIT=1: /session upgraded to a raw stream, then /build version=2).
# --network none: the test engine has no default bridge for RUN.
mkdir -p "$W/ctx" && printf 'FROM %s\nRUN echo %s > /marker\n' "$IMG" "$P" >"$W/ctx/Dockerfile"
DOCKER_BUILDKIT=1 docker build -q --network none --label "$TL" -t "$P-bk:1" "$W/ctx" >"$W/bk.out" 2>&1 || die "buildkit build: $(tail -n 3 "$W/bk.out")"
id=$(docker image inspect -f '{{.Id}}' "$P-bk:1") || die "image inspect"
labeled image "$id"
exit 0
