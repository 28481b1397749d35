# shellcheck shell=bash disable=SC2016,SC2154
# Sourced after lib.sh (its work, out, err, agent) by bash -c in the VM; single quotes are meant.
# tests/systemd/suite_check.sh: `cleanup-agent check` on a stock Debian 12 host says what `run` will do there.
# As root (ctest systemd_check): the systemd driver with a scope per session in cleanup_agent.slice, every verdict
# yes, exit 0. As a non-root user (systemd_check_user, --user ci, an ssh login without the docker group): from the
# login session process tracking, limits refused with the user-manager fix, the engine not reachable with the docker
# group fix, exit 3; from a user service, the user manager's systemd driver and its cleanup_agent.slice.

# verdict TITLE: the table's line for TITLE ("yes  memory limit (--memory) ...").
verdict() { grep -E "^  (yes|no ) +$(sed 's/[][().*+?^$|]/\\&/g' <<<"$1") " "$out" | head -n 1; }
says() { [[ $(verdict "$1") == "  $2 "* ]]; }
# json_field KEY: a top-level string or boolean of check --format json (cJSON's layout: one key per line).
json_field() { sed -n "s/^\t\"$1\":\t\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" "$work/json" | head -n 1; }

if ((EUID == 0)); then
    case_begin "check as root: the systemd driver, every verdict yes, exit 0"
    agent_run check
    rc=$?
    sed 's/^/  | /' "$out"
    check_rc 0 "$rc"
    check "the driver is systemd" grep -qE '^  cgroup driver +systemd$' "$out"
    check "pure cgroup v2" grep -qE '^  cgroup mode +cgroup v2' "$out"
    for t in "state directory" "session tracking" "escape-proof tree kill" "memory limit (--memory)" \
        "pids limit (--pids)" "cpu limit (--cpus)" "OOM report" "Docker engine" "labeling Docker proxy" guardian; do
        check "$t: yes (got '$(verdict "$t")')" says "$t" yes
    done
    # The engine's ping has 3 s; under TCG on a loaded machine dockerd misses it now and then (ok false, the engine's
    # verdict says the timeout): asked again up to twice, as a user would.
    for _ in 1 2 3; do
        "$agent" check --format json >"$work/json" 2>"$err"
        [[ $(json_field ok) == true ]] && break
        grep -A4 '"engine":[[:space:]]*{' "$work/json" | sed 's/^/  json: /'
    done
    check "json: cgroup_driver systemd" test "$(json_field cgroup_driver)" = systemd
    check "json: tracking cgroup" test "$(json_field tracking)" = cgroup
    check "json: the root is /sys/fs/cgroup/cleanup_agent.slice (got $(json_field cgroup_root))" \
        test "$(json_field cgroup_root)" = /sys/fs/cgroup/cleanup_agent.slice
    check "json: ok true" test "$(json_field ok)" = true
    check "check left no cgroup outside cleanup_agent.slice" test -z "$(ls -d /sys/fs/cgroup/cleanup-agent* 2>/dev/null)"
    suite_end
fi

uid=$(id -u)
manager=/sys/fs/cgroup/user.slice/user-$uid.slice/user@$uid.service
case_begin "check as $(id -un) from a login session: process tracking, limits and engine each with their fix, exit 3"
agent_run check
rc=$?
sed 's/^/  | /' "$out"
check_rc 3 "$rc"
check "no writable cgroup: process-tracking mode" grep -qE '^  cgroup mode +no writable cgroup: process-tracking mode' "$out"
check "session tracking: yes" says "session tracking" yes
check "escape-proof tree kill: no" says "escape-proof tree kill" no
check "memory limit: no" says "memory limit (--memory)" no
check "the fix names the user manager (systemd-run --user, loginctl enable-linger)" \
    grep -q "fix: run it in a unit with a delegated cgroup: systemd-run --user --scope -p Delegate=yes .*loginctl enable-linger $(id -un)" "$out"
if id -nG | grep -qw docker; then
    check "Docker engine: yes (in the docker group)" says "Docker engine" yes
else
    check "Docker engine: no (not in the docker group)" says "Docker engine" no
    check "the fix names the docker group" grep -q "usermod -aG docker $(id -un)" "$out"
fi
check "state directory: yes, in XDG_RUNTIME_DIR" grep -qE "^  yes  state directory +$XDG_RUNTIME_DIR/cleanup-agent" "$out"

case_begin "check as $(id -un) from a user service: the user manager's systemd driver and its cleanup_agent.slice"
rc=$(user_service ca-check "$(command -v "$agent") check --format json")
cp "$out" "$work/json"
sed 's/^/  | /' "$work/json" | head -n 14
check "json: cgroup_driver systemd (got $(json_field cgroup_driver))" test "$(json_field cgroup_driver)" = systemd
check "json: tracking cgroup" test "$(json_field tracking)" = cgroup
check "json: the root is the user manager's cleanup_agent.slice (got $(json_field cgroup_root))" \
    test "$(json_field cgroup_root)" = "$manager/cleanup_agent.slice"
# Limits as the user manager was given them (Debian 12's user@.service delegates memory and pids, not cpu).
for c in memory pids cpu; do
    want=false
    grep -qw "$c" "$manager/cgroup.controllers" && want=true
    got=$(awk -v k="\"limit_$c\":" '$1 == k { f = 1 } f && $1 == "\"ok\":" { print $2; exit }' "$work/json" | tr -d ',')
    check "limit_$c: $want as the user manager has it (got $got)" test "$got" = "$want"
done

suite_end
