/* gc's disk budget: how full the engine's data root is, and which session images go (built-by a session not alive
 * here), least recently used first. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "disk.h"

int ag_parse_percent(const char *s, const char *what, unsigned *ret, ca_error **err) {
  char buf[16];
  size_t n = strlen(s);
  if (n && s[n - 1] == '%')
    n--;
  if (n == 0 || n >= sizeof(buf))
    return ca_error_set(err, EINVAL, "%s '%s': expected a percentage such as 85%% or 85", what, s);
  memcpy(buf, s, n);
  buf[n] = '\0';
  uint64_t v;
  if (ca_parse_uint(buf, what, 1, 100, &v, err) < 0)
    return -EINVAL;
  *ret = (unsigned)v;
  return 0;
}

int ag_disk_marks_parse(const char *high, const char *low, struct ag_disk_marks *m, ca_error **err) {
  m->high = AG_DISK_HIGH_DEFAULT;
  m->low = AG_DISK_LOW_DEFAULT;
  if ((high && ag_parse_percent(high, "--disk-high", &m->high, err) < 0) ||
      (low && ag_parse_percent(low, "--disk-low", &m->low, err) < 0))
    return -EINVAL;
  if (high && !low && m->low > m->high)
    m->low = m->high; /* --disk-high 70 alone: collect down to it */
  if (m->low > m->high)
    return ca_error_set(err, EINVAL, "--disk-low %u%% is above --disk-high %u%%", m->low, m->high);
  m->disk_set = high || low;
  return 0;
}

static int measure(const char *root, struct ag_disk_usage *u, ca_error **err) {
  struct statvfs v;
  if (statvfs(root, &v) < 0)
    return ca_error_set(err, errno, "statvfs %s: %s", root, strerror(errno));
  uint64_t used = (uint64_t)(v.f_blocks - v.f_bfree) * v.f_frsize, avail = (uint64_t)v.f_bavail * v.f_frsize;
  u->used = used;
  u->total = used + avail;
  u->pct = u->total ? 100.0 * (double)used / (double)u->total : 0;
  return 0;
}

static int disk_usage(struct dk_client *dk, const char *host, struct ag_disk_usage *ret, char **ret_driver,
                      ca_error **err) {
  if (!host || strncmp(host, "unix://", 7) != 0)
    return ca_error_set(err, EREMOTE, "the engine %s is remote: its data root is not visible here",
                        host ? host : "(none)");
  _cleanup_free_ char *root = NULL, *driver = NULL;
  int r = dk_system_info(dk, &root, &driver, err);
  if (r < 0)
    return r;
  /* Fail closed: a data root of that name here that is not the engine's (an agent in a container) proves nothing. */
  char probe[PATH_MAX];
  struct stat st;
  snprintf(probe, sizeof(probe), "%s/image/%s", root, driver);
  if (!*driver || stat(probe, &st) < 0 || !S_ISDIR(st.st_mode))
    return ca_error_set(err, EREMOTE, "the engine's data root %s is not visible here (no %s)", root, probe);
  snprintf(ret->root, sizeof(ret->root), "%s", root);
  if (ret_driver)
    *ret_driver = TAKE_PTR(driver);
  return measure(root, ret, err);
}

int ag_disk_usage(struct dk_client *dk, const char *host, struct ag_disk_usage *ret, ca_error **err) {
  return disk_usage(dk, host, ret, NULL, err);
}

/* <state>/disk-root: "<engine URL>\n<data root>\n<driver>\n", what /info said last, so that run's pressure check
 * can measure without asking /info (a slow call). Only a trigger reads it: the disk pass asks /info again. */
static bool root_remembered(const struct ag_env *env, struct ag_disk_usage *ret) {
  char path[4096], buf[2048], driver[256], probe[PATH_MAX];
  struct stat st;
  snprintf(path, sizeof(path), "%s/disk-root", env->state->dir);
  if (ca_read_file_buf(AT_FDCWD, path, buf, sizeof(buf), NULL) < 0)
    return false;
  char *save = NULL; /* run's look may read it in the engine client's thread: strtok_r */
  char *host = strtok_r(buf, "\n", &save), *root = strtok_r(NULL, "\n", &save), *drv = strtok_r(NULL, "\n", &save);
  if (!host || !root || !drv || root[0] != '/' || !streq(host, env->docker_host) || strlen(root) >= sizeof(ret->root))
    return false;
  snprintf(driver, sizeof(driver), "%s", drv);
  snprintf(probe, sizeof(probe), "%s/image/%s", root, driver);
  if (stat(probe, &st) < 0 || !S_ISDIR(st.st_mode))
    return false;
  snprintf(ret->root, sizeof(ret->root), "%s", root);
  return true;
}

static void remember_root(const struct ag_env *env, const char *root, const char *driver) {
  char path[4096];
  _cleanup_free_ char *text = NULL;
  snprintf(path, sizeof(path), "%s/disk-root", env->state->dir);
  if (env->state->read_only || asprintf(&text, "%s\n%s\n%s\n", env->docker_host, root, driver) < 0)
    return;
  (void)ca_write_file_atomic_flags(path, text, strlen(text), 0600, CA_WRITE_NO_DIR_SYNC, NULL); /* a cache */
}

int ag_disk_usage_quick(const struct ag_env *env, struct ag_disk_usage *ret, ca_error **err) {
  if (env->docker_host && strncmp(env->docker_host, "unix://", 7) == 0 && root_remembered(env, ret))
    return measure(ret->root, ret, err);
  _cleanup_free_ char *driver = NULL;
  int r = disk_usage(env->dk, env->docker_host, ret, &driver, err);
  if (r == 0)
    remember_root(env, ret->root, driver);
  return r;
}

static double pct_of(const struct ag_disk_usage *u, uint64_t used) {
  return u->total ? 100.0 * (double)used / (double)u->total : 0;
}

static bool listed(const char *const *v, const char *id) {
  for (; v && *v; v++)
    if (streq(*v, id))
      return true;
  return false;
}

/* Whether a container that stays uses the image. */
static bool image_in_use(const struct dk_df *df, const struct dk_image *im, const char *const *going) {
  for (size_t i = 0; i < df->n_containers; i++)
    if (streq(df->containers[i].image_id, im->id) && !listed(going, df->containers[i].id))
      return true;
  return false;
}

/* Whether session id is alive on this host: its lock is held (its command may be about to use what it built). */
static bool session_alive_here(struct ag_state *state, const char *id) {
  _cleanup_close_ int fd = -1;
  return state && ag_session_lock(state, id, false, &fd, NULL) == -EWOULDBLOCK;
}

/* A session image that may go: built by a session (a valid built-by label) that is not alive here, not keep=true,
 * used by no container that stays. */
static bool candidate(const struct ag_env *env, const struct dk_df *df, const struct dk_image *im,
                      const char *const *going) {
  const char *s = ag_image_built_by(im), *keep = dk_labels_get(&im->labels, AG_LABEL_KEEP);
  if (!s || (keep && streq(keep, "true")) || image_in_use(df, im, going) || session_alive_here(env->state, s))
    return false;
  return going || im->containers <= 0; /* in a dry run the engine's count includes the containers that go */
}

static int by_last_used(const void *a, const void *b) {
  const struct ag_disk_item *x = a, *y = b;
  return x->last < y->last ? -1 : x->last > y->last;
}

static int collect_candidates(const struct ag_env *env, const struct dk_df *df, const char *const *going,
                              struct ag_disk_pass *p) {
  if (!(p->items = calloc(df->images->n + 1, sizeof(*p->items))))
    return -ENOMEM;
  for (size_t i = 0; i < df->images->n; i++) {
    const struct dk_image *im = &df->images->v[i];
    if (!candidate(env, df, im, going))
      continue;
    struct ag_disk_item *it = &p->items[p->n];
    if (!(it->id = strdup(im->id)))
      return -ENOMEM;
    p->n++;
    snprintf(it->session, sizeof(it->session), "%s", ag_image_built_by(im));
    it->size = (uint64_t)(im->size - CA_MAX(im->shared_size, (int64_t)0));
    it->last = im->created;
    (void)dk_image_last_used(env->dk, im->id, &it->last, NULL); /* without it, its creation */
  }
  qsort(p->items, p->n, sizeof(*p->items), by_last_used);
  return 0;
}

/* Removes (or, in a dry run, plans) the candidates in order until the usage is under the low mark. The usage that
 * counts is the lower of the measured and the expected one: a removal never goes on a guess. */
static void shed(struct dk_client *dk, const struct ag_disk_marks *m, bool dry_run, uint64_t used,
                 struct ag_disk_pass *p) {
  for (size_t i = 0; i < p->n && pct_of(&p->before, used) >= m->low; i++) {
    struct ag_disk_item *it = &p->items[i];
    if (dry_run) {
      it->done = true;
      used -= CA_MIN(used, it->size);
      p->removed++;
      continue;
    }
    _cleanup_error_ ca_error *e = NULL;
    if (dk_image_remove(dk, it->id, &e) < 0) {
      it->error = strdup(e->msg);
      p->failed++;
      continue;
    }
    it->done = true;
    p->removed++;
    struct ag_disk_usage now = p->before;
    uint64_t expected = used - CA_MIN(used, it->size);
    used = measure(p->before.root, &now, NULL) == 0 ? CA_MIN(now.used, expected) : expected;
  }
  p->pct_after = pct_of(&p->before, used);
}

static void disk_budget(const struct ag_env *env, const struct ag_disk_marks *m, bool dry_run, const char *const *going,
                        struct ag_disk_pass *p) {
  _cleanup_error_ ca_error *err = NULL;
  if (ag_disk_usage(env->dk, env->docker_host, &p->before, &err) < 0) {
    p->skipped = strdup(err->msg);
    return;
  }
  p->ran = true;
  p->pct_after = p->before.pct;
  p->over = p->before.pct > m->high;
  if (!p->over)
    return;
  _cleanup_(dk_df_freep) struct dk_df *df = NULL;
  if (dk_system_df(env->dk, &df, &err) < 0) {
    p->skipped = strdup(err->msg);
    return;
  }
  uint64_t used = p->before.used;
  for (size_t i = 0; i < df->n_containers; i++) /* a dry run's containers that gc's collection removes first */
    if (listed(going, df->containers[i].id) && df->containers[i].size_rw > 0)
      used -= CA_MIN(used, (uint64_t)df->containers[i].size_rw);
  if (collect_candidates(env, df, going, p) < 0) {
    p->skipped = strdup("out of memory");
    return;
  }
  shed(env->dk, m, dry_run, used, p);
}

/* A dry run plans what the engine's prune would take at the least: the cache beyond the keep, as far as it is
 * reclaimable (the prune takes whole records, so it may take more). Records an image shares are no build cache. */
static void build_cache(const struct ag_env *env, const struct ag_disk_marks *m, bool dry_run, struct ag_disk_pass *p) {
  _cleanup_error_ ca_error *err = NULL;
  _cleanup_(dk_df_freep) struct dk_df *df = NULL;
  if (dry_run && dk_system_df(env->dk, &df, &err) == 0) {
    uint64_t size = (uint64_t)df->build_cache_size, reclaimable = (uint64_t)df->build_cache_reclaimable;
    p->build_cache = size;
    p->pruned = size > m->build_cache_keep ? CA_MIN(size - m->build_cache_keep, reclaimable) : 0;
  } else if (!dry_run && dk_build_prune(env->dk, m->build_cache_keep, &p->pruned, &err) == 0)
    return;
  if (err)
    p->prune_error = strdup(err->msg);
}

void ag_disk_pass_run(const struct ag_env *env, const struct ag_disk_marks *m, bool dry_run,
                      const char *const *going_containers, struct ag_disk_pass *ret) {
  memset(ret, 0, sizeof(*ret));
  if (!env->dk) {
    ret->skipped = strdup("no Docker engine");
    return;
  }
  if (m->disk_set)
    disk_budget(env, m, dry_run, going_containers, ret);
  if (m->build_cache_set)
    build_cache(env, m, dry_run, ret);
}

void ag_disk_pass_done(struct ag_disk_pass *p) {
  for (size_t i = 0; i < p->n; i++) {
    free(p->items[i].id);
    free(p->items[i].error);
  }
  free(p->items);
  free(p->skipped);
  free(p->prune_error);
  memset(p, 0, sizeof(*p));
}
