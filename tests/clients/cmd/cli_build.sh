# shellcheck shell=sh disable=SC2154 # sourced by the command clients.sh writes (inside.sh, W, P, TL, IMG)
# A classic build (the engine's own builder, as Debian's docker CLI 20.10 does by default): the image carries
# built-by=<session> and no session label, and a container of it made in the session (an anonymous volume from its
# VOLUME) the session label.
mkdir -p "$W/ctx" && printf 'FROM %s\nRUN echo %s > /marker\nVOLUME /vol\n' "$IMG" "$P" >"$W/ctx/Dockerfile"
id=$(DOCKER_BUILDKIT=0 docker build -q --label "$TL" -t "$P-img:1" "$W/ctx") || die "build"
labeled image "$id"
c=$(docker run -d --network none --label "$TL" "$P-img:1" sleep 1000) || die "run of the built image"
labeled container "$c"
for v in $(docker inspect -f '{{range .Mounts}}{{.Name}} {{end}}' "$c"); do record volume "$v"; done
exit 0
