# shellcheck shell=sh disable=SC2154 # sourced by the command clients.sh writes (inside.sh, W, P, TL, IMG)
# A classic build with --rm=false: the engine keeps every step container; the end of the session finds and removes
# them.
mkdir -p "$W/ctx" && printf 'FROM %s\nRUN echo %s-step1 > /a\nRUN echo %s-step2 > /b\n' "$IMG" "$P" "$P" >"$W/ctx/Dockerfile"
# Not quiet (-q): a quiet build's output names no step container, so the proxy has the engine remove them as it goes.
DOCKER_BUILDKIT=0 docker build --rm=false --iidfile "$W/iid" --label "$TL" -t "$P-norm:1" "$W/ctx" >"$W/build.out" ||
    die "build --rm=false: $(tail -n 3 "$W/build.out")"
id=$(cat "$W/iid")
labeled image "$id"
docker ps -a --no-trunc --format '{{.ID}} {{.Command}}' | grep -F "$P-step" >"$W/steps"
[ -s "$W/steps" ] || die "no step container after a --rm=false build"
while read -r s _; do record container "$s"; done <"$W/steps"
exit 0
