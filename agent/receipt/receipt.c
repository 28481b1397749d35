/* The leak receipt's records: fed by the proxy's threads (creates, DELETEs), the session's end (removals) and run
 * (processes), read once the session ended. One lock; every list bounded. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collect.h"
#include "proxy.h"
#include "receipt.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static bool enabled;
static struct ag_receipt receipt;

static char *dup_or_null(const char *s) {
  return s && *s ? strdup(s) : NULL;
}

static char *dup_bytes(const char *s, size_t n) {
  char *d = n ? malloc(n + 1) : NULL;
  if (d) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

/* Grows *v (of elements of size) to hold n + 1, 16 at a time. */
static bool grow(void *v, size_t n, size_t size) {
  void **p = v;
  if (n % 16)
    return true;
  void *g = realloc(*p, (n + 16) * size);
  if (g)
    *p = g;
  return g != NULL;
}

static void created(void *ctx, const struct ag_proxy_create_info *info) {
  (void)ctx;
  pthread_mutex_lock(&mu);
  if (receipt.n_resources >= AG_RECEIPT_RESOURCES_MAX ||
      !grow(&receipt.resources, receipt.n_resources, sizeof(*receipt.resources))) {
    receipt.resources_unlisted++;
    pthread_mutex_unlock(&mu);
    return;
  }
  const struct ag_proxy_peer *p = info->peer;
  receipt.resources[receipt.n_resources++] = (struct ag_receipt_resource){
      .kind = info->kind,
      .id = strdup(info->id),
      .name = dup_or_null(info->name),
      .image = dup_or_null(info->image),
      .created_usec = ca_now_realtime_usec(),
      .creator = {.pid = p ? p->pid : 0,
                  .exe = p ? dup_or_null(p->exe) : NULL,
                  .cmdline = p ? dup_bytes(p->cmdline, p->cmdline_len) : NULL,
                  .cmdline_len = p && p->cmdline_len ? p->cmdline_len : 0,
                  .user_agent = dup_or_null(info->user_agent),
                  .tc_session = dup_or_null(info->tc_session),
                  .compose_project = dup_or_null(info->compose_project)},
      .keep = info->keep,
      .auto_remove = info->auto_remove,
  };
  pthread_mutex_unlock(&mu);
}

/* Whether target, as a client names an object in a DELETE, is res: its id, a prefix of it, or its name. */
static bool names(const struct ag_receipt_resource *res, char kind, const char *target) {
  if (res->kind != kind || !res->id)
    return false;
  size_t n = strlen(target);
  if (streq(res->id, target) || (kind != 'v' && n >= 1 && strncmp(res->id, target, n) == 0))
    return true;
  const char *name = res->name ? res->name + (res->name[0] == '/') : NULL;
  return name && streq(name, target + (target[0] == '/'));
}

static void removed(void *ctx, char kind, const char *target) {
  (void)ctx;
  pthread_mutex_lock(&mu);
  /* The newest first: a name may have been used again after its first object went. */
  for (size_t i = receipt.n_resources; i-- > 0;) {
    struct ag_receipt_resource *res = &receipt.resources[i];
    if (!res->removed_by_creator && names(res, kind, target)) {
      res->removed_by_creator = true;
      break;
    }
  }
  pthread_mutex_unlock(&mu);
}

static const struct ag_proxy_observer observer = {.created = created, .removed = removed};

void ag_receipt_enable(void) {
  pthread_mutex_lock(&mu);
  enabled = true;
  pthread_mutex_unlock(&mu);
}

const struct ag_proxy_observer *ag_receipt_observer(void) {
  pthread_mutex_lock(&mu);
  bool on = enabled;
  pthread_mutex_unlock(&mu);
  return on ? &observer : NULL;
}

const struct ag_receipt *ag_receipt_get(void) {
  return &receipt;
}

void ag_receipt_removed_at_end(enum dk_kind kind, const char *id) {
  static const char kinds[] = {[DK_CONTAINER] = 'c', [DK_NETWORK] = 'n', [DK_VOLUME] = 'v'};
  pthread_mutex_lock(&mu);
  for (size_t i = 0; enabled && i < receipt.n_resources; i++) {
    struct ag_receipt_resource *res = &receipt.resources[i];
    if (res->kind == kinds[kind] && res->id && streq(res->id, id))
      res->removed_at_end = true;
  }
  pthread_mutex_unlock(&mu);
}

/* Reads /proc/<pid>/exe and cmdline into p (bounded; empty when the process is gone or not ours to read). */
static void read_process(struct ag_receipt_process *p) {
  char path[64], buf[2048];
  snprintf(path, sizeof(path), "/proc/%d/exe", (int)p->pid);
  ssize_t n = readlink(path, buf, sizeof(buf) - 1);
  if (n > 0)
    p->exe = dup_bytes(buf, (size_t)n);
  snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)p->pid);
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
  n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
  if (n > 0 && (p->cmdline = dup_bytes(buf, (size_t)n)))
    p->cmdline_len = (size_t)n;
}

static struct ag_receipt_process *find_process(pid_t pid, uint64_t start) {
  for (size_t i = 0; i < receipt.n_processes; i++)
    if (receipt.processes[i].pid == pid && receipt.processes[i].start_time == start)
      return &receipt.processes[i];
  return NULL;
}

void ag_receipt_processes_seen(const cg_proc_info *procs, size_t n, pid_t exclude, int term_signal) {
  pthread_mutex_lock(&mu);
  for (size_t i = 0; enabled && i < n; i++) {
    if (procs[i].pid == exclude)
      continue;
    struct ag_receipt_process *p = find_process(procs[i].pid, procs[i].start_time);
    if (!p && (receipt.n_processes >= AG_RECEIPT_PROCESSES_MAX ||
               !grow(&receipt.processes, receipt.n_processes, sizeof(*receipt.processes)))) {
      receipt.processes_unlisted++;
      continue;
    }
    if (!p) {
      p = &receipt.processes[receipt.n_processes++];
      *p = (struct ag_receipt_process){.pid = procs[i].pid, .start_time = procs[i].start_time};
      snprintf(p->comm, sizeof(p->comm), "%s", procs[i].comm);
      read_process(p);
    }
    if (!p->term_signal)
      p->term_signal = term_signal;
  }
  pthread_mutex_unlock(&mu);
}

void ag_receipt_processes_killed(const cg_proc_info *procs, size_t n, const char *how) {
  pthread_mutex_lock(&mu);
  for (size_t i = 0; enabled && i < receipt.n_processes; i++) {
    struct ag_receipt_process *p = &receipt.processes[i];
    bool alive = false;
    for (size_t k = 0; k < n && !alive; k++)
      if ((alive = procs[k].pid == p->pid && procs[k].start_time == p->start_time))
        snprintf(p->comm, sizeof(p->comm), "%s", procs[k].comm);
    if (alive) { /* what it runs now: a child seen between its fork and its exec has its own name by now */
      free(TAKE_PTR(p->exe));
      free(TAKE_PTR(p->cmdline));
      p->cmdline_len = 0;
      read_process(p);
      p->killed_by = how;
    } else if (p->term_signal && !p->killed_by)
      p->killed_by = p->term_signal == SIGINT ? "SIGINT" : p->term_signal == SIGHUP ? "SIGHUP" : "SIGTERM";
  }
  pthread_mutex_unlock(&mu);
}

void ag_receipt_image_add(const char *id, const char *const *tags, uint64_t size) {
  pthread_mutex_lock(&mu);
  if (enabled && receipt.n_images < AG_RECEIPT_IMAGES_MAX &&
      grow(&receipt.images, receipt.n_images, sizeof(*receipt.images))) {
    size_t n = 0;
    while (tags && tags[n])
      n++;
    char **t = calloc(n + 1, sizeof(char *));
    for (size_t i = 0; t && i < n; i++)
      t[i] = strdup(tags[i]);
    receipt.images[receipt.n_images++] = (struct ag_receipt_image){.id = strdup(id), .tags = t, .size = size};
  }
  pthread_mutex_unlock(&mu);
}

static const char *not_removed_reason(const struct ag_not_removed *l, char kind, const char *id) {
  static const char kinds[] = {[DK_CONTAINER] = 'c', [DK_NETWORK] = 'n', [DK_VOLUME] = 'v'};
  for (size_t i = 0; l && i < l->n; i++)
    if (kinds[l->items[i].kind] == kind && streq(l->items[i].id, id))
      return l->items[i].reason;
  return NULL;
}

static enum ag_receipt_outcome outcome_of(struct ag_receipt_resource *res, const struct ag_not_removed *nr,
                                          const char *end_error) {
  const char *reason = not_removed_reason(nr, res->kind, res->id);
  if (res->removed_by_creator)
    return AG_RECEIPT_REMOVED_BY_CREATOR;
  if (res->removed_at_end)
    return AG_RECEIPT_REMOVED_AT_END;
  if (res->keep)
    return AG_RECEIPT_KEPT;
  if (reason || end_error) {
    res->error = strdup(reason ? reason : end_error);
    return AG_RECEIPT_NOT_REMOVED;
  }
  return res->auto_remove && res->kind == 'c' ? AG_RECEIPT_REMOVED_BY_CREATOR : AG_RECEIPT_GONE;
}

void ag_receipt_finish(const struct ag_not_removed *not_removed, const char *end_error) {
  pthread_mutex_lock(&mu);
  for (size_t i = 0; i < receipt.n_resources; i++)
    receipt.resources[i].outcome = outcome_of(&receipt.resources[i], not_removed, end_error);
  pthread_mutex_unlock(&mu);
}

static void creator_done(struct ag_receipt_creator *c) {
  free(c->exe);
  free(c->cmdline);
  free(c->user_agent);
  free(c->tc_session);
  free(c->compose_project);
}

void ag_receipt_reset(void) {
  pthread_mutex_lock(&mu);
  for (size_t i = 0; i < receipt.n_resources; i++) {
    struct ag_receipt_resource *r = &receipt.resources[i];
    free(r->id);
    free(r->name);
    free(r->image);
    free(r->error);
    creator_done(&r->creator);
  }
  for (size_t i = 0; i < receipt.n_processes; i++) {
    free(receipt.processes[i].exe);
    free(receipt.processes[i].cmdline);
  }
  for (size_t i = 0; i < receipt.n_images; i++) {
    free(receipt.images[i].id);
    ca_strv_free(receipt.images[i].tags);
  }
  free(receipt.resources);
  free(receipt.processes);
  free(receipt.images);
  receipt = (struct ag_receipt){0};
  enabled = false;
  pthread_mutex_unlock(&mu);
}
