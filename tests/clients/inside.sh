# shellcheck shell=dash
# tests/clients/inside.sh: sourced by the commands of tests/clients/cmd/, which run under `cleanup-agent run`.
# The driver exports W (the scenario's directory), P (the unique prefix of every name), TL (the test label, K=V)
# and IMG (the test image). DOCKER_HOST is the session's proxy socket, as run gives it.
#   record KIND ID    one line "KIND ID" in $W/created: the driver checks after the run that it is gone
#   labeled KIND ID   record, and check now (while the command runs) that it carries this session's label (an image:
#                     built-by=<session>, the one label of the agent's on it); a miss is one line in $W/unlabeled,
#                     which the driver reports
#   die WHAT          a step of the client failed: one line in $W/died, and the command exits 90
record() { echo "$1 $2" >>"$W/created"; }
labeled() {
    local kind=$1 id=$2 fmt got
    record "$kind" "$id"
    case $kind in
    container) fmt='{{index .Config.Labels "io.cleanup-agent.session"}}' ;;
    image) fmt='{{index .Config.Labels "io.cleanup-agent.built-by"}}{{with index .Config.Labels "io.cleanup-agent.session"}} and session={{.}}{{end}}' ;;
    network | volume) fmt='{{index .Labels "io.cleanup-agent.session"}}' ;;
    esac
    got=$(docker "$kind" inspect -f "$fmt" "$id" 2>&1) || got="(inspect failed: $got)"
    [ "$got" = "$CLEANUP_AGENT_SESSION" ] || echo "$kind $id: label '$got'" >>"$W/unlabeled"
}
die() { echo "$*" >>"$W/died"; exit 90; }
# wait_for SECONDS CMD...: polls CMD every 0.2 s until it succeeds
wait_for() {
    local n=$(($1 * 5))
    shift
    while ! "$@" >/dev/null 2>&1; do
        n=$((n - 1))
        [ "$n" -gt 0 ] || return 1
        sleep 0.2
    done
}
