# shellcheck shell=sh disable=SC2154 # sourced by the command clients.sh writes (inside.sh, W, P, TL, IMG)
# A classic build whose RUN fails: the step container the engine made (no label: the engine made it) must not be
# left behind (the proxy asks for forcerm=1 unless the client said otherwise).
mkdir -p "$W/ctx" && printf 'FROM %s\nRUN echo %s-step && false\n' "$IMG" "$P" >"$W/ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker build --label "$TL" -t "$P-fail:1" "$W/ctx" >"$W/build.out" 2>&1 && die "a build with RUN false succeeded"
record image "$P-fail:1"
exit 0
