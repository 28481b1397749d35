/* Collection of one session's leftovers: its cgroup tree, its labeled containers, networks and volumes, its registry.
 * The same code runs at the normal end of a session, in the guardian, at startup for dead sessions, in kill and gc. */
#pragma once

#include "cgroup.h"
#include "docker.h"
#include "session.h"

/* The resources a collection could not remove, each named with why (run's --report names them). */
#define AG_NOT_REMOVED_MAX 1000
struct ag_not_removed {
  struct ag_not_removed_item {
    enum dk_kind kind;
    char *id;
    char *reason;
  } * items;
  size_t n;
  unsigned more; /* not named: past AG_NOT_REMOVED_MAX, or out of memory */
};
void ag_not_removed_done(struct ag_not_removed *l);

/* What a collection found and removed. */
struct ag_collect_stats {
  unsigned processes; /* processes killed */
  unsigned containers, networks, volumes;
  unsigned images; /* --images=remove */
  unsigned cgroups;
  unsigned kept;                      /* resources spared by io.cleanup-agent.keep=true */
  unsigned failed;                    /* resources that could not be removed */
  struct ag_not_removed *not_removed; /* NULL, or where each of them is named */
};

/* Engine timeouts of run and the guardian. They bound each call, not a whole collection: a short call (ping, list,
 * inspect, create, start) gives up after 10 s and a transient failure of an idempotent one is retried at most twice
 * (0.1 s and 0.2 s apart), so one call lasts at most about 30 s; removals keep the client's own 60 s a request (sent
 * in parallel); streams (events, wait, logs) are ended by their caller's cancel. The end of a session and the
 * guardian are bounded as a whole by the teardown deadline (ag_env.deadline_usec); what is left stays registered
 * and the next start or gc collects it. */
#define AG_DOCKER_TIMEOUT_MS 10000
#define AG_DOCKER_RETRIES 2
#define AG_DEFAULT_DOCKER_HOST "unix:///var/run/docker.sock"

/* Engines that did not answer during one invocation, so that a gc or a start with many dead sessions of one engine
 * waits for it once. */
struct ag_engines_down {
  char *hosts[8];
  size_t n;
};
void ag_engines_down_done(struct ag_engines_down *d);

/* What an invocation opened: its state dir, cgroup root and engine client (cg and dk NULL without one). */
struct ag_env {
  struct ag_state *state;
  cg_root *cg;
  struct dk_client *dk;
  const char *docker_host; /* the engine dk is a client of; set when dk is NULL because that engine did not answer */
  /* A teardown's deadline (CLOCK_MONOTONIC, 0: none): the engine is asked through a client whose timeouts fit in
   * what is left and are not retried, no phase starts after it, and what is left then stays registered. */
  uint64_t deadline_usec;
  struct ag_engines_down *down; /* NULL: each session's collection asks its engine itself */
  /* The end of a session: what its proxy saw the engine create ("c:<id>", "n:<id>", "v:<name>"; NULL: nothing),
   * removed by id with what the listing by label finds, in the same requests (collect.c: ids_to_remove). */
  char **recorded;
};

/* Removes the containers (force, anonymous volumes), then networks, then volumes labeled with the session id,
 * re-checking the label of every listed item before deleting it and sparing keep=true. Stops at the first kind the
 * engine cannot list (containers must go before their networks and volumes can). */
int ag_collect_docker(struct dk_client *dk, const char *id, struct ag_collect_stats *st, ca_error **err);

/* Kills the processes of the session's cgroup leaf and removes it; nothing to do when there is no leaf. */
int ag_collect_cgroup(cg_root *cg, const char *id, struct ag_collect_stats *st, ca_error **err);

/* Everything of session id but its registry, against what the session recorded (rec, its registry; NULL when it has
 * none: env's engine and cgroup root stand in): its cgroup root and its engine, env's own used when they are the
 * same, else opened here. 0 only when that engine answered, every kind was listed and removed, and the cgroup leaf
 * was killed and removed; else the first error, and the rest was still tried. */
int ag_collect_recorded(const struct ag_env *env, const struct ag_registry *rec, const char *id,
                        struct ag_collect_stats *st, ca_error **err);

/* Collects everything of session id (ag_collect_recorded), then its registry: forgotten when everything went and
 * the caller knows of nothing left (left: what it could not remove itself, NULL when nothing), else kept with the
 * reason written into it, for the next start or gc. The caller holds the session's lock. The end of a session, the
 * guardian, kill and gc all end a session here. */
int ag_collect_session(const struct ag_env *env, const struct ag_registry *rec, const char *id, const char *left,
                       struct ag_collect_stats *st, ca_error **err);
/* Its last step, for a caller that had more to do between the collection and the registry (the guardian's watch for
 * late creates): forgets session id when r (the collection's result) is 0, else keeps it with the reason *why (which
 * goes to *err). Returns r, or the forgetting's error. */
int ag_collect_settle(const struct ag_env *env, const char *id, int r, ca_error **why, ca_error **err);

/* Writes why session id stays registered, and when, into its registry (collect_error, collect_error_at); a session
 * without a readable registry stays listed by its lock file. */
void ag_collect_keep(struct ag_state *state, const char *id, const char *why);

/* Forgets session id once its collection went: its socket, registry and lock file. The one place a registry goes:
 * after ag_collect_session (ag_collect_settle), or the late-create watcher's last look at the engine the session
 * recorded. */
int ag_collect_forget(const struct ag_env *env, const char *id, ca_error **err);

/* Whether the session of registry rec ran nested in session `in` (NULL: none): its cgroup root is in's leaf run-<in>
 * or below it (a session nested in a nested one), so its command reached the engine through in's proxy. */
bool ag_collect_nested_in(const struct ag_registry *rec, const char *in);

/* Where ag_collect_dead hands a collected session that recorded an engine, to be watched for creates that land late
 * (the lifecycle's watcher): take returns 0 when it took the session over, with its lock (then *lock is -1). */
struct ag_collect_late {
  int (*take)(void *ctx, const char *id, const char *docker_host, int *lock);
  void *ctx;
};

/* Collects the dead sessions of env's state dir (their lock free), or with only_nested those nested in session nest
 * alone (ag_collect_nested_in), each against what its registry recorded: its cgroup, its Docker resources, then its
 * registry. One nested in nest (NULL: none) is forgotten at once, since its creates went through nest's proxy:
 * drained at nest's end (those in flight were removed by id), or dead with nest's agent, whose guardian watched for
 * them. Another that recorded an engine goes to late (NULL: forgotten at once too). Returns how many, or a negative
 * errno when the state dir could not be listed; one not collected stays registered, with the reason. */
int ag_collect_dead(const struct ag_env *env, const char *nest, bool only_nested, const struct ag_collect_late *late,
                    struct ag_collect_stats *st, ca_error **err);

/* "killed 3 processes, removed 1 container, 1 network" or "" when nothing was done; buf of size len. */
const char *ag_collect_stats_format(const struct ag_collect_stats *st, char *buf, size_t len);
