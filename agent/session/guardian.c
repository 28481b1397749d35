/* The guardian process (cleanup layer 3). */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "collect.h"
#include "guardian.h"
#include "process_name.h"

/* Closes every fd from 3 up except the ones listed (sorted ascending). */
static void close_all_but(const int *keep, size_t n) {
  unsigned lo = 3;
  for (size_t i = 0; i < n; i++) {
    if (keep[i] < 0 || (unsigned)keep[i] < lo)
      continue;
    if ((unsigned)keep[i] > lo)
      (void)close_range(lo, (unsigned)keep[i] - 1, 0); /* best effort: an fd left open is harmless here */
    lo = (unsigned)keep[i] + 1;
  }
  (void)close_range(lo, ~0U, 0);
}

/* Out of the job's way: its own session, its own name in ps (comm short_name, command line name), none of the CI
 * runners' tracking variables, deaf to the signals a job gets, no pipe of the job held open (stderr too when quiet),
 * no fd but keep (n of them, sorted ascending). */
static void detach(const char *short_name, const char *name, bool quiet, const int *keep, size_t n) {
  /* Its own session: a Ctrl-C or a signal to the job's process group is the agent's to handle, not ours. */
  (void)setsid();
  ag_process_rename(short_name, name);
  /* A runner that kills what carries its job's tracking id at the job's end would take us with the job. */
  ag_process_drop_tracking_env();
  /* A CI runner's cancel sends SIGTERM (or SIGINT, SIGHUP) to every process of the job, then SIGKILL to the agent:
   * the guardian exists to outlive that and clean up. It still ends once its work is done, and SIGKILL ends it. */
  signal(SIGTERM, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull >= 0) {
    /* Keep stderr for the report; stdin and stdout must not hold the job's pipes open. */
    (void)dup2(devnull, STDIN_FILENO);
    (void)dup2(devnull, STDOUT_FILENO);
    /* Handed over by a start that has its own work: holding its stderr would keep a `| tee` waiting 10 s. */
    if (quiet)
      (void)dup2(devnull, STDERR_FILENO);
  }
  close_all_but(keep, n);
}

static uint64_t teardown_usec(const struct ag_guardian_config *cfg) {
  return cfg->teardown_usec ? cfg->teardown_usec : AG_TEARDOWN_USEC;
}

/* The engine the guardian collects with: the one the registry names (an engine that did not answer at the start is
 * named once the proxy reached it), else (no registry yet, or one set aside here: said) the one the session started
 * with. NULL: none. */
static char *registry_engine(const struct ag_guardian_config *cfg, struct ag_state *state) {
  struct ag_registry reg;
  _cleanup_error_ ca_error *err = NULL;
  int r = ag_registry_load(state, cfg->session_id, &reg, &err);
  if (r < 0 && r != -ENOENT)
    ca_log_warning("guardian: %s", err->msg);
  if (r < 0)
    return cfg->docker_host ? strdup(cfg->docker_host) : NULL;
  char *host = reg.docker_host ? strdup(reg.docker_host) : NULL;
  ag_registry_done(&reg);
  return host;
}

/* Opens what the guardian collects with: the state dir, the cgroup root and the session's engine (*host, which the
 * caller frees); env.docker_host stays set when that engine does not answer, so that it is not asked twice. */
static int open_env(const struct ag_guardian_config *cfg, struct ag_env *env, char **host) {
  _cleanup_error_ ca_error *err = NULL;
  if (ag_state_open(cfg->state_dir, &env->state, &err) < 0) {
    ca_log_error("guardian: session %s: %s", cfg->session_id, err->msg);
    return -1;
  }
  cg_root_options copts = {.root = cfg->cgroup_root, .allow_process = true};
  AG_CGROUP_NAMES(copts);
  if (cg_root_open(&copts, &env->cg, &err) < 0) {
    ca_log_warning("guardian: session %s: %s", cfg->session_id, err->msg);
    ca_error_free(TAKE_PTR(err));
  }
  env->docker_host = *host = registry_engine(cfg, env->state);
  if (*host) {
    /* Within the teardown's time when it collects a dead agent's session (not retried): a quarter of it per call,
     * all of it for a removal (collect.c says why). */
    unsigned quarter_ms = (unsigned)CA_MIN(teardown_usec(cfg) / 4000, (uint64_t)AG_DOCKER_TIMEOUT_MS);
    struct dk_client_options dopts = {.host = *host,
                                      .timeout_ms = CA_MAX(quarter_ms, 100u),
                                      .remove_timeout_ms = (unsigned)CA_MIN(teardown_usec(cfg) / 1000, (uint64_t)60000),
                                      .retries = -1};
    if (dk_client_new(&dopts, &env->dk, &err) < 0)
      ca_log_warning("guardian: session %s: %s", cfg->session_id, err->msg);
  }
  return 0;
}

/* The sessions nested in this one, which its collection killed (their agents and guardians ran in its leaf): their
 * registries go too, without waiting for the next start or a watcher. Their creates went through this session's
 * proxy, which died with the agent; one in flight landed in time for watch_late, which looks by either label. */
static void collect_nested(const struct ag_guardian_config *cfg, const struct ag_env *env) {
  struct ag_collect_stats st = {0};
  _cleanup_error_ ca_error *err = NULL;
  int n = ag_collect_dead(env, cfg->session_id, true, NULL, &st, &err);
  if (n < 0)
    ca_log_warning("guardian: sessions nested in %s: %s", cfg->session_id, err->msg);
  else if (n > 0)
    ca_log_notice("guardian: collected %d session%s nested in %s", n, n == 1 ? "" : "s", cfg->session_id);
}

/* One look at the engine for creates of session id that landed after its collection: 0 when it listed and removed
 * everything. */
static int look_late(struct dk_client *dk, const char *id, ca_error **err) {
  struct ag_collect_stats late = {0};
  int r = ag_collect_docker(dk, id, &late, err);
  if (r == 0 && late.failed)
    r = ca_error_set(err, EBUSY, "%u resources created after the agent died could not be removed", late.failed);
  if (late.containers + late.networks + late.volumes) {
    char summary[256];
    ag_collect_stats_format(&late, summary, sizeof(summary));
    ca_log_notice("guardian: session %s: %s created after the agent died", id, summary);
  }
  return r;
}

/* A create the agent had in flight when it died (container-seq makes the next container ahead, a test may be in the
 * middle of `docker run -d`) lands in the engine after the first listing, and once the registry is gone nothing else
 * would collect it. A loaded engine took 3.5 s to finish such a create (tests/chaos, 5 sessions killed at once on a
 * vfs engine): look again once a second for 10 s, within the teardown's time. 0 when the last look listed and
 * removed everything; an error when it did not, or when no look fit in that time. */
#define WATCH_USEC (10 * 1000000ULL)

static int watch_late(const struct ag_guardian_config *cfg, const struct ag_env *env, ca_error **err) {
  int r = ca_error_set(err, ETIMEDOUT, "the teardown's time ran out before a look for late creates");
  for (int i = 0; i < 10 && !(env->deadline_usec && ca_now_monotonic_usec() + 1000000 > env->deadline_usec); i++) {
    struct timespec ts = {1, 0};
    nanosleep(&ts, NULL);
    ca_error_free(*err);
    *err = NULL;
    r = look_late(env->dk, cfg->session_id, err);
  }
  return r;
}

/* The agent died: collect the session against what its registry recorded (the registry may not be written yet: then
 * against the guardian's own engine and cgroup root), watch for late creates when one may land, and forget the
 * session only when everything went and the watch's last look found the engine empty. */
static int collect_died(const struct ag_guardian_config *cfg, const struct ag_env *env, bool late) {
  struct ag_registry reg;
  _cleanup_error_ ca_error *err = NULL, *why = NULL;
  int r = ag_registry_load(env->state, cfg->session_id, &reg, &err);
  if (r < 0 && r != -ENOENT)
    ca_log_warning("guardian: %s", err->msg);
  ca_error_free(TAKE_PTR(err));
  bool have_reg = r == 0;
  struct ag_collect_stats st = {0};
  r = ag_collect_recorded(env, have_reg ? &reg : NULL, cfg->session_id, &st, &why);
  char summary[256];
  ag_collect_stats_format(&st, summary, sizeof(summary));
  if (r == 0 && late) {
    ca_log_notice("guardian: the agent died; session %s: %s%swatching 10 s for creates that may land late",
                  cfg->session_id, summary, *summary ? "; " : "");
    r = watch_late(cfg, env, &why);
  }
  r = ag_collect_settle(env, cfg->session_id, r, &why, &err);
  if (r == 0)
    ca_log_notice("guardian: the agent died; cleaned up session %s%s%s", cfg->session_id, *summary ? ": " : "",
                  summary);
  else
    ca_log_error("guardian: the agent died; session %s stays registered for the next start or gc: %s%s%s",
                 cfg->session_id, err->msg, *summary ? "; " : "", summary);
  if (have_reg)
    ag_registry_done(&reg);
  return r;
}

/* Whether a create may land after the collection: one was in flight when the agent died, or the command could reach
 * the engine some way that is not counted (no proxy: the engine itself), or nothing was counted at all. */
static bool creates_may_land(const struct ag_creates *c) {
  return !c || !atomic_load(&c->all_counted) || atomic_load(&c->in_flight) > 0;
}

static _noreturn_ void guardian_main(const struct ag_guardian_config *cfg, int fd, const struct ag_creates *creates) {
  int keep[2] = {CA_MIN(fd, cfg->lock_fd), CA_MAX(fd, cfg->lock_fd)};
  char name[64];
  snprintf(name, sizeof(name), "cleanup-agent: guardian of %s", cfg->session_id);
  detach("ca-guardian", name, false, keep, 2);
  char c;
  ssize_t n;
  while ((n = read(fd, &c, 1)) < 0 && errno == EINTR)
    ;
  if (n > 0)
    _exit(0); /* the agent finished and cleaned up itself */

  /* The agent is gone without finishing. We still hold its lock, so nobody else collects while we do. */
  struct ag_env env = {.deadline_usec = ca_now_monotonic_usec() + teardown_usec(cfg)};
  char *host = NULL;
  if (open_env(cfg, &env, &host) < 0)
    _exit(1);
  bool late = env.dk && creates_may_land(creates); /* read once the agent is dead: nothing changes it any more */
  int r = collect_died(cfg, &env, late);
  if (r == 0 && env.dk && !late)
    ca_log_info("guardian: session %s: no create was in flight: nothing lands later", cfg->session_id);
  if (r == 0)
    collect_nested(cfg, &env);
  dk_client_free(env.dk);
  free(host);
  cg_root_free(env.cg);
  ag_state_free(env.state);
  _exit(r < 0 ? 1 : 0);
}

int ag_guardian_start(const struct ag_guardian_config *cfg, struct ag_guardian *ret, ca_error **err) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0)
    return ca_error_set_errno(err, errno, "guardian: pipe");
  /* Shared with the guardian across the fork; without it, the guardian watches for late creates every time. */
  struct ag_creates *creates =
      mmap(NULL, sizeof(struct ag_creates), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (creates == MAP_FAILED)
    creates = NULL;
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(p[0]);
    close(p[1]);
    if (creates)
      (void)munmap(creates, sizeof(*creates));
    return ca_error_set_errno(err, e, "guardian: fork");
  }
  if (pid == 0) {
    close(p[1]);
    guardian_main(cfg, p[0], creates);
  }
  close(p[0]);
  ret->pid = pid;
  ret->fd = p[1];
  ret->creates = creates;
  ag_creates_current = creates; /* the proxy and container-seq count into it from now on */
  return 0;
}

void ag_guardian_all_creates_counted(struct ag_guardian *g) {
  if (g->creates)
    atomic_store(&g->creates->all_counted, true);
}

void ag_guardian_release(struct ag_guardian *g) {
  if (g->fd < 0)
    return;
  ssize_t n = write(g->fd, "D", 1);
  (void)n; /* a guardian that is already gone needs no message */
  close(g->fd);
  g->fd = -1;
  while (waitpid(g->pid, NULL, 0) < 0 && errno == EINTR)
    ;
}

int ag_watch_add(struct ag_watch_list *w, const char *id, const char *docker_host, int lock_fd) {
  if (w->n >= AG_WATCH_MAX)
    return -ENOSPC;
  struct ag_watched *it = &w->items[w->n];
  if (!(it->docker_host = strdup(docker_host)))
    return -ENOMEM;
  snprintf(it->id, sizeof(it->id), "%s", id);
  it->lock_fd = lock_fd;
  w->n++;
  return 0;
}

void ag_watch_clear(struct ag_watch_list *w) {
  for (size_t i = 0; i < w->n; i++) {
    free(w->items[i].docker_host);
    ca_close_keep_errno(w->items[i].lock_fd);
  }
  w->n = 0;
}

static int cmp_int(const void *a, const void *b) {
  return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
}

/* A client of each session's recorded engine, one per engine (dks[i] NULL with errs[i] set when it did not answer;
 * owner[i] says which dks free). */
static void open_engines(const struct ag_watch_list *w, struct dk_client **dks, bool *owner, ca_error **errs) {
  for (size_t i = 0; i < w->n; i++) {
    size_t same = 0;
    while (same < i && !streq(w->items[same].docker_host, w->items[i].docker_host))
      same++;
    if (same < i) {
      dks[i] = dks[same];
      if (!dks[i])
        (void)ca_error_set(&errs[i], EHOSTDOWN, "engine %s did not answer", w->items[i].docker_host);
      continue;
    }
    struct dk_client_options o = {
        .host = w->items[i].docker_host, .timeout_ms = AG_DOCKER_TIMEOUT_MS, .retries = AG_DOCKER_RETRIES};
    if (dk_client_new(&o, &dks[i], &errs[i]) == 0)
      owner[i] = true;
    else
      (void)ca_error_wrap(&errs[i], "engine %s", w->items[i].docker_host);
  }
}

/* One look at every session for late creates. An engine that failed a look with a transient error (down, slow) is
 * not asked again in the same round: its other sessions get the same error. */
static void look_all(const struct ag_watch_list *w, struct dk_client **dks, ca_error **errs) {
  for (size_t i = 0; i < w->n; i++) {
    if (!dks[i])
      continue;
    ca_error_free(TAKE_PTR(errs[i]));
    size_t down = 0;
    while (down < i && !(dks[down] == dks[i] && errs[down] && dk_error_kind(errs[down]) == DK_ERR_TRANSIENT))
      down++;
    if (down < i)
      (void)ca_error_set(&errs[i], errs[down]->code, "%s", errs[down]->msg);
    else
      (void)look_late(dks[i], w->items[i].id, &errs[i]);
  }
}

/* The watcher: every session's engine is looked at once a second for 10 s; then each session whose last look
 * succeeded is forgotten, the others stay registered with the reason. Each lock goes with its session. */
static _noreturn_ void watcher_main(const char *state_dir, const struct ag_watch_list *w) {
  int keep[AG_WATCH_MAX];
  for (size_t i = 0; i < w->n; i++)
    keep[i] = w->items[i].lock_fd;
  qsort(keep, w->n, sizeof(int), cmp_int);
  char name[96];
  if (w->n == 1)
    snprintf(name, sizeof(name), "cleanup-agent: late-create watcher of %s", w->items[0].id);
  else
    snprintf(name, sizeof(name), "cleanup-agent: late-create watcher of %zu sessions", w->n);
  detach("ca-watcher", name, true, keep, w->n);
  struct ag_env env = {0};
  _cleanup_error_ ca_error *err = NULL;
  if (ag_state_open(state_dir, &env.state, &err) < 0)
    _exit(1); /* the registries stay, and the locks go with us */
  struct dk_client *dks[AG_WATCH_MAX] = {0};
  bool owner[AG_WATCH_MAX] = {0};
  ca_error *errs[AG_WATCH_MAX] = {0};
  open_engines(w, dks, owner, errs);
  uint64_t end = ca_now_monotonic_usec() + WATCH_USEC;
  do {
    struct timespec ts = {1, 0};
    nanosleep(&ts, NULL);
    look_all(w, dks, errs);
  } while (ca_now_monotonic_usec() < end);
  int r = 0;
  for (size_t i = 0; i < w->n; i++) {
    /* Kept while the engine the session recorded does not answer: the registry is its only trace. */
    if (errs[i])
      ag_collect_keep(env.state, w->items[i].id, errs[i]->msg);
    else if (ag_collect_forget(&env, w->items[i].id, &err) < 0)
      ca_error_free(TAKE_PTR(err)); /* said nowhere: stderr is closed; the next start tries again */
    r = r < 0 || errs[i] ? -1 : 0;
    ca_error_free(errs[i]);
    close(w->items[i].lock_fd);
    if (owner[i])
      dk_client_free(dks[i]);
  }
  ag_state_free(env.state);
  _exit(r < 0 ? 1 : 0);
}

int ag_watcher_start(const char *state_dir, const struct ag_watch_list *w, ca_error **err) {
  if (w->n == 0)
    return 0;
  pid_t child = fork();
  if (child < 0)
    return ca_error_set_errno(err, errno, "cannot start a watcher for late creates: fork");
  if (child == 0) {
    /* The watcher outlives this start: it is the child's child, and the child exits at once. */
    pid_t watcher = fork();
    if (watcher == 0)
      watcher_main(state_dir, w);
    _exit(watcher < 0 ? 1 : 0);
  }
  int status;
  while (waitpid(child, &status, 0) < 0)
    if (errno != EINTR)
      return ca_error_set_errno(err, errno, "cannot start a watcher for late creates: wait");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return ca_error_set(err, ECHILD, "cannot start a watcher for late creates: its fork failed");
  return 0;
}
