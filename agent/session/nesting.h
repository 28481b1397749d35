/* A session started inside another session's command (issue 20): `run` in `run`, `container-seq` in `run`. */
#pragma once

#include "session.h"

#define AG_LABEL_OUTER AG_LABEL_PREFIX "outer"
#define AG_ENV_SESSION "CLEANUP_AGENT_SESSION"
#define AG_ENV_OUTER "CLEANUP_AGENT_OUTER"
#define AG_ENV_ENGINE "CLEANUP_AGENT_ENGINE"

struct ag_nesting {
  char parent[AG_SESSION_ID_LEN + 1]; /* the session whose command started us ($CLEANUP_AGENT_SESSION); "" at top */
  char root[AG_SESSION_ID_LEN + 1];   /* the outermost session ($CLEANUP_AGENT_OUTER, else the parent); "" at top */
  char *cgroup_dir;   /* the parent's leaf when this process runs in it: our leaves go inside it, in its kill scope */
  const char *engine; /* the engine behind the parent's proxy ($CLEANUP_AGENT_ENGINE): the one our registry records,
                       * since the proxy we talk through goes with the parent; NULL when not said */
  char outer_label[sizeof(AG_LABEL_OUTER) + AG_SESSION_ID_LEN + 1]; /* "io.cleanup-agent.outer=<root>", "" at top */
};

/* Reads the environment and this process's cgroup (under procfs proc, NULL: /proc). Never fails: at the top, or
 * when what the environment says is not a session id, ret says "not nested". */
void ag_nesting_detect(const char *proc, struct ag_nesting *ret);
void ag_nesting_done(struct ag_nesting *n);
/* The engine a session spreads to what it starts as $CLEANUP_AGENT_ENGINE: the one behind every proxy of the nest. */
const char *ag_nesting_engine(const struct ag_nesting *n, const char *docker_host);
/* The root a session of id spreads to what it starts: its own id at the top. */
const char *ag_nesting_root(const struct ag_nesting *n, const char *id);
