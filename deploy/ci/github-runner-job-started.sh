#!/bin/bash
# GitHub Actions self-hosted runner: the job-started hook. Before each job, collects what earlier jobs of this
# host left when they were cancelled or their runner died with them (agent and guardian killed: nobody else was
# left to clean): their processes, containers, networks, volumes, cgroups and registry files. Only dead and expired
# sessions are collected (cleanup-agent-gc(1)); a live session, another job's on this host, is never touched.
#
# Install: in the runner's .env (next to run.sh), then restart the runner service:
#   ACTIONS_RUNNER_HOOK_JOB_STARTED=/usr/share/doc/cleanup-agent/ci/github-runner-job-started.sh
#   ACTIONS_RUNNER_HOOK_JOB_COMPLETED=/usr/share/doc/cleanup-agent/ci/github-runner-job-completed.sh
# (or copy both anywhere the runner's user may execute). The state directory must be the one the jobs use: the
# workflow's CLEANUP_AGENT_STATE_DIR (deploy/ci/github-actions.yml), else the default, given here the same way.
# A hook's failure fails the job: this one only says what it could not collect, and exits 0.
set -uo pipefail
export CLEANUP_AGENT_STATE_DIR=${CLEANUP_AGENT_STATE_DIR:-${XDG_RUNTIME_DIR:-$HOME/.local/state}/cleanup-agent}
[[ $EUID -ne 0 ]] || unset CLEANUP_AGENT_STATE_DIR # root's sessions live in /run/cleanup-agent
agent=${CLEANUP_AGENT:-cleanup-agent}
echo "cleanup-agent: collecting what earlier jobs on $(hostname) left"
rc=0
"$agent" gc || rc=$?
if ((rc != 0)); then
    echo "::warning::cleanup-agent gc exited $rc: something earlier jobs left could not be collected (above)"
fi
exit 0
