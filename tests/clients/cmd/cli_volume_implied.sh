# shellcheck shell=sh disable=SC2154 # sourced by the command clients.sh writes (inside.sh, W, P, TL, IMG)
# Named volumes that a container create implies: `run -v NAME:/x` and `--mount type=volume,src=NAME` create them
# in the engine; the session must own them (labels in VolumeOptions, or the proxy creates them labeled first).

c=$(docker run -d --network none --label "$TL" -v "$P-data:/x" "$IMG" sleep 1000) || die "run -v $P-data:/x"
labeled container "$c"
labeled volume "$P-data"
m=$(docker run -d --network none --label "$TL" --mount "type=volume,src=$P-mnt,dst=/y" "$IMG" sleep 1000) ||
    die "run --mount type=volume,src=$P-mnt"
labeled container "$m"
labeled volume "$P-mnt"
exit 0
