/* Collection of one session's leftovers: its cgroup tree, its labeled containers, networks and volumes, its registry.
 * The same code runs at the normal end of a session, in the guardian, at startup for dead sessions, in kill and gc. */
#pragma once

#include "cgroup.h"
#include "docker.h"
#include "session.h"

/* What a collection found and removed. */
struct ag_collect_stats {
  unsigned processes; /* processes killed */
  unsigned containers, networks, volumes;
  unsigned cgroups;
  unsigned kept;   /* resources spared by io.cleanup-agent.keep=true */
  unsigned failed; /* resources that could not be removed */
};

/* Where a collection works: any of cg and dk may be NULL (no cgroups, no engine). */
/* Engine timeouts of run and the guardian. They bound each call, not a whole collection: a short call (ping, list,
 * inspect, create, start) gives up after 10 s and a transient failure of an idempotent one is retried at most twice
 * (0.1 s and 0.2 s apart), so one call lasts at most about 30 s; removals keep the client's own 60 s a request (sent
 * in parallel); streams (events, wait, logs) are ended by their caller's cancel. A collection makes a few such calls,
 * so a wedged engine can hold a CI job for minutes, not forever; what is left stays registered and the next start or
 * gc collects it. */
#define AG_DOCKER_TIMEOUT_MS 10000
#define AG_DOCKER_RETRIES 2
struct ag_env {
  struct ag_state *state;
  cg_root *cg;
  struct dk_client *dk;
};

/* Removes the containers (force, anonymous volumes), then networks, then volumes labeled with the session id,
 * re-checking the label of every listed item before deleting it and sparing keep=true. Stops at the first kind the
 * engine cannot list (containers must go before their networks and volumes can). */
int ag_collect_docker(struct dk_client *dk, const char *id, struct ag_collect_stats *st, ca_error **err);

/* Kills the processes of the session's cgroup leaf and removes it; nothing to do when there is no leaf. */
int ag_collect_cgroup(cg_root *cg, const char *id, struct ag_collect_stats *st, ca_error **err);

/* The cgroup, then the engine's resources: everything of session id but its registry. Goes on after a failure of one
 * part and reports the first error. */
int ag_collect_resources(const struct ag_env *env, const char *id, struct ag_collect_stats *st, ca_error **err);

/* Collects everything of session id (cgroup, then Docker, then the registry). The caller holds the session's lock.
 * The registry goes only when everything else went (a resource that could not be removed is an error, EBUSY). The
 * end of a session, the guardian and kill all end a session here. */
int ag_collect_session(const struct ag_env *env, const char *id, struct ag_collect_stats *st, ca_error **err);

/* Forgets session id once its collection went: its socket, registry and lock file. Every path that ends a session of
 * this host ends here (the session's end, the guardian, kill, the start-up collection and its late-only guardian), so
 * a rule for when a registry may go has this one place. gc keeps its own: it forgets sessions of any host. */
int ag_collect_forget(const struct ag_env *env, const char *id, ca_error **err);

/* "killed 3 processes, removed 1 container, 1 network" or "" when nothing was done; buf of size len. */
const char *ag_collect_stats_format(const struct ag_collect_stats *st, char *buf, size_t len);
