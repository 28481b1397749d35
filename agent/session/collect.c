/* Collection of one session's leftovers, shared by run, the guardian, startup collection, kill and gc. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "collect.h"
#include "disk.h"
#include "nesting.h"
#include "receipt.h"

/* Time given to a cgroup kill of a leftover tree before it is reported as stuck. */
#define COLLECT_KILL_TIMEOUT_USEC (10 * 1000000ULL)

static const char *const kind_names[] = {
    [DK_CONTAINER] = "container", [DK_NETWORK] = "network", [DK_VOLUME] = "volume"};

/* The teardown's deadline has passed: nothing more is started. */
static bool past(uint64_t deadline) {
  return deadline && ca_now_monotonic_usec() >= deadline;
}

/* Requests in flight while removing one kind: a collection without a deadline (gc has its own --parallel), and the
 * end of a session or the guardian, which keep this many slots busy until the deadline (docker rm -f sends all its
 * DELETEs at once, compose down 64). */
#define COLLECT_PARALLEL 8u
#define TEARDOWN_PARALLEL 64u

/* Removes ids; under a deadline no request starts after it, the ones not tried failing with ETIMEDOUT. */
static int remove_until(struct dk_client *dk, enum dk_kind kind, const char **ids, size_t n, uint64_t deadline,
                        ca_error **errors, bool *gone, ca_error **err) {
  return dk_remove_many_until(dk, kind, ids, n, deadline ? TEARDOWN_PARALLEL : COLLECT_PARALLEL, deadline, errors, gone,
                              err);
}

/* Names one resource not removed in l; past the cap (or out of memory) it is only counted. */
static void not_removed_add(struct ag_not_removed *l, enum dk_kind kind, const char *id, const char *reason) {
  if (l->n % 16 == 0 && l->n < AG_NOT_REMOVED_MAX) {
    struct ag_not_removed_item *v = realloc(l->items, (l->n + 16) * sizeof(*v));
    if (!v) {
      l->more++;
      return;
    }
    l->items = v;
  }
  struct ag_not_removed_item it = {kind, strdup(id), strdup(reason)};
  if (l->n >= AG_NOT_REMOVED_MAX || !it.id || !it.reason) {
    free(it.id);
    free(it.reason);
    l->more++;
    return;
  }
  l->items[l->n++] = it;
}

void ag_not_removed_done(struct ag_not_removed *l) {
  for (size_t i = 0; i < l->n; i++) {
    free(l->items[i].id);
    free(l->items[i].reason);
  }
  free(l->items);
  *l = (struct ag_not_removed){0};
}

/* The two labels that make an object session id's: its own, and the outer label of the sessions nested in it. */
static const char *const session_labels[] = {AG_LABEL_SESSION, AG_LABEL_OUTER};

/* True when list (NULL: none) holds id. */
static bool listed_has(const struct dk_list *list, const char *id) {
  for (size_t i = 0; list && i < list->n; i++)
    if (streq(list->items[i].id, id))
      return true;
  return false;
}

/* Into ids (room for list's items and recorded's): what list holds of session id, by its label (the engine's filter
 * is not trusted alone) and not keep=true; then what recorded names of kind that the listing missed (a label the
 * engine dropped), but a volume only while it carries the session label: a name, unlike an id, may be taken again
 * once the suite removed the session's volume. Returns how many. */
static size_t ids_to_remove(const struct dk_list *list, enum dk_kind kind, const char *label, const char *id,
                            const char *const *recorded, const char **ids, struct ag_collect_stats *st) {
  size_t n = 0;
  for (size_t i = 0; list && i < list->n; i++) {
    const struct dk_item *it = &list->items[i];
    const char *sess = dk_item_label(it, label);
    if (!sess || !streq(sess, id))
      continue;
    const char *keep = dk_item_label(it, AG_LABEL_KEEP);
    if (keep && streq(keep, "true")) {
      st->kept++;
      continue;
    }
    ids[n++] = it->id;
  }
  static const char prefixes[] = {[DK_CONTAINER] = 'c', [DK_NETWORK] = 'n', [DK_VOLUME] = 'v'};
  for (const char *const *m = recorded; kind != DK_VOLUME && m && *m; m++)
    if ((*m)[0] == prefixes[kind] && (*m)[1] == ':' && (*m)[2] && !listed_has(list, *m + 2))
      ids[n++] = *m + 2;
  return n;
}

/* Removes what list (of kind, listed by label=id; NULL: list it now) holds of session id, and what recorded (NULL:
 * nothing) says the session's proxy saw the engine create of kind (ids_to_remove); frees list. A failed listing
 * still removes what was recorded. */
static int collect_kind(struct dk_client *dk, enum dk_kind kind, const char *label, const char *id,
                        struct dk_list *listed, const char *const *recorded, uint64_t deadline, unsigned *removed,
                        struct ag_collect_stats *st, ca_error **err) {
  _cleanup_(dk_list_freep) struct dk_list *list = listed;
  int listing = 0, r;
  if (!list) {
    char filter[128];
    snprintf(filter, sizeof(filter), "%s=%s", label, id);
    const struct dk_filter filters[] = {{"label", filter}, {NULL, NULL}};
    if ((listing = dk_list(dk, kind, filters, &list, err)) < 0)
      (void)ca_error_wrap(err, "list %ss of session %s", kind_names[kind], id);
  }
  size_t room = (list ? list->n : 0) + 1;
  for (const char *const *m = recorded; m && *m; m++)
    room++;
  _cleanup_free_ const char **ids = calloc(room, sizeof(char *));
  if (!ids)
    return listing < 0 ? listing : ca_error_set(err, ENOMEM, "out of memory");
  size_t n = ids_to_remove(list, kind, label, id, recorded, ids, st);
  if (n == 0)
    return listing;
  _cleanup_free_ ca_error **errors = calloc(n, sizeof(ca_error *));
  _cleanup_free_ bool *gone = calloc(n, sizeof(bool)); /* an --rm container the engine removed itself */
  if (!errors || !gone)
    return listing < 0 ? listing : ca_error_set(err, ENOMEM, "out of memory");
  r = remove_until(dk, kind, ids, n, deadline, errors, gone, listing < 0 ? NULL : err);
  for (size_t i = 0; i < n; i++) {
    if (errors[i]) {
      st->failed++;
      ca_log_warning("session %s: %s %.12s not removed: %s", id, kind_names[kind], ids[i], errors[i]->msg);
      if (st->not_removed)
        not_removed_add(st->not_removed, kind, ids[i], errors[i]->msg);
    } else if (!gone[i]) {
      (*removed)++;
      ag_receipt_removed_at_end(kind, ids[i]); /* run's receipt (a no-op elsewhere) */
    }
    ca_error_free(errors[i]);
  }
  if (listing < 0)
    return listing;
  if (r < 0)
    return ca_error_wrap(err, "remove %ss of session %s", kind_names[kind], id);
  return 0;
}

/* The session's containers, networks and volumes by both session_labels, in one round trip (the usual answer is six
 * empty lists), into lists[l * 3 + kind] for session_labels[l]; on any failure each is listed again on its own in
 * collect_kind, with retries. */
static int list_session(struct dk_client *dk, const char *id, struct dk_list *lists[6], ca_error **err) {
  char filter[2][128];
  struct dk_filter filters[2][2] = {{{0}}};
  struct dk_list_query q[6];
  for (size_t l = 0; l < 2; l++) {
    snprintf(filter[l], sizeof(filter[l]), "%s=%s", session_labels[l], id);
    filters[l][0] = (struct dk_filter){"label", filter[l]};
    for (size_t k = 0; k < 3; k++)
      q[l * 3 + k] = (struct dk_list_query){(enum dk_kind)k, filters[l]};
  }
  _cleanup_error_ ca_error *e = NULL;
  if (dk_list_many(dk, q, ELEMENTSOF(q), lists, &e) < 0 && e->code == ETIMEDOUT) {
    /* an engine that did not answer in time will not answer six more lists either */
    int r = ca_error_wrap(&e, "list containers, networks and volumes of session %s", id);
    if (err) {
      ca_error_free(*err);
      *err = TAKE_PTR(e);
    }
    return r;
  }
  return 0;
}

/* ag_collect_docker under a teardown deadline (0: none): no kind is started after it. What carries the session's id
 * in either label goes (nesting.h). */
static int collect_docker(struct dk_client *dk, const char *id, const char *const *recorded, uint64_t deadline,
                          struct ag_collect_stats *st, ca_error **err) {
  static const char *const rest[] = {"", "the networks and volumes", "the volumes"};
  struct dk_list *lists[6] = {0}; /* by session_labels, then by kind */
  int first = list_session(dk, id, lists, err);
  unsigned *counts[] = {&st->containers, &st->networks, &st->volumes};
  bool stop = first < 0;
  /* Containers first: networks and volumes in use by one cannot be removed. */
  for (size_t k = 0; k < 3; k++) {
    if (!stop && k > 0 && first == 0 && past(deadline))
      stop = (first = ca_error_set(err, ETIMEDOUT, "the teardown timeout passed before %s of session %s were removed",
                                   rest[k], id)) < 0;
    for (size_t l = 0; l < 2; l++) {
      if (stop) {
        dk_list_free(lists[l * 3 + k]);
        continue;
      }
      int r = collect_kind(dk, (enum dk_kind)k, session_labels[l], id, lists[l * 3 + k], l == 0 ? recorded : NULL,
                           deadline, counts[k], st, first < 0 ? NULL : err);
      if (r < 0 && first == 0)
        first = r;
    }
    /* Containers left hold their networks and volumes; an engine that does not answer will not answer the next
     * list either: do not wait for it again. */
    stop = stop || (first < 0 &&
                    (k == DK_CONTAINER || past(deadline) || (err && *err && dk_error_kind(*err) == DK_ERR_TRANSIENT)));
  }
  return first;
}

int ag_collect_docker(struct dk_client *dk, const char *id, struct ag_collect_stats *st, ca_error **err) {
  return collect_docker(dk, id, NULL, 0, st, err);
}

/* ag_collect_cgroup whose kill waits at most timeout_usec. */
static int collect_cgroup(cg_root *cg, const char *id, uint64_t timeout_usec, struct ag_collect_stats *st,
                          ca_error **err) {
  _cleanup_cg_leaf_ cg_leaf *leaf = NULL;
  int r = cg_leaf_open(cg, id, &leaf, err);
  if (r == -ENOENT) {
    if (err) {
      ca_error_free(*err);
      *err = NULL;
    }
    /* The v2 leaf went, maybe not its v1 leaves (an end killed in between): they go now, or the registry stays. */
    if ((r = cg_leaf_remove_v1_left(cg, id, err)) < 0)
      return ca_error_wrap(err, "remove cgroup of session %s", id);
    st->cgroups += (unsigned)r;
    return 0;
  }
  if (r < 0)
    return r;
  cg_proc_info *procs = NULL;
  size_t n = 0;
  if (cg_leaf_list_processes(leaf, &procs, &n, NULL) == 0)
    st->processes += (unsigned)n;
  free(procs);
  r = cg_leaf_kill_all(leaf, timeout_usec, err);
  if (r < 0)
    return ca_error_wrap(err, "kill processes of session %s", id);
  r = cg_leaf_remove(leaf, err);
  if (r < 0)
    return ca_error_wrap(err, "remove cgroup of session %s", id);
  st->cgroups++;
  return 0;
}

int ag_collect_cgroup(cg_root *cg, const char *id, struct ag_collect_stats *st, ca_error **err) {
  return collect_cgroup(cg, id, COLLECT_KILL_TIMEOUT_USEC, st, err);
}

/* What is left of a teardown's time, in microseconds (at least 1 ms, so that it still says why it failed); limit
 * without a deadline. */
static uint64_t time_left(uint64_t deadline, uint64_t limit) {
  if (!deadline)
    return limit;
  uint64_t now = ca_now_monotonic_usec();
  return CA_MIN(limit, now + 1000 >= deadline ? 1000 : deadline - now);
}

/* Notes that host did not answer; past the list's room it is asked again. */
static void remember_down(struct ag_engines_down *d, const char *host) {
  if (d->n < ELEMENTSOF(d->hosts) && (d->hosts[d->n] = strdup(host)))
    d->n++;
}

/* The client of the engine a session recorded: env's when it is that engine (and then none when env's did not
 * answer: it is not asked twice; in a teardown a clone of it with the teardown's timeouts), else a new one (*owned). */
static int recorded_engine(const struct ag_env *env, const char *id, const char *host, struct dk_client **ret,
                           bool *owned, ca_error **err) {
  bool same = env->docker_host && streq(env->docker_host, host);
  if (same && !env->dk)
    return ca_error_set(err, EHOSTDOWN, "engine %s of session %s did not answer", host, id);
  if (same && !env->deadline_usec) {
    *ret = env->dk;
    return 0;
  }
  struct dk_client_options o = {.host = host, .timeout_ms = AG_DOCKER_TIMEOUT_MS, .retries = AG_DOCKER_RETRIES};
  if (env->deadline_usec) {
    /* A teardown: a list gets a quarter of what is left, a removal all of it (a forced DELETE of a running
     * container on a loaded vfs engine took over 7 s), and a call that timed out is not tried again; no phase
     * starts after the deadline. */
    if (past(env->deadline_usec))
      return ca_error_set(err, ETIMEDOUT, "the teardown timeout passed before engine %s of session %s was asked", host,
                          id);
    uint64_t left_ms = CA_MAX(time_left(env->deadline_usec, UINT64_MAX) / 1000, (uint64_t)100);
    o.timeout_ms = (unsigned)CA_MIN(CA_MAX(left_ms / 4, (uint64_t)100), (uint64_t)AG_DOCKER_TIMEOUT_MS);
    o.remove_timeout_ms = (unsigned)CA_MIN(left_ms, (uint64_t)60000);
    o.retries = -1;
  }
  if (same && dk_client_clone(env->dk, ret, NULL) == 0) { /* the version env's client negotiated: no second _ping */
    dk_client_set_limits(*ret, &o);
    *owned = true;
    return 0;
  }
  for (size_t i = 0; env->down && i < env->down->n; i++)
    if (streq(env->down->hosts[i], host))
      return ca_error_set(err, EHOSTDOWN, "engine %s of session %s did not answer (to another session's collection)",
                          host, id);
  _cleanup_error_ ca_error *e = NULL;
  if (dk_client_new(&o, ret, &e) < 0) {
    if (env->down && dk_error_kind(e) == DK_ERR_TRANSIENT)
      remember_down(env->down, host);
    int r = ca_error_wrap(&e, "engine %s of session %s", host, id);
    if (err) {
      ca_error_free(*err);
      *err = TAKE_PTR(e);
    }
    return r;
  }
  *owned = true;
  return 0;
}

void ag_engines_down_done(struct ag_engines_down *d) {
  for (size_t i = 0; i < d->n; i++)
    free(d->hosts[i]);
  d->n = 0;
}

/* The cgroup root a session recorded: env's when it is that root, else opened (*owned); none when the directory is
 * gone (no leaf can be left in it, and opening would create it). */
static int recorded_cgroup(const struct ag_env *env, const char *id, const char *root, cg_root **ret, bool *owned,
                           ca_error **err) {
  if (env->cg && cg_root_tracking(env->cg) == CG_TRACK_CGROUP && streq(cg_root_path(env->cg), root)) {
    *ret = env->cg;
    return 0;
  }
  if (access(root, F_OK) < 0 && errno == ENOENT)
    return 0;
  cg_root_options o = {.root = root};
  AG_CGROUP_NAMES(o);
  if (cg_root_open(&o, ret, err) < 0)
    return ca_error_wrap(err, "cgroup root %s of session %s", root, id);
  *owned = true;
  return 0;
}

/* The engine's part of ag_collect_recorded: a resource that could not be removed is an error (EBUSY). */
static int collect_engine(struct dk_client *dk, const char *id, const struct ag_env *env, struct ag_collect_stats *st,
                          ca_error **err) {
  unsigned failed = st->failed;
  int r = collect_docker(dk, id, (const char *const *)env->recorded, env->deadline_usec, st, err);
  if (r == 0 && st->failed > failed)
    r = ca_error_set(err, EBUSY, "%u resource%s of session %s could not be removed", st->failed - failed,
                     st->failed - failed == 1 ? "" : "s", id);
  return r;
}

/* Kills what is left of the process group a session recorded under process tracking (nothing without one): each
 * member verified by pid and start time, and only when the session ran in this boot and this PID namespace, where
 * its pids mean what they meant. */
static int collect_group(const struct ag_registry *rec, const char *id, uint64_t timeout_usec,
                         struct ag_collect_stats *st, ca_error **err) {
  if (!rec || rec->pgrp <= 0)
    return 0;
  struct ag_owner self;
  if (ag_owner_self(&self, err) < 0)
    return ca_error_wrap(err, "kill the process group of session %s", id);
  if (!streq(self.boot_id, rec->owner.boot_id))
    return 0; /* another boot: its processes are gone */
  if (!self.pidns || self.pidns != rec->owner.pidns)
    return ca_error_set(err, EXDEV, "the process group of session %s is in another PID namespace (%" PRIu64 ")", id,
                        rec->owner.pidns);
  char entry[64];
  snprintf(entry, sizeof(entry), AG_ENV_SESSION "=%s", id);
  cg_group g = {.main_pid = rec->main_pid,
                .main_start = rec->main_start,
                .pgrp = rec->pgrp,
                .pgrp_start = rec->pgrp_start,
                .env_entry = entry};
  unsigned killed = 0;
  int r = cg_group_kill(NULL, &g, getpid(), timeout_usec, &killed, err);
  st->processes += killed;
  return r < 0 ? ca_error_wrap(err, "kill the process group of session %s", id) : 0;
}

int ag_collect_recorded(const struct ag_env *env, const struct ag_registry *rec, const char *id,
                        struct ag_collect_stats *st, ca_error **err) {
  const char *host = rec ? rec->docker_host : env->docker_host;
  struct dk_client *dk = NULL;
  cg_root *cg = rec ? NULL : env->cg;
  bool own_dk = false, own_cg = false;
  int first = 0, r;
  if (rec && rec->cgroup_root)
    first = recorded_cgroup(env, id, rec->cgroup_root, &cg, &own_cg, err);
  uint64_t kill_usec = time_left(env->deadline_usec, COLLECT_KILL_TIMEOUT_USEC);
  if ((r = collect_group(rec, id, kill_usec, st, first < 0 ? NULL : err)) < 0)
    first = first < 0 ? first : r;
  if (cg && cg_root_tracking(cg) == CG_TRACK_CGROUP &&
      (r = collect_cgroup(cg, id, kill_usec, st, first < 0 ? NULL : err)) < 0)
    first = first < 0 ? first : r;
  /* Without a registry (none yet, or one set aside: a planted link, a corrupt file) nothing records an engine: the
   * collector's own is asked when it answers, and when it does not, the session does not stay for it (it would warn
   * at every start and fail every gc, for an id whose resources gc's owner rules find by their labels anyway). */
  if (host && (r = recorded_engine(env, id, host, &dk, &own_dk, first < 0 || !rec ? NULL : err)) < 0 && rec)
    first = first < 0 ? first : r;
  if (dk && (r = collect_engine(dk, id, env, st, first < 0 ? NULL : err)) < 0)
    first = first < 0 ? first : r;
  if (dk && rec && rec->images_remove) /* after its containers; an image kept is said, not a failure */
    ag_images_remove_session(dk, id, &st->images);
  if (own_dk)
    dk_client_free(dk);
  if (own_cg)
    cg_root_free(cg);
  return first;
}

int ag_collect_session(const struct ag_env *env, const struct ag_registry *rec, const char *id, const char *left,
                       struct ag_collect_stats *st, ca_error **err) {
  _cleanup_error_ ca_error *e = NULL;
  int r = ag_collect_recorded(env, rec, id, st, &e);
  if (r == 0 && left)
    r = ca_error_set(&e, EBUSY, "%s", left);
  return ag_collect_settle(env, id, r, &e, err);
}

int ag_collect_settle(const struct ag_env *env, const char *id, int r, ca_error **why, ca_error **err) {
  /* The registry goes last and only when everything else went: it is what tells the next start and gc that the
   * session has something left, and where (a resource labeled only with the session id matches no other rule). */
  if (r == 0)
    return env->state ? ag_collect_forget(env, id, err) : 0;
  if (env->state)
    ag_collect_keep(env->state, id, *why ? (*why)->msg : strerror(-r));
  if (err && *why) {
    ca_error_free(*err);
    *err = TAKE_PTR(*why);
  }
  return r;
}

void ag_collect_keep(struct ag_state *state, const char *id, const char *why) {
  struct ag_registry reg;
  _cleanup_error_ ca_error *err = NULL;
  if (ag_registry_load(state, id, &reg, &err) < 0)
    return; /* its lock file keeps the session listed; the load said what was wrong with the file */
  free(reg.collect_error);
  reg.collect_error = strndup(why, 4096); /* bounded, as the command is: the registry stays one every reader loads */
  reg.collect_error_at = time(NULL);
  if (reg.collect_error && ag_registry_write(state, &reg, &err) < 0)
    ca_log_warning("session %s stays registered, but why could not be written: %s", id, err->msg);
  ag_registry_done(&reg);
}

int ag_collect_forget(const struct ag_env *env, const char *id, ca_error **err) {
  return ag_registry_remove(env->state, id, err);
}

bool ag_collect_nested_in(const struct ag_registry *rec, const char *in) {
  if (!in || !rec || !rec->cgroup_root)
    return false;
  char leaf[AG_SESSION_ID_LEN + 6];
  snprintf(leaf, sizeof(leaf), "/run-%s", in);
  const char *at = strstr(rec->cgroup_root, leaf);
  return at && (at[strlen(leaf)] == '\0' || at[strlen(leaf)] == '/');
}

/* Collects dead session id against rec, its registry (NULL: none), then forgets it, or hands it with its lock (*lock)
 * to late when a create may still land (not when nested: ag_collect_dead). What could not be collected stays
 * registered, with the reason in the registry. */
static int collect_dead_recorded(const struct ag_env *env, const struct ag_registry *rec, const char *id, bool nested,
                                 int *lock, const struct ag_collect_late *late, struct ag_collect_stats *st,
                                 ca_error **err) {
  _cleanup_error_ ca_error *e = NULL;
  int r = ag_collect_recorded(env, rec, id, st, &e);
  if (r < 0) {
    ag_collect_keep(env->state, id, e->msg);
    if (err)
      *err = TAKE_PTR(e);
    return r;
  }
  /* A session that used an engine may have had a create in flight when it died (a test's `docker run`,
   * container-seq's next container) that lands after our listing, even when nothing was there yet. One watcher
   * for all of them looks for it, then forgets the session; without an engine (or a registry: the agent died
   * before it ran anything), the registry goes now. */
  if (late && rec && rec->docker_host && !nested && late->take(late->ctx, id, rec->docker_host, lock) == 0)
    return 0;
  return ag_collect_forget(env, id, err);
}

/* One session of ag_collect_dead, whose lock the caller holds: 1 when it was collected, 0 when only_nested left it
 * (not nested, or no registry says it is), else a negative errno with err set. */
static int collect_dead_one(const struct ag_env *env, const char *id, const char *nest, bool only_nested, int *lock,
                            const struct ag_collect_late *late, struct ag_collect_stats *st, ca_error **err) {
  _cleanup_(ag_registry_done) struct ag_registry reg = {0};
  _cleanup_error_ ca_error *e = NULL;
  int r = ag_registry_load(env->state, id, &reg, &e);
  const struct ag_registry *rec = r == 0 ? &reg : NULL;
  bool nested = ag_collect_nested_in(rec, nest);
  if (only_nested && !nested)
    return 0;
  if (r < 0 && r != -ENOENT && r != -EINVAL) /* unreadable, or a newer agent's: kept for a later try or that agent */
    return ca_error_set(err, -r, "%s", e->msg);
  if (r < 0 && r != -ENOENT)
    ca_log_warning("%s; collecting session %s with this start's engine and cgroup root", e->msg, id);
  r = collect_dead_recorded(env, rec, id, nested, lock, late, st, err);
  return r < 0 ? r : 1;
}

int ag_collect_dead(const struct ag_env *env, const char *nest, bool only_nested, const struct ag_collect_late *late,
                    struct ag_collect_stats *st, ca_error **err) {
  _cleanup_strv_free_ char **ids = NULL;
  int r = ag_state_list_sessions(env->state, &ids, err);
  if (r < 0)
    return r;
  int collected = 0;
  for (char **id = ids; *id; id++) {
    _cleanup_close_ int lock = -1;
    _cleanup_error_ ca_error *e = NULL;
    /* Create the lock file if only the registry is left: taking it is what makes the collection exclusive. Not when
     * only the nest is collected: a session that turns out not to be in it would be left a new lock file. */
    if ((r = ag_session_lock(env->state, *id, !only_nested, &lock, &e)) < 0) {
      if (r != -EWOULDBLOCK && !only_nested) /* EWOULDBLOCK: alive */
        ca_log_warning("%s", e->msg);
    } else if ((r = collect_dead_one(env, *id, nest, only_nested, &lock, late, st, &e)) > 0) {
      collected++;
    } else if (r < 0 && only_nested) {
      ca_log_warning("collect session %s nested in %s: %s", *id, nest, e->msg);
    } else if (r < 0) {
      ca_log_warning("collect dead session %s: %s", *id, e->msg);
    }
  }
  return collected;
}

const char *ag_collect_stats_format(const struct ag_collect_stats *st, char *buf, size_t len) {
  size_t n = 0;
  buf[0] = '\0';
  if (st->processes)
    n += (size_t)snprintf(buf + n, len - n, "killed %u process%s", st->processes, st->processes == 1 ? "" : "es");
  const struct {
    unsigned count;
    const char *name;
  } parts[] = {
      {st->containers, "container"}, {st->networks, "network"}, {st->volumes, "volume"}, {st->images, "image"}};
  bool first = true;
  for (size_t i = 0; i < ELEMENTSOF(parts) && n < len; i++) {
    if (!parts[i].count)
      continue;
    n += (size_t)snprintf(buf + n, len - n, "%s%s%u %s%s", n ? ", " : "", first ? "removed " : "", parts[i].count,
                          parts[i].name, parts[i].count == 1 ? "" : "s");
    first = false;
  }
  if (st->failed && n < len)
    n += (size_t)snprintf(buf + n, len - n, "%s%u could not be removed", n ? ", " : "", st->failed);
  return buf;
}
