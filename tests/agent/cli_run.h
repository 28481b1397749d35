/* Runs the cleanup-agent binary as a user would and captures what it says. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct cli_result {
  int status; /* exit code, or 128+N when killed by signal N */
  char out[16384];
  char err[16384];
};

/* Runs AG_BINARY with argv (NULL-terminated, without argv[0]) and the extra environment entries env (NULL or a
 * NULL-terminated list of "K=V", added to the current environment). Aborts the test on a harness failure. */
void cli_run(struct cli_result *r, const char *const *argv, const char *const *env);

/* The live processes (zombies excepted) whose environment holds env_entry ("K=V" exactly; NULL: none), or whose
 * cgroup (v1 or v2) is named cgroup_leaf or lies below one (NULL: none), and every descendant of those (found by
 * their parents in /proc: a child that cleared its environment, `env -i`, is found too). The first max pids go to
 * ret_pids; returns how many there are. */
int cli_find_processes(const char *env_entry, const char *cgroup_leaf, pid_t *ret_pids, size_t max);
/* What is left of session id's tree: cli_find_processes with CLEANUP_AGENT_SESSION=id and the leaf run-<id>. */
int cli_count_session_processes(const char *id);
int cli_find_session_processes(const char *id, pid_t *ret_pids, size_t max);
/* cli_find_processes by the environment entry "K=V" alone (with the descendants of those that hold it). */
int cli_count_env_processes(const char *entry);
int cli_find_env_processes(const char *entry, pid_t *ret_pids, size_t max);

/* Number of lines in s. */
size_t cli_count_lines(const char *s);
