# shellcheck shell=sh disable=SC2154 # sourced by the command clients.sh writes (inside.sh, W, P, TL, IMG)
# The docker CLI: run (with an anonymous volume), exec attached, detached and with stdin, cp both ways, logs -f,
# attach, network and volume create, a container on both. The command exits leaving all of it running.

c=$(docker run -d --name "$P-c" --network none --label "$TL" -v /anon "$IMG" sleep 1000) || die "run -d"
labeled container "$c"
for v in $(docker inspect -f '{{range .Mounts}}{{.Name}} {{end}}' "$c"); do record volume "$v"; done
[ "$(docker exec "$c" echo attached-exec)" = attached-exec ] || die "exec (attached)"
docker exec -d "$c" sh -c 'echo detached > /tmp/detached' || die "exec -d"
wait_for 20 sh -c "[ \"\$(docker exec $c cat /tmp/detached)\" = detached ]" || die "exec -d did not run"
[ "$(echo through-stdin | docker exec -i "$c" cat)" = through-stdin ] || die "exec -i"
echo "payload $P" >"$W/cp-in"
docker cp "$W/cp-in" "$c:/tmp/cp" || die "cp to the container"
docker cp "$c:/tmp/cp" "$W/cp-out" || die "cp from the container"
cmp -s "$W/cp-in" "$W/cp-out" || die "cp from the container: not what went in"

l=$(docker run -d --network none --label "$TL" "$IMG" sh -c 'echo one; sleep 1; echo two') || die "run -d (logs)"
labeled container "$l"
[ "$(timeout 30 docker logs -f "$l")" = "$(printf 'one\ntwo')" ] || die "logs -f"

a=$(docker run -d -i --network none --label "$TL" "$IMG" sh -c 'read x; echo got-$x') || die "run -d -i (attach)"
labeled container "$a"
# stdin stays open a while: at its end the CLI stops attaching, maybe before the answer came
s=${AG_TIMEOUT_SCALE:-1}
[ "$( (echo hello; sleep $((2 * s))) | timeout $((30 * s)) docker attach "$a")" = got-hello ] || die "attach"

[ "$(echo via-run | docker run -i --rm --network none --label "$TL" "$IMG" cat)" = via-run ] || die "run -i --rm"

n=$(docker network create --internal --label "$TL" "$P-net") || die "network create"
labeled network "$n"
v=$(docker volume create --label "$TL" "$P-vol") || die "volume create"
labeled volume "$v"
c2=$(docker run -d --network "$P-net" -v "$P-vol:/data" --label "$TL" "$IMG" sh -c 'echo kept > /data/f; sleep 1000') ||
    die "run on the network with the volume"
labeled container "$c2"
exit 0
