/* The life of a session, one implementation for run and container-seq (the order is written down in lifecycle.c). */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent.h"
#include "collect.h"
#include "guardian.h"
#include "nesting.h"
#include "proxy.h"

#define AG_SESSION_MAX_WARNINGS 16
/* How long the Docker proxy lets requests in flight finish at the session's end. */
#define AG_SESSION_PROXY_DRAIN_USEC (2 * 1000000ULL)

enum ag_session_proxy {
  AG_SESSION_NO_PROXY,       /* the command talks to the engine itself */
  AG_SESSION_PROXY,          /* a proxy if the engine can have one; without it the session goes on (a warning) */
  AG_SESSION_PROXY_REQUIRED, /* no proxy is an error */
};

/* What kind of session to bring up; must outlive the session. */
struct ag_session_config {
  const char *mode; /* "run" or "container-seq": the registry's mode */
  const struct ag_globals *globals;
  char **command;                  /* recorded in the registry, NULL-terminated */
  uint64_t ttl_usec;               /* the resources expire after this (gc on shared engines); 0: never */
  struct dk_client_options engine; /* how to talk to the engine; the host comes from the globals */
  bool engine_required;            /* false: without an engine the session cleans up processes only */
  bool cgroup_required;            /* the command runs in a cgroup leaf (run): no cgroup root is an error */
  bool cgroup_limits;              /* ... with limits: tracking by process group will not do */
  bool cgroup_one_path;            /* the leaf at one path in every hierarchy (run --contain-containers) */
  enum ag_session_proxy proxy;
  const char *const *proxy_labels; /* extra labels the proxy adds (run's --label); NULL-terminated or NULL */
  bool images_remove;              /* run --images=remove: recorded in the registry, applied by every collection */
  /* A first call on a lazy engine client, made in the background once it connected while the session starts (run's
   * pressure look); not called without a connection (dk_client_connect_start). NULL: none. */
  void (*engine_first)(const struct ag_env *env, void *userdata);
  void *engine_first_userdata;
};

/* A session of this agent. The fields are for reading; the functions below change them. */
struct ag_session {
  const struct ag_session_config *cfg;
  char id[AG_SESSION_ID_LEN + 1];
  const char *docker_host; /* the engine's URL, given or the default */
  struct ag_env env;       /* the state dir; the cgroup root and the engine client, each NULL without one */
  struct ag_registry reg;  /* as written; its strings belong to the session and its config */
  pthread_mutex_t reg_mu;  /* held to change and write reg while the proxy runs: its thread records the engine */
  char **labels;           /* the session labels of everything it creates */
  struct ag_proxy *proxy;  /* NULL without a proxy */
  char *proxy_host;        /* unix://<the proxy's socket>, NULL without a proxy */
  int lock_fd;
  struct ag_guardian guardian;
  struct ag_nesting nest;                  /* the session this one runs in, if any */
  bool registered;                         /* the guardian runs: ag_session_end has something to end */
  atomic_bool ending;                      /* ag_session_end began (read by the engine client's thread) */
  struct ag_collect_stats startup;         /* what the collection of dead sessions removed */
  struct ag_collect_stats collected;       /* what the end removed */
  struct ag_not_removed not_removed;       /* what the end could not remove, named */
  bool kept;                               /* the end left something: the session stays registered */
  char *warnings[AG_SESSION_MAX_WARNINGS]; /* every warning so far, for a report */
  size_t n_warnings;
  char *left; /* what the command could not remove itself (ag_session_left); NULL when nothing */
};

/* Opens the state dir, the engine client and the cgroup root. Nothing is collected or written yet, so a command may
 * still refuse to start (a bad checkpoint) without side effects. */
int ag_session_open(const struct ag_session_config *cfg, struct ag_session **ret, ca_error **err);
/* The cgroup root a session of this agent uses (run, container-seq, and check to tell which): the leaf of the
 * session this one is nested in, else --cgroup-root, else a delegated subtree or <mount>/cleanup-agent.slice; process
 * tracking when no cgroup is writable. Created as needed, as cg_root_open does. */
int ag_session_cgroup_root_open(const struct ag_globals *g, const struct ag_nesting *nest, cg_root **ret,
                                ca_error **err);
/* The same, with cg_root_options.one_path (run --contain-containers). */
int ag_session_cgroup_root_open_for(const struct ag_globals *g, const struct ag_nesting *nest, bool one_path,
                                    cg_root **ret, ca_error **err);
/* Collects dead sessions, then brings the session up: id, lock, guardian, registry, proxy. On failure the caller
 * still calls ag_session_end (a no-op when nothing needs ending). */
int ag_session_begin(struct ag_session *s, ca_error **err);
/* Ends the session once the command killed what it ran itself: proxy, what is left (ag_collect_session, the code
 * the guardian runs), registry last and only when everything went, guardian released. 0 when everything went;
 * else the session stays registered and a warning says why. Idempotent. */
int ag_session_end(struct ag_session *s);
/* Ends the session if it was not, then frees it. NULL is fine. */
void ag_session_free(struct ag_session *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct ag_session *, ag_session_free)

/* The guardian was reaped by the command's supervisor (it died): the end will not wait for it. */
void ag_session_guardian_exited(struct ag_session *s);
/* Something of the session the command could not remove itself (run: its cgroup leaf): the end keeps the session
 * registered with this reason, for the next start or gc, whatever else it removes. The first one counts. */
void ag_session_left(struct ag_session *s, const char *fmt, ...) _printf_(2, 3);
/* Logs a warning and keeps it for the session's report. */
void ag_session_warn(struct ag_session *s, const char *fmt, ...) _printf_(2, 3);
