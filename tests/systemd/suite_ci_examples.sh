# shellcheck shell=bash disable=SC2016,SC2154
# Sourced after lib.sh (its work, out, err, agent) by bash -c in the VM (as root); single quotes are meant.
# tests/systemd/suite_ci_examples.sh: the CI examples of deploy/ci/ run as written on a stock Debian 12 host, by a
# non-root runner user ("runner", in the docker group, lingering: its systemd user manager runs) whose runner is a
# service of its user manager (the user manager path: the agent asks that manager for the session's scope):
# - github-actions.yml: the "Test" step's `run:` script with the job's `env:`, as the runner runs it (bash -e), with
#   a stand-in `make` whose `check` leaks a container, a network, a volume and a tree that ignores SIGTERM;
# - the runner's job hooks (github-runner-job-started.sh, -completed.sh) and GitLab's pre_build_script
#   (gitlab-runner-config.toml), each after a job that was cancelled hard (agent and guardian SIGKILLed): the hook
#   must collect what the dead session left.
# needs: deploy/ci/github-actions.yml
# needs: deploy/ci/github-runner-job-started.sh
# needs: deploy/ci/github-runner-job-completed.sh
# needs: deploy/ci/gitlab-runner-config.toml

runner=runner
chmod -R a+rX "$files" # the examples are run by the runner user
id -u "$runner" >/dev/null 2>&1 || useradd -m -s /bin/bash -G docker "$runner"
loginctl enable-linger "$runner"
ruid=$(id -u "$runner")
rhome=$(getent passwd "$runner" | cut -d: -f6)
wait_for 60 systemctl is-active -q "user@$ruid.service" || echo "  user@$ruid.service did not start"
# An image the VM can run without a registry: sleep and the libraries it needs.
if ! docker image inspect ca-sleep:latest >/dev/null 2>&1; then
    tar -C / -chf - usr/bin/sleep lib64/ld-linux-x86-64.so.2 usr/lib/x86_64-linux-gnu/libc.so.6 |
        docker import - ca-sleep:latest >/dev/null
fi
as_runner() { runuser -u "$runner" -- env -C "$rhome" HOME="$rhome" XDG_RUNTIME_DIR="/run/user/$ruid" "$@"; }
unit_dir=$rhome/.config/systemd/user
as_runner mkdir -p "$unit_dir" "$rhome/bin" "$rhome/repo" "$rhome/temp"
job=$rhome/job

# The stand-in for the repository's `make check`: what a leaky integration suite does through DOCKER_HOST.
as_runner tee "$rhome/bin/make" >/dev/null <<SH
#!/bin/sh
[ "\$1" = check ] || { echo "make: no rule \$1" >&2; exit 2; }
cut -d: -f3 /proc/self/cgroup >$job.cgroup
cat "/sys/fs/cgroup\$(cut -d: -f3 /proc/self/cgroup)/memory.max" >$job.memory
docker run -d --network none ca-sleep:latest /usr/bin/sleep 1000 >/dev/null || exit 92
$(leaky_script "$job.id" "exit 0")
SH
chmod +x "$rhome/bin/make"

# user_job NAME SCRIPT [ENV...]: SCRIPT (a file) as the runner's user service NAME, by bash -e as a runner runs a
# step, with ENV (K=V) and the runner's PATH (the stand-in make first); stdout and stderr in $job.out, $job.err.
user_job() {
    local name=$1 script=$2
    shift 2
    {
        echo "[Service]"
        echo "Type=exec"
        echo "WorkingDirectory=$rhome/repo"
        echo "Environment=PATH=$rhome/bin:/usr/bin:/bin RUNNER_TEMP=$rhome/temp $*"
        echo "ExecStart=/bin/bash -e $script"
        echo "StandardOutput=file:$job.out"
        echo "StandardError=file:$job.err"
    } | as_runner tee "$unit_dir/$name.service" >/dev/null
    rm -f "$job".*
    as_runner systemctl --user daemon-reload
    as_runner systemctl --user start "$name.service"
}
user_job_done() { ! as_runner systemctl --user is-active -q "$1.service"; }
docker_all_left() {
    docker ps -aq --filter "label=io.cleanup-agent.session=$1"
    docker_left "$1"
}
no_docker_all_left() { test -z "$(docker_all_left "$1")"; }
runner_procs() { grep -lsaF "CLEANUP_AGENT_SESSION=$1" /proc/[0-9]*/environ 2>/dev/null | wc -l; }

case_begin "github-actions.yml: the Test step as written, as a runner user service: limits, nothing left"
yml=$files/deploy/ci/github-actions.yml
# The step's `run: |` block, unindented, and the job's CLEANUP_AGENT_* env, as the runner gives them.
awk '/- name: Test \(nothing it starts outlives it\)/ { t = 1 } t && /^ +run: \|$/ { r = 1; match($0, /^ */); n = RLENGTH; next }
     r && /^ *$/ { print ""; next } r { match($0, /^ */); if (RLENGTH <= n) exit; print substr($0, n + 3) }' "$yml" \
    >"$work/step.sh"
sed 's/^/  step: /' "$work/step.sh"
env_line=$(sed -n 's/^      \(CLEANUP_AGENT_[A-Z_]*\): \(.*\)$/\1=\2/p' "$yml" | tr '\n' ' ')
check "the step runs cleanup-agent run with limits" grep -q 'cleanup-agent run --memory' "$work/step.sh"
check "the job's env names CLEANUP_AGENT_TTL ($env_line)" grep -q CLEANUP_AGENT_TTL <<<"$env_line"
install -o "$runner" -m 644 "$work/step.sh" "$rhome/step.sh"
user_job gha-step "$rhome/step.sh" "$env_line"
check "the step ended" wait_for 240 user_job_done gha-step
status=$(as_runner systemctl --user show -p ExecMainStatus --value gha-step.service)
sed 's/^/  | /' "$job.err" | tail -n 8
check "the step exited 0 (got $status)" test "$status" = 0
check "the job ran in a scope of the runner's cleanup_agent.slice ($(cat "$job.cgroup" 2>/dev/null))" \
    grep -q "^/user.slice/user-$ruid.slice/user@$ruid.service/cleanup_agent.slice/cleanup-agent-run-" "$job.cgroup"
check "--memory 8G was applied (memory.max $(cat "$job.memory" 2>/dev/null))" grep -qx 8589934592 "$job.memory"
check "the report is in RUNNER_TEMP" test -s "$rhome/temp/cleanup-agent-report.json"
id=$(cat "$job.id" 2>/dev/null || echo none)
check "no process of session $id left" wait_for 10 test "$(runner_procs "$id")" -eq 0
check "no container, network or volume of session $id left: $(docker_all_left "$id" | tr '\n' ' ')" \
    no_docker_all_left "$id"

# cancelled_job: a job whose runner killed everything of it, the agent's guardian too (a hard cancel). The session
# id in $id; its tree, container, network and volume are left behind.
cancelled_job() {
    printf 'cleanup-agent run -- make check\n' >"$work/cancelled.sh"
    install -o "$runner" -m 644 "$work/cancelled.sh" "$rhome/cancelled.sh"
    sed -i "s/^exit 0\$/sleep 1000/" "$rhome/bin/make"
    user_job gha-cancelled "$rhome/cancelled.sh" "$env_line"
    # 400 s: under TCG on a loaded host the second such job was seen taking over 180 s to reach the engine.
    wait_for 400 test -s "$job.id" || {
        check "the cancelled job started ($(as_runner systemctl --user is-active gha-cancelled.service 2>&1); stderr: $(
            tail -n 3 "$job.err" 2>/dev/null | tr '\n' ' '))" false
        id=none
        return
    }
    id=$(cat "$job.id")
    check "its container runs" wait_for 30 test -n "$(docker ps -q --filter "label=io.cleanup-agent.session=$id")"
    local guardian
    guardian=$(sed -n 's/.*"guardian_pid":[[:space:]]*\([0-9]*\).*/\1/p' /run/user/"$ruid"/cleanup-agent/sessions/"$id".json)
    as_runner systemctl --user kill -s KILL gha-cancelled.service
    [[ -n $guardian ]] && kill -KILL "$guardian"
    wait_for 30 user_job_done gha-cancelled
    sed -i 's/^sleep 1000$/exit 0/' "$rhome/bin/make"
    check "the dead session's processes are still there" test "$(runner_procs "$id")" -gt 0
}
# collected_by WHAT: after the hook ran, nothing of session $id is left.
collected_by() {
    check "$1 left no process of session $id ($(runner_procs "$id"))" wait_for 10 test "$(runner_procs "$id")" -eq 0
    check "$1 left no container, network or volume of session $id: $(docker_all_left "$id" | tr '\n' ' ')" \
        no_docker_all_left "$id"
    check "$1 left no state file of session $id" test -z "$(find /run/user/"$ruid"/cleanup-agent/sessions -mindepth 1 -maxdepth 1 -name "*$id*" 2>/dev/null)"
}

for hook in github-runner-job-started.sh github-runner-job-completed.sh; do
    case_begin "the runner's $hook collects what a hard-cancelled job left"
    cancelled_job
    as_runner bash "$files/deploy/ci/$hook" >"$out" 2>"$err"
    rc=$?
    sed 's/^/  | /' "$out" "$err" | tail -n 6
    check_rc 0 "$rc"
    collected_by "$hook"
done

case_begin "GitLab's pre_build_script (gitlab-runner-config.toml) collects what a hard-cancelled job left"
cancelled_job
toml=$files/deploy/ci/gitlab-runner-config.toml
pre=$(sed -n 's/^ *pre_build_script = "\(.*\)"$/\1/p' "$toml" | sed 's/\\"/"/g')
genv=$(sed -n 's/^ *environment = \["\(.*\)"\]$/\1/p' "$toml")
check "the example has a pre_build_script ($pre) and the state dir ($genv)" test -n "$pre" -a -n "$genv"
# The example's state dir is the runner's home's; this job used the default: the same variable for both.
as_runner env "CLEANUP_AGENT_STATE_DIR=/run/user/$ruid/cleanup-agent" bash -c "$pre" >"$out" 2>"$err"
rc=$?
sed 's/^/  | /' "$out" "$err" | tail -n 6
check_rc 0 "$rc"
collected_by "pre_build_script"

rm -f "$unit_dir"/gha-*.service
as_runner systemctl --user daemon-reload
suite_end
