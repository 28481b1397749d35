/* How the agent's own helper processes (the guardian, the watcher for late creates) show in ps, and what of the
 * agent's environment they give up, so that an operator can tell them apart and a CI runner does not take them for
 * part of the job. */
#pragma once

/* Records where the kernel put argv and the environment (the area /proc/PID/cmdline and /proc/PID/environ show):
 * main calls it first thing, before anything parses or changes either. */
void ag_process_name_init(int argc, char **argv);

/* Names the calling process: comm (prctl PR_SET_NAME, 15 bytes: short_name) and its command line, name, as systemd's
 * rename_process does: a new argv area of its own where the kernel lets us (PR_SET_MM, CAP_SYS_RESOURCE), else the
 * recorded argv area overwritten (name cut to fit it). */
void ag_process_rename(const char *short_name, const char *name);

/* The CI runners' tracking variables: a runner kills at the job's end every process whose environment holds them. */
#define AG_RUNNER_TRACKING_VARS "RUNNER_TRACKING_ID", "BUILD_ID", "JENKINS_NODE_COOKIE"

/* Drops AG_RUNNER_TRACKING_VARS from the environment and from the recorded environment area, which is what a runner
 * reads in /proc/PID/environ (the entries are zeroed in place: nothing else moves). For a helper that must outlive
 * the job's end. */
void ag_process_drop_tracking_env(void);
