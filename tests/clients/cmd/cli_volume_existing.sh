# shellcheck shell=sh disable=SC2154 # sourced by the command clients.sh writes (inside.sh, W, P, TL, IMG)
# A named volume that exists already is not the session's: `run -v` of it leaves it as it was (the driver made it,
# outside the session, and checks after the run that it is still there without a session label).
c=$(docker run -d --network none --label "$TL" -v "$P-pre:/x" "$IMG" sh -c 'echo from-session > /x/f; sleep 1000') ||
    die "run -v $P-pre:/x"
labeled container "$c"
got=$(docker volume inspect -f '{{index .Labels "io.cleanup-agent.session"}}' "$P-pre") || die "volume inspect"
[ -z "$got" ] || echo "volume $P-pre: an existing volume was given the session label '$got'" >>"$W/unlabeled"
exit 0
