/* Runs the cleanup-agent binary as a user would and captures what it says. */
#pragma once

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

/* Processes whose environment says CLEANUP_AGENT_SESSION=id: what is left of a session's tree. */
int cli_count_session_processes(const char *id);
/* Processes whose environment holds the entry "K=V" exactly. */
int cli_count_env_processes(const char *entry);
/* The same, with the first max pids in ret_pids; returns how many there are. */
int cli_find_env_processes(const char *entry, pid_t *ret_pids, size_t max);

/* Number of lines in s. */
size_t cli_count_lines(const char *s);
