#!/bin/bash
# GitHub Actions self-hosted runner: the job-completed hook. After each job, even a cancelled one, collects what
# it left behind when `cleanup-agent run` could not clean up itself (the runner killed the step's whole tree, the
# agent's guardian included): processes, containers, networks, volumes, cgroups and registry files of dead sessions.
# A session whose guardian is still collecting holds its lock: gc leaves it to the guardian.
# Install and state directory: as github-runner-job-started.sh says. Exits 0: a hook's failure would fail the job.
set -uo pipefail
export CLEANUP_AGENT_STATE_DIR=${CLEANUP_AGENT_STATE_DIR:-${XDG_RUNTIME_DIR:-$HOME/.local/state}/cleanup-agent}
[[ $EUID -ne 0 ]] || unset CLEANUP_AGENT_STATE_DIR # root's sessions live in /run/cleanup-agent
agent=${CLEANUP_AGENT:-cleanup-agent}
echo "cleanup-agent: sessions on $(hostname) after the job:"
"$agent" ps || true
rc=0
"$agent" gc || rc=$?
if ((rc != 0)); then
    echo "::warning::cleanup-agent gc exited $rc: something this job left could not be collected (above)"
fi
exit 0
