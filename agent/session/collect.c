/* Collection of one session's leftovers, shared by run, the guardian, startup collection, kill and gc. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collect.h"
#include "nesting.h"

/* Time given to a cgroup kill of a leftover tree before it is reported as stuck. */
#define COLLECT_KILL_TIMEOUT_USEC (10 * 1000000ULL)

static const char *const kind_names[] = {
    [DK_CONTAINER] = "container", [DK_NETWORK] = "network", [DK_VOLUME] = "volume"};

/* The two labels that make an object session id's: its own, and the outer label of the sessions nested in it. */
static const char *const session_labels[] = {AG_LABEL_SESSION, AG_LABEL_OUTER};

/* Removes what list (of kind, listed by label=id; NULL: list it now) holds of session id; frees list. */
static int collect_kind(struct dk_client *dk, enum dk_kind kind, const char *label, const char *id,
                        struct dk_list *listed, unsigned *removed, struct ag_collect_stats *st, ca_error **err) {
  _cleanup_(dk_list_freep) struct dk_list *list = listed;
  int r;
  if (!list) {
    char filter[128];
    snprintf(filter, sizeof(filter), "%s=%s", label, id);
    const struct dk_filter filters[] = {{"label", filter}, {NULL, NULL}};
    if ((r = dk_list(dk, kind, filters, &list, err)) < 0)
      return ca_error_wrap(err, "list %ss of session %s", kind_names[kind], id);
  }

  _cleanup_free_ const char **ids = calloc(list->n + 1, sizeof(char *));
  if (!ids)
    return ca_error_set(err, ENOMEM, "out of memory");
  size_t n = 0;
  for (size_t i = 0; i < list->n; i++) {
    const struct dk_item *it = &list->items[i];
    /* The engine's filter is not trusted alone: the label must say exactly this session. */
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
  if (n == 0)
    return 0;
  _cleanup_free_ ca_error **errors = calloc(n, sizeof(ca_error *));
  if (!errors)
    return ca_error_set(err, ENOMEM, "out of memory");
  r = dk_remove_many(dk, kind, ids, n, 8, errors, err);
  for (size_t i = 0; i < n; i++) {
    if (errors[i])
      st->failed++;
    else
      (*removed)++;
    ca_error_free(errors[i]);
  }
  if (r < 0)
    return ca_error_wrap(err, "remove %ss of session %s", kind_names[kind], id);
  return 0;
}

/* The session's containers, networks and volumes by one label (session_labels), in one round trip (the usual
 * answer is three empty lists); a failed listing is retried per kind in collect_kind. */
static int list_by(struct dk_client *dk, const char *label, const char *id, struct dk_list *lists[3], ca_error **err) {
  static const enum dk_kind kinds[] = {DK_CONTAINER, DK_NETWORK, DK_VOLUME};
  char filter[128];
  snprintf(filter, sizeof(filter), "%s=%s", label, id);
  const struct dk_filter filters[] = {{"label", filter}, {NULL, NULL}};
  _cleanup_error_ ca_error *e = NULL;
  if (dk_list_kinds(dk, kinds, ELEMENTSOF(kinds), filters, lists, &e) < 0 && e->code == ETIMEDOUT) {
    /* an engine that did not answer in time will not answer three more lists either */
    int r = ca_error_wrap(&e, "list containers, networks and volumes of session %s", id);
    if (err) {
      ca_error_free(*err);
      *err = TAKE_PTR(e);
    }
    return r;
  }
  return 0;
}

int ag_collect_docker(struct dk_client *dk, const char *id, struct ag_collect_stats *st, ca_error **err) {
  struct dk_list *lists[2][3] = {{0}}; /* by session_labels, then by kind */
  int first = list_by(dk, session_labels[0], id, lists[0], err);
  if (first == 0)
    first = list_by(dk, session_labels[1], id, lists[1], err);
  unsigned *counts[] = {&st->containers, &st->networks, &st->volumes};
  bool stop = first < 0;
  /* Containers first: networks and volumes in use by one cannot be removed. */
  for (size_t k = 0; k < 3; k++)
    for (size_t l = 0; l < 2; l++) {
      if (stop) {
        dk_list_free(lists[l][k]);
        continue;
      }
      int r =
          collect_kind(dk, (enum dk_kind)k, session_labels[l], id, lists[l][k], counts[k], st, first < 0 ? NULL : err);
      if (r < 0 && first == 0)
        first = r;
      /* Containers left hold their networks and volumes; an engine that does not answer will not answer the next
       * list either: do not wait for it again. */
      stop = r < 0 && (k == DK_CONTAINER || (err && *err && dk_error_kind(*err) == DK_ERR_TRANSIENT));
    }
  return first;
}

int ag_collect_cgroup(cg_root *cg, const char *id, struct ag_collect_stats *st, ca_error **err) {
  _cleanup_cg_leaf_ cg_leaf *leaf = NULL;
  int r = cg_leaf_open(cg, id, &leaf, err);
  if (r == -ENOENT) {
    if (err) {
      ca_error_free(*err);
      *err = NULL;
    }
    return 0;
  }
  if (r < 0)
    return r;
  cg_proc_info *procs = NULL;
  size_t n = 0;
  if (cg_leaf_list_processes(leaf, &procs, &n, NULL) == 0)
    st->processes += (unsigned)n;
  free(procs);
  r = cg_leaf_kill_all(leaf, COLLECT_KILL_TIMEOUT_USEC, err);
  if (r < 0)
    return ca_error_wrap(err, "kill processes of session %s", id);
  r = cg_leaf_remove(leaf, err);
  if (r < 0)
    return ca_error_wrap(err, "remove cgroup of session %s", id);
  st->cgroups++;
  return 0;
}

int ag_collect_resources(const struct ag_env *env, const char *id, struct ag_collect_stats *st, ca_error **err) {
  int first = 0;
  if (env->cg && cg_root_tracking(env->cg) == CG_TRACK_CGROUP)
    first = ag_collect_cgroup(env->cg, id, st, err);
  if (env->dk) {
    int r = ag_collect_docker(env->dk, id, st, first < 0 ? NULL : err);
    if (first == 0)
      first = r;
  }
  return first;
}

int ag_collect_session(const struct ag_env *env, const char *id, struct ag_collect_stats *st, ca_error **err) {
  unsigned failed = st->failed;
  int first = ag_collect_resources(env, id, st, err);
  if (first == 0 && st->failed > failed)
    first = ca_error_set(err, EBUSY, "%u resource%s of session %s could not be removed", st->failed - failed,
                         st->failed - failed == 1 ? "" : "s", id);
  /* The registry goes last and only when everything else went: it is what tells the next start and gc that the
   * session has something left, so a failed collection is retried. */
  if (first == 0 && env->state)
    first = ag_collect_forget(env, id, err);
  return first;
}

int ag_collect_forget(const struct ag_env *env, const char *id, ca_error **err) {
  return ag_registry_remove(env->state, id, err);
}

const char *ag_collect_stats_format(const struct ag_collect_stats *st, char *buf, size_t len) {
  size_t n = 0;
  buf[0] = '\0';
  if (st->processes)
    n += (size_t)snprintf(buf + n, len - n, "killed %u process%s", st->processes, st->processes == 1 ? "" : "es");
  const struct {
    unsigned count;
    const char *name;
  } parts[] = {{st->containers, "container"}, {st->networks, "network"}, {st->volumes, "volume"}};
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
