/* Runs the cleanup-agent binary as a user would and captures what it says. */
#pragma once

#include <stddef.h>

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

/* Number of lines in s. */
size_t cli_count_lines(const char *s);
