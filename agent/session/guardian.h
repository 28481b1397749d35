/* The guardian: a small process forked at the start of a session, outside its cgroup, that cleans the session up
 * when the agent dies without finishing (SIGKILL, OOM, crash). DESIGN.md cleanup layer 3. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common.h"

struct ag_guardian_config {
  const char *session_id;
  const char *state_dir;   /* resolved path of the state dir */
  const char *cgroup_root; /* --cgroup-root as given (NULL: default) */
  const char *docker_host; /* engine URL, NULL without an engine */
  int lock_fd;             /* the session's lease lock: the guardian keeps it while it cleans */
  bool late_only;          /* the session was collected already: only watch for late creates, then forget it */
  uint64_t teardown_usec;  /* how long collecting the session of a dead agent may take (0: AG_TEARDOWN_USEC) */
};

struct ag_guardian {
  pid_t pid;
  int fd; /* write end of the pipe the guardian watches; -1 when released */
};

/* Forks the guardian. It watches a pipe to the agent: a byte means "finished normally, exit"; end-of-file without
 * one means the agent died, and it collects the session, says what it removed on stderr, and exits. */
int ag_guardian_start(const struct ag_guardian_config *cfg, struct ag_guardian *ret, ca_error **err);
/* Tells the guardian the session ended normally and reaps it. */
void ag_guardian_release(struct ag_guardian *g);
