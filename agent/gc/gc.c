/* gc: collects what is provably ours and provably dead or expired, says why for each item, and touches nothing else.
 * Order: containers, networks, volumes (each listed by label, re-checked client-side, deleted by id), then the cgroup
 * leaves of dead sessions, then each dead session of the state dir against what its registry recorded (its engine
 * and cgroup root, which may not be gc's), its registry last and only when all of it went. Images only in the disk
 * pass (--disk-high, --disk-low, --build-cache-keep: disk.c), after the collection. */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "collect.h"
#include "commands.h"
#include "disk.h"
#include "gc.h"
#include "rules.h"

#define GC_LOCK_WAIT_USEC (5 * 1000000ULL)
#define PROGRESS_MIN_ITEMS 36

enum gc_kind { GC_CONTAINER, GC_NETWORK, GC_VOLUME, GC_CGROUP, GC_REGISTRY, GC_KINDS };
static const char *const gc_kind_names[GC_KINDS] = {"container", "network", "volume", "cgroup", "registry"};
static const enum dk_kind dk_kinds[] = {DK_CONTAINER, DK_NETWORK, DK_VOLUME};

struct gc_item {
  enum gc_kind kind;
  char *id;
  char *name;
  char session[AG_SESSION_ID_LEN + 1];
  enum ag_rule rule;
  int64_t age;  /* seconds */
  bool running; /* containers: running, paused or restarting (the engine kills it before the removal) */
  ca_error *error;
  bool done;
};

struct gc_run {
  struct gc_opts o;
  struct ag_env env;
  struct ag_engines_down down; /* the recorded engines that did not answer: asked once */
  struct ag_owner self;
  struct ag_rule_ctx ctx;
  struct gc_item *items;
  size_t n, cap;
  struct dk_client *inspect_dk; /* --older-than's inspects while a list streams; NULL until the first */
  unsigned removed[GC_KINDS], failed[GC_KINDS];
  bool progress;
  size_t progress_done, progress_total;
  struct ag_disk_pass disk;
  bool borrowed; /* env is the caller's (run's pressure check): not freed here */
};

static enum ag_session_state state_of(void *ud, const char *id) {
  struct gc_run *g = ud;
  _cleanup_close_ int fd = -1;
  int r = ag_session_lock(g->env.state, id, false, &fd, NULL);
  if (r == -EWOULDBLOCK)
    return AG_SESSION_ALIVE;
  /* A newer agent's session is left to that agent: nothing here proves it dead. */
  return r == 0 && ag_registry_check_version(g->env.state, id, NULL) == 0 ? AG_SESSION_DEAD : AG_SESSION_UNKNOWN;
}

static int process_alive(void *ud, pid_t pid, uint64_t start) {
  (void)ud;
  return cg_proc_alive(pid, start);
}

static struct gc_item *add_item(struct gc_run *g) {
  if (g->n == g->cap) {
    size_t cap = g->cap ? g->cap * 2 : 64;
    struct gc_item *p = realloc(g->items, cap * sizeof(*p));
    if (!p)
      return NULL;
    g->items = p;
    g->cap = cap;
  }
  struct gc_item *it = &g->items[g->n++];
  memset(it, 0, sizeof(*it));
  return it;
}

static int64_t finished_time(struct gc_run *g, const struct dk_item *it) {
  /* Only exited and dead containers have an exit time, and only --older-than needs it: one inspect each. */
  if (!g->o.older_than_usec || !it->state || (!streq(it->state, "exited") && !streq(it->state, "dead")))
    return 0;
  _cleanup_(dk_container_info_freep) struct dk_container_info *info = NULL;
  /* The list is still arriving on the client's connection (it is streamed): inspect through a clone of it. */
  if (!g->inspect_dk && dk_client_clone(g->env.dk, &g->inspect_dk, NULL) < 0)
    return 0;
  if (dk_container_inspect(g->inspect_dk, it->id, &info, NULL) < 0)
    return 0;
  return info->finished_us > 0 ? info->finished_us / 1000000 : 0;
}

struct scan {
  struct gc_run *g;
  enum gc_kind kind;
};

/* One listed object, as the answer arrives: judged at once, and only what its removal and report need is kept. */
static int scan_item(void *userdata, const struct dk_item *it, ca_error **err) {
  struct gc_run *g = ((struct scan *)userdata)->g;
  enum gc_kind kind = ((struct scan *)userdata)->kind;
  struct ag_rule_input in = {
      .session = dk_item_label(it, AG_LABEL_SESSION),
      .keep = dk_item_label(it, AG_LABEL_KEEP),
      .host = dk_item_label(it, AG_LABEL_HOST),
      .machine = dk_item_label(it, AG_LABEL_MACHINE),
      .boot_id = dk_item_label(it, AG_LABEL_BOOT_ID),
      .pidns = dk_item_label(it, AG_LABEL_PIDNS),
      .owner_pid = dk_item_label(it, AG_LABEL_OWNER_PID),
      .owner_start = dk_item_label(it, AG_LABEL_OWNER_START),
      .expires = dk_item_label(it, AG_LABEL_EXPIRES),
      .created = it->created_us / 1000000,
  };
  enum ag_rule rule = ag_rule_match(&g->ctx, &in);
  if (rule == AG_RULE_OLDER_THAN && kind == GC_CONTAINER) {
    /* Created long ago: ask when it exited, the age that counts for stopped containers. */
    in.finished = finished_time(g, it);
    rule = ag_rule_match(&g->ctx, &in);
  }
  if (rule <= AG_RULE_NONE)
    return 0;
  struct gc_item *gi = add_item(g);
  if (!gi || !(gi->id = strdup(it->id)))
    return ca_error_set(err, ENOMEM, "gc: out of memory");
  gi->kind = kind;
  gi->rule = rule;
  gi->name = it->names && it->names[0] ? strdup(it->names[0]) : NULL;
  snprintf(gi->session, sizeof(gi->session), "%s", in.session);
  gi->age = in.created ? g->ctx.now - in.created : 0;
  gi->running =
      it->state && (streq(it->state, "running") || streq(it->state, "paused") || streq(it->state, "restarting"));
  return 0;
}

/* The engine's answer is streamed (dk_list_each): gc's memory follows what it collects, not the engine's
 * population. */
static int scan_docker(struct gc_run *g, enum gc_kind kind, ca_error **err) {
  const struct dk_filter f[] = {{"label", AG_LABEL_SESSION}, {NULL, NULL}};
  struct scan sc = {g, kind};
  if (dk_list_each(g->env.dk, dk_kinds[kind], f, scan_item, &sc, err) < 0)
    return ca_error_wrap(err, "gc: list %ss", gc_kind_names[kind]);
  return 0;
}

static void show_progress(struct gc_run *g, size_t done_now) {
  g->progress_done += done_now;
  if (g->progress)
    fprintf(stderr, "\rcleanup-agent: gc: removed %zu of %zu", g->progress_done, g->progress_total);
}

/* Deletes items with at most --parallel requests in flight, in batches large enough to keep the engine busy between
 * two updates of the progress line: a request's state is some hundred bytes, and one batch for every item made gc's
 * memory grow with the number it removes (30 MB for 20,000 against 15 MB for listing them). */
static void remove_items(struct gc_run *g, enum gc_kind kind, struct gc_item **items, size_t n) {
  size_t batch = CA_MIN(n, CA_MAX((size_t)g->o.parallel * 8, (size_t)1024));
  _cleanup_free_ const char **ids = calloc(batch, sizeof(char *));
  _cleanup_free_ ca_error **errors = calloc(batch, sizeof(ca_error *));
  if (!ids || !errors) {
    ca_log_error("gc: out of memory");
    return;
  }
  for (size_t at = 0; at < n;) {
    size_t k = CA_MIN(batch, n - at);
    struct gc_item **chunk = items + at;
    for (size_t j = 0; j < k; j++)
      ids[j] = chunk[j]->id;
    at += k;
    memset(errors, 0, batch * sizeof(ca_error *));
    (void)dk_remove_many(g->env.dk, dk_kinds[kind], ids, k, g->o.parallel, errors, NULL); /* per-item below */
    for (size_t j = 0; j < k; j++) {
      chunk[j]->done = !errors[j];
      chunk[j]->error = errors[j];
      if (errors[j])
        g->failed[kind]++;
      else
        g->removed[kind]++;
    }
    show_progress(g, k);
  }
}

/* Deletes the listed items of one Docker kind. Running containers first: the engine kills each (forced DELETE) and
 * waits for its exit, and the quick removals of stopped ones fill the engine's time meanwhile, instead of queueing in
 * front of them. */
static void remove_docker(struct gc_run *g, enum gc_kind kind) {
  size_t n = 0;
  for (size_t i = 0; i < g->n; i++)
    n += g->items[i].kind == kind;
  if (!n)
    return;
  _cleanup_free_ struct gc_item **order = calloc(n, sizeof(*order));
  if (!order) {
    ca_log_error("gc: out of memory");
    return;
  }
  size_t m = 0;
  for (int running = 1; running >= 0; running--)
    for (size_t i = 0; i < g->n; i++)
      if (g->items[i].kind == kind && g->items[i].running == running)
        order[m++] = &g->items[i];
  remove_items(g, kind, order, m);
}

/* Adds the cgroup or registry file of a dead session of this host; -ENOMEM when out of memory. */
static int add_dead_session_item(struct gc_run *g, enum gc_kind kind, const char *id) {
  struct gc_item *gi = add_item(g);
  if (!gi || !(gi->id = strdup(id)))
    return -ENOMEM;
  gi->kind = kind;
  gi->rule = AG_RULE_DEAD_SESSION;
  snprintf(gi->session, sizeof(gi->session), "%s", id);
  return 0;
}

static int scan_cgroups(struct gc_run *g, ca_error **err) {
  if (!g->env.cg || cg_root_tracking(g->env.cg) != CG_TRACK_CGROUP)
    return 0;
  _cleanup_strv_free_ char **ids = NULL;
  if (cg_root_list_sessions(g->env.cg, &ids, err) < 0)
    return ca_error_wrap(err, "gc: list cgroups");
  for (char **id = ids; *id; id++) {
    /* Only a leaf whose session is known here and dead: its lock file is in this state dir and free. A leaf with no
     * lock file here may belong to an agent with another --state-dir; it is not ours to judge. */
    if (state_of(g, *id) != AG_SESSION_DEAD)
      continue;
    if (add_dead_session_item(g, GC_CGROUP, *id) < 0)
      return ca_error_set(err, ENOMEM, "gc: out of memory");
  }
  return 0;
}

static int scan_registries(struct gc_run *g, ca_error **err) {
  _cleanup_strv_free_ char **ids = NULL;
  if (ag_state_list_sessions(g->env.state, &ids, err) < 0)
    return ca_error_wrap(err, "gc");
  for (char **id = ids; *id; id++) {
    _cleanup_error_ ca_error *newer = NULL;
    if (ag_registry_check_version(g->env.state, *id, &newer) < 0) {
      ca_log_warning("gc: %s", newer->msg);
      continue;
    }
    if (state_of(g, *id) == AG_SESSION_ALIVE)
      continue;
    if (add_dead_session_item(g, GC_REGISTRY, *id) < 0)
      return ca_error_set(err, ENOMEM, "gc: out of memory");
  }
  return 0;
}

/* Registry files set aside as corrupt (and planted symbolic links) once older than AG_ASIDE_KEEP_SECONDS, or than
 * --older-than when given. */
static int scan_aside(struct gc_run *g, ca_error **err) {
  _cleanup_free_ struct ag_aside *v = NULL;
  size_t n = 0;
  if (ag_state_list_aside(g->env.state, &v, &n, err) < 0)
    return ca_error_wrap(err, "gc");
  int64_t keep = g->o.older_than_usec ? (int64_t)(g->o.older_than_usec / 1000000) : AG_ASIDE_KEEP_SECONDS;
  for (size_t i = 0; i < n; i++) {
    if (g->ctx.now - v[i].since < keep)
      continue;
    struct gc_item *gi = add_item(g);
    if (!gi || !(gi->id = strdup(v[i].name)) || !(gi->name = strdup(v[i].name)))
      return ca_error_set(err, ENOMEM, "gc: out of memory");
    gi->kind = GC_REGISTRY;
    gi->rule = AG_RULE_SET_ASIDE;
    snprintf(gi->session, sizeof(gi->session), "%s", v[i].id);
    gi->age = g->ctx.now - v[i].since;
  }
  return 0;
}

static void remove_aside(struct gc_run *g) {
  for (size_t i = 0; i < g->n; i++) {
    struct gc_item *it = &g->items[i];
    if (it->rule != AG_RULE_SET_ASIDE)
      continue;
    it->done = ag_state_remove_aside(g->env.state, it->id, &it->error) == 0;
    if (it->done)
      g->removed[GC_REGISTRY]++;
    else
      g->failed[GC_REGISTRY]++;
    show_progress(g, 1);
  }
}

/* True when something of the session could not be removed: its registry then stays, so that it is still known dead. */
static bool session_has_failures(const struct gc_run *g, const char *id) {
  for (size_t i = 0; i < g->n; i++)
    if (g->items[i].error && streq(g->items[i].session, id))
      return true;
  return false;
}

/* A dead session of this state dir, collected against what its registry recorded (its engine, which may not be
 * gc's, and its cgroup root); its registry goes only when everything of it did, else it stays with the reason. */
static int collect_registry(struct gc_run *g, struct gc_item *it) {
  if (session_has_failures(g, it->session)) {
    int r = ca_error_set(&it->error, EBUSY, "kept: resources of the session are left");
    ag_collect_keep(g->env.state, it->session, "gc could not remove resources of the session");
    return r;
  }
  struct ag_registry reg;
  _cleanup_error_ ca_error *e = NULL;
  int r = ag_registry_load(g->env.state, it->session, &reg, &e);
  if (r < 0 && r != -ENOENT)
    ca_log_warning("gc: %s; collecting session %s with gc's engine and cgroup root", e->msg, it->session);
  bool have_reg = r == 0;
  struct ag_collect_stats st = {0};
  r = ag_collect_session(&g->env, have_reg ? &reg : NULL, it->session, NULL, &st, &it->error);
  g->removed[GC_CONTAINER] += st.containers;
  g->removed[GC_NETWORK] += st.networks;
  g->removed[GC_VOLUME] += st.volumes;
  g->removed[GC_CGROUP] += st.cgroups;
  if (have_reg)
    ag_registry_done(&reg);
  return r;
}

static void remove_local(struct gc_run *g, enum gc_kind kind) {
  for (size_t i = 0; i < g->n; i++) {
    struct gc_item *it = &g->items[i];
    if (it->kind != kind || it->rule == AG_RULE_SET_ASIDE)
      continue;
    _cleanup_close_ int lock = -1;
    /* Hold the session's lock while we remove its leaf or files, as any collector does. A registry without a lock
     * file gets one (its owner made the lock first, so it is dead); a leaf's lock must still be there. */
    int r = ag_session_lock(g->env.state, it->session, kind == GC_REGISTRY, &lock, &it->error);
    if (r == 0 && kind == GC_CGROUP) {
      struct ag_collect_stats st = {0};
      r = ag_collect_cgroup(g->env.cg, it->session, &st, &it->error);
    } else if (r == 0 && kind == GC_REGISTRY) {
      r = collect_registry(g, it);
    }
    if (r < 0) {
      g->failed[kind]++;
    } else {
      it->done = true;
      g->removed[kind]++;
    }
    show_progress(g, 1);
  }
}

static const char *short_id(const struct gc_item *it, char buf[static 16]) {
  if (it->kind == GC_CONTAINER || it->kind == GC_NETWORK) {
    snprintf(buf, 16, "%.12s", it->id);
    return buf;
  }
  return it->kind == GC_VOLUME || it->rule == AG_RULE_SET_ASIDE ? it->id : it->session;
}

static const char *result_of(const struct gc_run *g, const struct gc_item *it) {
  if (g->o.dry_run)
    return "would-remove";
  return it->done ? "removed" : "failed";
}

static void print_table(const struct gc_run *g) {
  if (!g->n)
    return;
  printf("%-9s  %-32s  %-32s  %-12s  %-8s  %s\n", "KIND", "ID", "SESSION", "RULE", "AGE", "RESULT");
  for (size_t i = 0; i < g->n; i++) {
    const struct gc_item *it = &g->items[i];
    char idb[16], age[32] = "-";
    if (it->age > 0)
      (void)ca_format_duration((uint64_t)it->age * 1000000u, age);
    printf("%-9s  %-32s  %-32s  %-12s  %-8s  %s\n", gc_kind_names[it->kind], short_id(it, idb), it->session,
           ag_rule_name(it->rule), age, result_of(g, it));
  }
}

static void print_json(const struct gc_run *g, double duration) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddBoolToObject(j, "dry_run", g->o.dry_run);
  cJSON *arr = cJSON_AddArrayToObject(j, "items");
  for (size_t i = 0; i < g->n; i++) {
    const struct gc_item *it = &g->items[i];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToArray(arr, o);
    cJSON_AddStringToObject(o, "kind", gc_kind_names[it->kind]);
    cJSON_AddStringToObject(o, "id", it->kind == GC_CGROUP || it->kind == GC_REGISTRY ? it->session : it->id);
    if (it->name)
      cJSON_AddStringToObject(o, "name", it->name);
    cJSON_AddStringToObject(o, "session", it->session);
    cJSON_AddStringToObject(o, "rule", ag_rule_name(it->rule));
    cJSON_AddNumberToObject(o, "age_seconds", (double)it->age);
    cJSON_AddStringToObject(o, "result", result_of(g, it));
    if (it->error)
      cJSON_AddStringToObject(o, "error", it->error->msg);
  }
  cJSON *removed = cJSON_AddObjectToObject(j, "removed"), *failed = cJSON_AddObjectToObject(j, "left");
  for (int k = 0; k < GC_KINDS; k++) {
    cJSON_AddNumberToObject(removed, gc_kind_names[k], g->removed[k]);
    cJSON_AddNumberToObject(failed, gc_kind_names[k], g->failed[k]);
  }
  if (g->o.disk.disk_set || g->o.disk.build_cache_set)
    ag_disk_pass_json(&g->disk, &g->o.disk, g->o.dry_run, j);
  cJSON_AddNumberToObject(j, "duration_seconds", duration);
  char *text = cJSON_Print(j);
  if (text)
    printf("%s\n", text);
  free(text);
  cJSON_Delete(j);
}

/* The previous run's last-success timestamp, kept when this run leaves something. */
static double previous_success(const char *path) {
  _cleanup_free_ char *old = NULL;
  size_t len;
  if (ca_read_file(path, 1 << 20, &old, &len, NULL) < 0)
    return 0;
  const char *p = strstr(old, "\ncleanup_agent_gc_last_success_timestamp_seconds ");
  return p ? strtod(strchr(p + 1, ' ') + 1, NULL) : 0;
}

static void write_metrics(const struct gc_run *g, double duration, bool success) {
  ca_buf b = CA_BUF_INIT(1 << 20);
  (void)ca_buf_appendf(&b, NULL,
                       "# HELP cleanup_agent_gc_removed Resources the last gc run removed.\n"
                       "# TYPE cleanup_agent_gc_removed gauge\n");
  for (int k = 0; k < GC_KINDS; k++)
    (void)ca_buf_appendf(&b, NULL, "cleanup_agent_gc_removed{kind=\"%s\"} %u\n", gc_kind_names[k], g->removed[k]);
  (void)ca_buf_appendf(&b, NULL,
                       "# HELP cleanup_agent_gc_failed Resources the last gc run could not remove.\n"
                       "# TYPE cleanup_agent_gc_failed gauge\n");
  for (int k = 0; k < GC_KINDS; k++)
    (void)ca_buf_appendf(&b, NULL, "cleanup_agent_gc_failed{kind=\"%s\"} %u\n", gc_kind_names[k], g->failed[k]);
  double last = success ? (double)time(NULL) : previous_success(g->o.metrics);
  (void)ca_buf_appendf(&b, NULL,
                       "# HELP cleanup_agent_gc_duration_seconds Duration of the last gc run.\n"
                       "# TYPE cleanup_agent_gc_duration_seconds gauge\n"
                       "cleanup_agent_gc_duration_seconds %.3f\n"
                       "# HELP cleanup_agent_gc_last_success_timestamp_seconds When a gc run last left nothing.\n"
                       "# TYPE cleanup_agent_gc_last_success_timestamp_seconds gauge\n"
                       "cleanup_agent_gc_last_success_timestamp_seconds %.0f\n",
                       duration, last);
  _cleanup_error_ ca_error *err = NULL;
  /* Atomic: the node exporter's textfile collector may read it at any moment. */
  if (ca_write_file_atomic(g->o.metrics, ca_buf_str(&b), b.len, 0644, &err) < 0)
    ca_log_error("gc: --metrics-file: %s", err->msg);
  ca_buf_free(&b);
}

/* Two gcs never run at once: the second waits up to wait_usec, then says who holds the lock (quietly without a
 * wait: run's pressure check leaves the collection to the gc that runs). */
static int take_gc_lock(struct ag_state *state, uint64_t wait_usec, int *ret_fd) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/gc.lock", state->dir);
  _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    ca_log_error("gc: open %s: %s", path, strerror(errno));
    return -errno;
  }
  uint64_t deadline = ca_now_monotonic_usec() + wait_usec;
  while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    if (!wait_usec)
      return -EWOULDBLOCK;
    if (errno != EWOULDBLOCK || ca_now_monotonic_usec() >= deadline) {
      char holder[64] = "";
      ssize_t n = pread(fd, holder, sizeof(holder) - 1, 0);
      holder[n > 0 ? n : 0] = '\0';
      holder[strcspn(holder, "\n")] = '\0';
      ca_log_error("gc: another gc is running (%s); try again when it is done", *holder ? holder : "pid unknown");
      return -EWOULDBLOCK;
    }
    usleep(100 * 1000);
  }
  char me[64];
  int len = snprintf(me, sizeof(me), "pid %d, started %lld\n", (int)getpid(), (long long)time(NULL));
  if (ftruncate(fd, 0) < 0 || pwrite(fd, me, (size_t)len, 0) != len)
    ca_log_warning("gc: cannot record our pid in %s", path);
  *ret_fd = TAKE_FD(fd);
  return 0;
}

/* Connects to the engine and opens the cgroup root; gc goes on without either, collecting what it can reach, except
 * when the engine's TLS setup is wrong (the user's to fix): -1 then, said. */
static int open_backends(struct gc_run *g, const struct ag_globals *gl) {
  _cleanup_error_ ca_error *err = NULL;
  g->env.docker_host = gl->docker_host ? gl->docker_host : AG_DEFAULT_DOCKER_HOST;
  g->env.down = &g->down;
  struct dk_client_options dopts = {.host = g->env.docker_host};
  if (dk_client_new(&dopts, &g->env.dk, &err) < 0) {
    if (dk_error_is_tls(err)) {
      ca_log_error("gc: %s", err->msg);
      return -1;
    }
    ca_log_notice("gc: no Docker engine (%s): collecting only the dead sessions of this state dir, each "
                  "against the engine it recorded",
                  err->msg);
    ca_error_free(TAKE_PTR(err));
  }
  /* gc collects the leaves that exist: it makes no root, enables nothing and moves no process. */
  cg_root_options copts = {.root = gl->cgroup_root, .allow_process = true, .open_existing = true};
  AG_CGROUP_NAMES(copts);
  if (cg_root_open(&copts, &g->env.cg, &err) < 0)
    ca_log_warning("gc: %s", err->msg);
  return 0;
}

/* Lists every collectable item; returns false when some listing failed (what it found is still collected). */
static bool scan_all(struct gc_run *g) {
  _cleanup_error_ ca_error *err = NULL;
  bool ok = true;
  for (enum gc_kind k = GC_CONTAINER; g->env.dk && k <= GC_VOLUME; k++)
    if (scan_docker(g, k, &err) < 0) {
      ca_log_error("%s", err->msg);
      ca_error_free(TAKE_PTR(err));
      ok = false;
    }
  if (scan_cgroups(g, &err) < 0 || scan_registries(g, &err) < 0 || scan_aside(g, &err) < 0) {
    ca_log_error("%s", err->msg);
    ok = false;
  }
  return ok;
}

static void remove_all(struct gc_run *g) {
  g->progress_total = g->n;
  g->progress = isatty(STDERR_FILENO) && g->n > PROGRESS_MIN_ITEMS;
  for (enum gc_kind k = GC_CONTAINER; g->env.dk && k <= GC_VOLUME; k++)
    remove_docker(g, k);
  remove_local(g, GC_CGROUP);
  remove_local(g, GC_REGISTRY);
  remove_aside(g);
  if (g->progress)
    fputc('\n', stderr);
}

/* Prints the items, one line per item left and a summary to the log, and the metrics; returns the exit code. */
static int report(const struct gc_run *g, double duration, bool scan_ok) {
  if (g->o.json)
    print_json(g, duration);
  else
    print_table(g);
  bool disk = g->o.disk.disk_set || g->o.disk.build_cache_set;
  if (disk && !g->o.json)
    ag_disk_pass_print(&g->disk, &g->o.disk, g->o.dry_run);
  unsigned removed = 0, failed = disk ? g->disk.failed + (g->disk.prune_error != NULL) : 0;
  for (int k = 0; k < GC_KINDS; k++) {
    removed += g->removed[k];
    failed += g->failed[k];
  }
  for (size_t i = 0; i < g->n; i++)
    if (g->items[i].error)
      ca_log_error("gc: left %s %s: %s", gc_kind_names[g->items[i].kind], g->items[i].id, g->items[i].error->msg);
  if (g->o.dry_run)
    ca_log_notice("gc: dry run: %zu item%s would be removed", g->n, g->n == 1 ? "" : "s");
  else
    ca_log_notice("gc: removed %u, left %u (%u containers, %u networks, %u volumes, %u cgroups, %u registry files "
                  "removed) in %.2fs",
                  removed, failed, g->removed[GC_CONTAINER], g->removed[GC_NETWORK], g->removed[GC_VOLUME],
                  g->removed[GC_CGROUP], g->removed[GC_REGISTRY], duration);
  bool success = failed == 0 && scan_ok;
  if (g->o.metrics && !g->o.dry_run)
    write_metrics(g, duration, success);
  return success ? AG_EXIT_OK : AG_EXIT_FAILED;
}

static void init_ctx(struct gc_run *g) {
  g->ctx = (struct ag_rule_ctx){
      .host = g->self.host,
      .machine = g->self.machine[0] ? g->self.machine : NULL,
      .boot_id = g->self.boot_id,
      .pidns = g->self.pidns,
      .now = time(NULL),
      .scan_started = time(NULL),
      .older_than = g->o.older_than_usec / 1000000,
      .session_state = state_of,
      .process_alive = process_alive,
      .userdata = g,
  };
}

/* The disk pass, after the collection; a dry run's plan counts the containers the collection would remove as gone. */
static void disk_pass(struct gc_run *g) {
  if (!g->o.disk.disk_set && !g->o.disk.build_cache_set)
    return;
  _cleanup_free_ const char **going = g->o.dry_run ? calloc(g->n + 1, sizeof(char *)) : NULL;
  for (size_t i = 0, k = 0; going && i < g->n; i++)
    if (g->items[i].kind == GC_CONTAINER)
      going[k++] = g->items[i].id;
  ag_disk_pass_run(&g->env, &g->o.disk, g->o.dry_run, going, &g->disk);
}

static void gc_run_done(struct gc_run *g) {
  for (size_t i = 0; i < g->n; i++) {
    free(g->items[i].id);
    free(g->items[i].name);
    ca_error_free(g->items[i].error);
  }
  free(g->items);
  dk_client_free(g->inspect_dk);
  ag_engines_down_done(&g->down);
  ag_disk_pass_done(&g->disk);
  if (g->borrowed)
    return;
  dk_client_free(g->env.dk);
  cg_root_free(g->env.cg);
  ag_state_free(g->env.state);
}

int ag_cmd_gc(const struct ag_globals *gl, int argc, char **argv) {
  struct gc_run g = {0};
  int r = ag_gc_parse_opts(argc, argv, &g.o);
  if (r != 0)
    return r < 0 ? AG_EXIT_OK : r;
  _cleanup_error_ ca_error *err = NULL;
  _cleanup_close_ int lock = -1;
  int rc = AG_EXIT_FAILED;
  uint64_t t0 = ca_now_monotonic_usec();

  /* A dry run changes nothing: no state dir made, no gc.lock written (it removes nothing another gc could race). */
  unsigned flags = g.o.dry_run ? AG_STATE_READ_ONLY : 0;
  if (ag_state_open_flags(gl->state_dir, flags, &g.env.state, &err) < 0 || ag_owner_self(&g.self, &err) < 0) {
    ca_log_error("gc: %s", err->msg);
    goto out;
  }
  if (!g.o.dry_run && take_gc_lock(g.env.state, GC_LOCK_WAIT_USEC, &lock) < 0)
    goto out;
  init_ctx(&g);
  if (open_backends(&g, gl) < 0) {
    rc = AG_EXIT_USAGE;
    goto out;
  }
  bool scan_ok = scan_all(&g);
  if (!g.o.dry_run)
    remove_all(&g);
  disk_pass(&g);
  rc = report(&g, (double)(ca_now_monotonic_usec() - t0) / 1e6, scan_ok);
out:
  gc_run_done(&g);
  return rc;
}

int ag_gc_collect(const struct ag_env *env, const struct ag_disk_marks *m, struct ag_gc_totals *ret) {
  struct gc_run g = {.env = *env, .borrowed = true, .o = {.parallel = AG_GC_DEFAULT_PARALLEL, .disk = *m}};
  g.env.down = &g.down;
  g.o.disk.disk_set = true;
  _cleanup_close_ int lock = -1;
  int r = take_gc_lock(g.env.state, 0, &lock);
  if (r == 0 && (r = ag_owner_self(&g.self, NULL)) == 0) {
    init_ctx(&g);
    (void)scan_all(&g); /* what a listing missed waits for the next gc */
    remove_all(&g);
    disk_pass(&g);
    *ret = (struct ag_gc_totals){.images = g.disk.removed, .failed = g.disk.failed};
    for (int k = 0; k < GC_KINDS; k++) {
      ret->removed += g.removed[k];
      ret->failed += g.failed[k];
    }
  }
  gc_run_done(&g);
  return r;
}
