/* The guardian: a small process forked at the start of a session, outside its cgroup, that cleans the session up
 * when the agent dies without finishing (SIGKILL, OOM, crash). DESIGN.md cleanup layer 3. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common.h"
#include "creates.h"
#include "session.h"

struct ag_guardian_config {
  const char *session_id;
  const char *state_dir;   /* resolved path of the state dir */
  const char *cgroup_root; /* --cgroup-root as given (NULL: default) */
  const char *docker_host; /* engine URL, NULL without an engine (the registry's, once written, counts) */
  int lock_fd;             /* the session's lease lock: the guardian keeps it while it cleans */
  uint64_t teardown_usec;  /* how long collecting the session of a dead agent may take (0: AG_TEARDOWN_USEC) */
};

struct ag_guardian {
  pid_t pid;
  int fd;                     /* write end of the pipe the guardian watches; -1 when released */
  struct ag_creates *creates; /* the page it reads the creates in flight from (creates.h); NULL without one */
};

/* Forks the guardian. It watches a pipe to the agent: a byte means "finished normally, exit"; end-of-file without
 * one means the agent died, and it collects the session, says what it removed on stderr, and exits. */
int ag_guardian_start(const struct ag_guardian_config *cfg, struct ag_guardian *ret, ca_error **err);
/* Every way to the engine the session gave its command counts its creates (it has the session's proxy): a guardian
 * whose agent died with no create in flight then exits once it collected, without watching for late creates. */
void ag_guardian_all_creates_counted(struct ag_guardian *g);
/* Tells the guardian the session ended normally and reaps it. */
void ag_guardian_release(struct ag_guardian *g);

/* How many dead sessions one watcher for late creates takes; a start that hands off more starts another. */
#define AG_WATCH_MAX 256

/* Dead sessions a start-up collection collected and hands off to one watcher: each one's id, the engine its registry
 * recorded and its lock (taken by the caller). */
struct ag_watch_list {
  size_t n;
  struct ag_watched {
    char id[AG_SESSION_ID_LEN + 1];
    char *docker_host;
    int lock_fd;
  } items[AG_WATCH_MAX];
};

/* Adds session id (docker_host copied, lock_fd taken over); -ENOMEM, or -ENOSPC when the list is full (then nothing
 * was taken). */
int ag_watch_add(struct ag_watch_list *w, const char *id, const char *docker_host, int lock_fd);
/* Closes the locks and empties the list. */
void ag_watch_clear(struct ag_watch_list *w);
/* Starts one process, outside our process tree, that watches the engine each session recorded for creates that
 * land after the collection (once a second for 10 s), keeps each session's lock while it does, and then forgets
 * each session whose last look succeeded (the others stay registered with the reason). */
int ag_watcher_start(const char *state_dir, const struct ag_watch_list *w, ca_error **err);
