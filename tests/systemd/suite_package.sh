# shellcheck shell=bash disable=SC2154
# Sourced after lib.sh (its work, out, err, agent) by bash -c in the VM.
# tests/systemd/suite_package.sh: the Debian package as an admin installs it on a stock Debian 12 host
# (tests/vm/systemd-vm.sh --deb: `apt-get install ./cleanup-agent_<version>_amd64.deb`, offline): the binary the
# suites run is the package's /usr/bin/cleanup-agent, the units are known to systemd and none is enabled, the man
# pages and the completion are in place, and the gc service runs as shipped.

case_begin "the agent the suites run is the package's /usr/bin/cleanup-agent"
check "dpkg says cleanup-agent is installed" test "$(dpkg-query -W -f '${Status}' cleanup-agent 2>/dev/null)" = \
    "install ok installed"
check "cleanup-agent is /usr/bin/cleanup-agent (got '$(command -v cleanup-agent)')" \
    test "$(command -v cleanup-agent)" = /usr/bin/cleanup-agent
check "/usr/bin/cleanup-agent belongs to the package" test "$(dpkg -S /usr/bin/cleanup-agent 2>&1)" = \
    "cleanup-agent: /usr/bin/cleanup-agent"
version=$(dpkg-query -W -f '${Version}' cleanup-agent 2>/dev/null)
agent_run --version
check "--version names the package's version $version (got '$(head -n 1 "$out")')" \
    grep -qx "cleanup-agent $version" <(head -n 1 "$out")
check "--version names the systemd driver" grep -q "+systemd-driver" "$out"

case_begin "the units are installed, none enabled or started"
for unit in cleanup-agent-gc.service cleanup-agent-gc.timer cleanup-agent-run@.service cleanup_agent.slice; do
    check "systemd knows $unit" test -n "$(systemctl cat "$unit" 2>/dev/null)"
done
check "the gc timer is not enabled (got $(systemctl is-enabled cleanup-agent-gc.timer 2>&1))" \
    test "$(systemctl is-enabled cleanup-agent-gc.timer 2>&1)" = disabled
check "the gc timer is not active" test "$(systemctl is-active cleanup-agent-gc.timer 2>&1)" = inactive
check "the gc service runs /usr/bin/cleanup-agent" grep -q '^ExecStart=/usr/bin/cleanup-agent gc' \
    <(systemctl cat cleanup-agent-gc.service)

case_begin "man pages and bash completion are in place"
for page in cleanup-agent cleanup-agent-run cleanup-agent-container-seq cleanup-agent-gc cleanup-agent-ps \
    cleanup-agent-kill cleanup-agent-check; do
    check "the man page $page(1) is installed" test -s "/usr/share/man/man1/$page.1.gz"
done
check "the bash completion is installed" test -s /usr/share/bash-completion/completions/cleanup-agent

case_begin "the gc service, as shipped, runs and succeeds"
systemctl start cleanup-agent-gc.service >"$out" 2>"$err"
rc=$?
check_rc 0 "$rc"
check "the gc service ended with success ($(systemctl show -p Result --value cleanup-agent-gc.service))" \
    test "$(systemctl show -p Result --value cleanup-agent-gc.service)" = success
journalctl -u cleanup-agent-gc.service --no-pager -o cat | tail -n 5 | sed 's/^/  journal: /'

suite_end
