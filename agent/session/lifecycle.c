/* The life of a session: one implementation for run and container-seq, in this order.
 *
 * Start: ag_session_open, then ag_session_begin.
 *   1. Open the state dir, the engine client and the cgroup root. Nothing is written: a command may still refuse.
 *   2. Collect the dead sessions of this host (cleanup layer 4), each against the engine and cgroup root its registry
 *      recorded. It needs the cgroup root, so that no registry goes before its session's cgroup: without one it is
 *      skipped, with a warning.
 *   3. A new id and the owner (host, boot, pid and start time).
 *   4. The lease lock: from here the session is alive to every other agent, ps and gc.
 *   5. The session labels, then the guardian (layer 3), forked before any thread of ours or libcurl exists; it holds
 *      the lock too, so that nobody collects the session while the guardian does.
 *   6. A lazy engine client starts connecting in the background (libcurl's initialisation and the version
 *      negotiation) while steps 7 and 8 run, so that the command waits for the engine as little as it can.
 *   7. The registry, with everything a later cleanup needs: mode, owner, created, expires, guardian pid,
 *      cgroup_root, docker_host and the command.
 *   8. The Docker labeling proxy: its socket appears only once the registry names the session.
 *   Then the command's own work: run's cgroup leaf and command, container-seq's containers.
 *
 * End: the command first kills what it ran itself (run: its tree, after reading its stats; container-seq: its
 * threads), then ag_session_end:
 *   1. The proxy stops, so that a create racing the end is either collected below or never made: creates get a
 *      503, those in flight are answered and their ids recorded, removed by id in step 2 with what the listing by
 *      label finds. (It stops after the tree died: a client of the tree holding a request open would otherwise hold
 *      the drain.)
 *   2. ag_collect_recorded, the code the guardian, kill and gc run: the session's cgroup, then its containers,
 *      networks and volumes, then the registry (ag_collect_settle), which goes last and only when everything else
 *      went (an engine that did not answer included): it is what tells the next start and gc that the session still
 *      has something left, and it keeps the reason. When a registry may go is decided in collect.c alone
 *      (ag_collect_settle, ag_collect_forget). A create the session counted whose answer never came may land after
 *      the listing: then a watcher for late creates takes the session, and forgets it after its last look.
 *   3. The guardian is told the session ended and reaped; the lock goes with the session's free. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lifecycle.h"

void ag_session_warn(struct ag_session *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = NULL;
  if (vasprintf(&msg, fmt, ap) < 0)
    msg = NULL;
  va_end(ap);
  if (!msg)
    return;
  ca_log_warning("%s", msg);
  if (s->n_warnings < AG_SESSION_MAX_WARNINGS)
    s->warnings[s->n_warnings++] = msg;
  else
    free(msg);
}

void ag_session_left(struct ag_session *s, const char *fmt, ...) {
  if (s->left)
    return;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&s->left, fmt, ap) < 0)
    s->left = strdup("the command's tree could not be removed"); /* NULL when out of memory: then only the warning */
  va_end(ap);
}

/* The engine is optional unless the config says otherwise: without one the session cleans processes only, and says
 * so once. A lazy client only checks the socket here; a TCP engine is connected at once, so that a TLS setup it
 * refuses stops the session before anything runs. */
static int open_engine(struct ag_session *s, ca_error **err) {
  struct dk_client_options o = s->cfg->engine;
  o.host = s->docker_host;
  o.lazy = o.lazy && ag_proxy_engine_socket(s->docker_host);
  _cleanup_error_ ca_error *e = NULL;
  int r = dk_client_new(&o, &s->env.dk, &e);
  if (r < 0 && (s->cfg->engine_required || dk_error_is_tls(e))) { /* a TLS setup that is wrong is the user's to fix */
    if (err)
      *err = TAKE_PTR(e);
    return r;
  }
  if (r < 0 && s->cfg->proxy != AG_SESSION_NO_PROXY && err)
    ca_log_notice("no Docker engine yet (%s): the command's proxy reaches it once it is up", e->msg);
  else if (r < 0 && err)
    ca_log_notice("no Docker engine (%s): cleaning up processes only", e->msg);
  return 0;
}

int ag_session_cgroup_root_open(const struct ag_globals *g, const struct ag_nesting *nest, cg_root **ret,
                                ca_error **err) {
  /* Inside another session's leaf, our leaves go inside it: its kill is ours too (nesting.h). */
  return ag_session_cgroup_root_open_for(g, nest, false, ret, err);
}

int ag_session_cgroup_root_open_for(const struct ag_globals *g, const struct ag_nesting *nest, bool one_path,
                                    cg_root **ret, ca_error **err) {
  cg_root_options copts = {
      .root = nest->cgroup_dir ? nest->cgroup_dir : g->cgroup_root, .allow_process = true, .one_path = one_path};
  AG_CGROUP_NAMES(copts);
  int r = cg_root_open(&copts, ret, err);
  if (r < 0 && g->systemd_driver_origin)
    ca_error_wrap(err, "%s%ssystemd", g->systemd_driver_origin, /* the user named it: say where */
                  g->systemd_driver_origin[0] == '-' ? " " : "=");
  return r;
}

static int open_cgroup_root(struct ag_session *s, ca_error **err) {
  const struct ag_session_config *cfg = s->cfg;
  _cleanup_error_ ca_error *e = NULL;
  int r = ag_session_cgroup_root_open_for(cfg->globals, &s->nest, cfg->cgroup_one_path, &s->env.cg, &e);
  if (r < 0 && !cfg->cgroup_required) {
    ca_log_warning("not collecting dead sessions: %s", e->msg);
    return 0;
  }
  if (r < 0) {
    if (err)
      *err = TAKE_PTR(e);
    return r;
  }
  if (cfg->cgroup_required && cg_root_tracking(s->env.cg) == CG_TRACK_PROCESS) {
    if (cfg->cgroup_limits)
      return ca_error_set(err, EPERM, "limits need a writable cgroup (%s)", cg_root_fallback_reason(s->env.cg));
    ca_log_notice("no writable cgroup (%s): tracking the command's processes by process group and /proc instead; "
                  "not caught this way: a process that leaves the group (setsid) and is re-parented away from the "
                  "agent (to another subreaper), a daemon started through another service, and, once the agent is "
                  "killed, one that left the group and whose parent is gone",
                  cg_root_fallback_reason(s->env.cg));
  }
  return 0;
}

int ag_session_open(const struct ag_session_config *cfg, struct ag_session **ret, ca_error **err) {
  _cleanup_(ag_session_freep) struct ag_session *s = calloc(1, sizeof(*s));
  if (!s)
    return ca_error_set(err, ENOMEM, "out of memory");
  s->cfg = cfg;
  pthread_mutex_init(&s->reg_mu, NULL);
  s->lock_fd = -1;
  s->guardian.fd = -1;
  s->docker_host = cfg->globals->docker_host ? cfg->globals->docker_host : AG_DEFAULT_DOCKER_HOST;
  ag_nesting_detect(NULL, &s->nest);
  s->env.docker_host = s->docker_host;
  int r = ag_state_open(cfg->globals->state_dir, &s->env.state, err);
  if (r < 0 || (r = open_engine(s, err)) < 0 || (r = open_cgroup_root(s, err)) < 0)
    return r;
  *ret = TAKE_PTR(s);
  return 0;
}

/* The dead sessions collected by one pass, handed to watchers for late creates (ag_watcher_start). */
struct late_watch {
  const struct ag_env *env;
  struct ag_watch_list list;
};

/* Hands the sessions of w to one watcher for late creates (which then forgets them). When none could start, they stay
 * registered with the reason, and the next start collects and hands them again: a create that lands late has no
 * other trace. Empties the list. */
static void hand_off(struct late_watch *w) {
  _cleanup_error_ ca_error *err = NULL;
  if (ag_watcher_start(w->env->state->dir, &w->list, &err) < 0) {
    ca_log_warning("%s; %zu dead session%s stay%s registered for the next start to watch for late creates", err->msg,
                   w->list.n, w->list.n == 1 ? "" : "s", w->list.n == 1 ? "s" : "");
    for (size_t i = 0; i < w->list.n; i++)
      ag_collect_keep(w->env->state, w->list.items[i].id, err->msg);
  }
  ag_watch_clear(&w->list);
}

/* ag_collect_late's take: a full list goes to its watcher first, and this session starts the next list. */
static int watch_late(void *ctx, const char *id, const char *docker_host, int *lock) {
  struct late_watch *w = ctx;
  if (w->list.n == AG_WATCH_MAX)
    hand_off(w);
  if (ag_watch_add(&w->list, id, docker_host, *lock) < 0)
    return -1;
  *lock = -1;
  return 0;
}

/* Layer 4: whatever a dead session of this host left. Costs one directory read when there is nothing. drained: the
 * ending session, when its proxy drained: the sessions nested in it are forgotten at once (ag_collect_dead). */
static void collect_dead(struct ag_session *s, const char *drained) {
  if (!s->env.cg)
    return; /* said so when the cgroup root did not open */
  _cleanup_error_ ca_error *err = NULL;
  _cleanup_free_ struct late_watch *w = calloc(1, sizeof(*w));
  if (!w) {
    ag_session_warn(s, "collect dead sessions: out of memory");
    return;
  }
  w->env = &s->env;
  struct ag_engines_down down = {0};
  s->env.down = &down; /* one wait for an engine that many dead sessions recorded */
  int n = ag_collect_dead(&s->env, drained, false, &(struct ag_collect_late){watch_late, w}, &s->startup, &err);
  hand_off(w);
  s->env.down = NULL;
  ag_engines_down_done(&down);
  if (n > 0) {
    char what[256];
    ag_collect_stats_format(&s->startup, what, sizeof(what));
    ca_log_notice("collected %d dead session%s%s%s", n, n == 1 ? "" : "s", *what ? ": " : "", what);
  } else if (n < 0) {
    ag_session_warn(s, "collect dead sessions: %s", err->msg);
  }
}

/* With the systemd driver the guardian gets a scope of its own (it has its own session and process group anyway): a
 * runner service stopped with KillMode=control-group kills the agent's cgroup, not the guardian that collects after
 * it. */
static void adopt_guardian(struct ag_session *s) {
  _cleanup_error_ ca_error *e = NULL;
  if (s->env.cg && cg_root_adopt_helper(s->env.cg, "guardian", s->id, s->guardian.pid, &e) < 0)
    ag_session_warn(s, "the guardian stays in the agent's cgroup: %s", e->msg);
}

/* The engine a session records: nested, the one behind the parent's proxy, which goes with the parent (nesting.h). */
static char *session_engine(const struct ag_session *s) {
  return (char *)ag_nesting_engine(&s->nest, s->docker_host);
}

/* Steps 3 to 5: id, owner, lock, labels, guardian. Nothing but the lock file exists when it fails. */
static int take_session(struct ag_session *s, ca_error **err) {
  const struct ag_session_config *cfg = s->cfg;
  struct ag_registry *reg = &s->reg;
  reg->created = time(NULL);
  int r;
  /* The lock is published only once the guardian holds it too: an agent killed before that leaves no file at all
   * (or, without O_TMPFILE, a temp lock that its guardian or the next start removes), never a lock nobody collects. */
  if ((r = ag_session_id_new(s->id, err)) < 0 || (r = ag_owner_self(&reg->owner, err)) < 0 ||
      (r = ag_session_lock_new(s->env.state, s->id, &s->lock_fd, err)) < 0)
    return r;
  memcpy(reg->id, s->id, sizeof(reg->id));
  snprintf(reg->mode, sizeof(reg->mode), "%s", cfg->mode);
  reg->expires = cfg->ttl_usec ? reg->created + (int64_t)(cfg->ttl_usec / 1000000) : 0;
  reg->guardian_pid = 0;
  reg->cgroup_root = s->env.cg ? (char *)cg_root_path(s->env.cg) : NULL;
  /* Nested, the engine is the one behind the parent's proxy: that proxy goes with the parent (nesting.h). */
  reg->docker_host = s->env.dk ? session_engine(s) : NULL;
  reg->command = cfg->command;
  reg->images_remove = cfg->images_remove;
  struct ag_guardian_config gcfg = {
      .session_id = s->id,
      .state_dir = s->env.state->dir,
      .cgroup_root = s->nest.cgroup_dir ? s->nest.cgroup_dir : cfg->globals->cgroup_root,
      .docker_host = reg->docker_host,
      .lock_fd = s->lock_fd,
      .teardown_usec = cfg->globals->teardown_usec,
  };
  const char *outer[] = {s->nest.outer_label[0] ? s->nest.outer_label : NULL, NULL};
  if (!(s->labels = ag_session_labels(reg, outer)))
    r = ca_error_set(err, ENOMEM, "out of memory");
  else if ((r = ag_guardian_start(&gcfg, &s->guardian, err)) == 0 &&
           (r = ag_session_lock_publish(s->env.state, s->lock_fd, s->id, err)) < 0)
    ag_guardian_release(&s->guardian); /* told the session ended: it leaves */
  if (r < 0) {
    (void)ag_registry_remove(s->env.state, s->id, NULL); /* nothing was created yet but the lock file */
    return r;
  }
  reg->guardian_pid = s->guardian.pid;
  adopt_guardian(s);
  s->registered = true;
  return 0;
}

/* The labels the proxy adds besides the session's: run's --label, and the outer label of a nested session. */
static char **proxy_labels(const struct ag_session *s) {
  size_t n = 0;
  while (s->cfg->proxy_labels && s->cfg->proxy_labels[n])
    n++;
  char **v = calloc(n + 2, sizeof(char *));
  bool ok = v != NULL;
  for (size_t i = 0; ok && i < n; i++)
    ok = (v[i] = strdup(s->cfg->proxy_labels[i])) != NULL;
  if (ok && s->nest.outer_label[0])
    ok = (v[n] = strdup(s->nest.outer_label)) != NULL;
  if (!ok)
    ca_strv_free(TAKE_PTR(v));
  return v;
}

/* An engine that did not answer at the start, reached since: from now on the command may make things there, so the
 * registry names it (for the guardian, the next start and gc) before anything goes there. The proxy's engine_reached
 * (in a connection's thread), and the end's. */
static int record_engine(void *ctx, ca_error **err) {
  struct ag_session *s = ctx;
  pthread_mutex_lock(&s->reg_mu);
  int r = 0;
  if (!s->reg.docker_host) {
    s->reg.docker_host = session_engine(s);
    if ((r = ag_registry_write(s->env.state, &s->reg, err)) < 0) {
      s->reg.docker_host = NULL; /* not recorded: the proxy refuses the connection, the next one tries again */
      ca_error_wrap(err, "cannot record the engine in the session's registry");
    }
  }
  pthread_mutex_unlock(&s->reg_mu);
  return r;
}

/* Step 8. The proxy asked for (the default) is given to the command or the run does not start: never the engine itself
 * without --no-docker-proxy. An engine that does not answer yet still gets it (connected per request: a Unix socket,
 * or a TCP engine through a client made for it), a TCP or TLS engine gets it through the session's client (its
 * certificates). */
static int start_proxy(struct ag_session *s, ca_error **err) {
  const struct ag_session_config *cfg = s->cfg;
  if (cfg->proxy == AG_SESSION_NO_PROXY)
    return 0;
  const char *pfx = cfg->proxy == AG_SESSION_PROXY_REQUIRED ? "--docker-proxy: " : "";
  /* container-seq mounts the socket into containers of the engine, which a TCP engine may run on another host. */
  if (cfg->proxy == AG_SESSION_PROXY_REQUIRED && !ag_proxy_engine_socket(s->docker_host))
    return ca_error_set(err, EPROTONOSUPPORT,
                        "%s%s is a TCP engine, which may run its containers on another host: the session's socket "
                        "cannot be mounted into them (run the tests without --docker-proxy)",
                        pfx, s->docker_host);
  _cleanup_error_ ca_error *e = NULL;
  _cleanup_strv_free_ char **extra = proxy_labels(s);
  if (!extra)
    return ca_error_set(err, ENOMEM, "out of memory");
  /* An engine that did not answer yet goes into the registry when the proxy first reaches it (record_engine). */
  int r = ag_proxy_start_session(s->env.state, &s->reg, s->docker_host, s->env.dk, (const char *const *)extra,
                                 s->reg.docker_host ? NULL : record_engine, s, &s->proxy, &e);
  if (r < 0)
    return ca_error_set(err, -r,
                        "%s%s; the command would talk to the engine unlabeled, so it does not start "
                        "(--no-docker-proxy gives it the engine itself)",
                        pfx, e->msg);
  if (asprintf(&s->proxy_host, "unix://%s", ag_proxy_socket_path(s->proxy)) < 0) {
    s->proxy_host = NULL;
    ag_proxy_stop(TAKE_PTR(s->proxy), 0);
    return ca_error_set(err, ENOMEM, "%sout of memory", pfx);
  }
  return 0;
}

/* An engine that was not up at the start may be up at the end: the end collects there, and records it if the proxy
 * did not (a client may have labeled by $CLEANUP_AGENT_SESSION itself, past the proxy). */
static void late_engine(struct ag_session *s) {
  if (s->env.dk || !s->proxy_host || open_engine(s, NULL) < 0 || !s->env.dk)
    return;
  _cleanup_error_ ca_error *e = NULL;
  if (record_engine(s, &e) < 0) {
    ca_log_warning("%s", e->msg);
    s->reg.docker_host = session_engine(s); /* the end still collects there; the proxy's threads are gone */
  }
}

/* The config's first call, in the lazy client's thread. It reads s->cfg and env's state, engine and docker_host,
 * which stay as they are until the thread is joined (the session's end writes only env's deadline and recorded ids
 * before it joins); not made once the end began (a registry or proxy that failed): the end joins the thread and
 * would wait for it. */
static void engine_first(struct dk_client *c, void *userdata) {
  const struct ag_session *s = userdata;
  (void)c; /* s->env.dk */
  if (!atomic_load(&s->ending))
    s->cfg->engine_first(&s->env, s->cfg->engine_first_userdata);
}

int ag_session_begin(struct ag_session *s, ca_error **err) {
  collect_dead(s, NULL);
  int r = take_session(s, err);
  if (r < 0)
    return r;
  /* Only after the guardian's fork, which must not inherit libcurl's initialisation half done by another thread; and
   * before the registry and the proxy, so that it overlaps them (neither uses the lazy client of a Unix socket). */
  dk_client_connect_start(s->env.dk, s->cfg->engine_first ? engine_first : NULL, s);
  if ((r = ag_registry_write(s->env.state, &s->reg, err)) < 0 || (r = start_proxy(s, err)) < 0)
    return r;
  if (s->proxy_host) /* the command reaches the engine through the proxy, which counts its creates */
    ag_guardian_all_creates_counted(&s->guardian);
  return 0;
}

/* The session counted creates whose answer was never read (creates.h: the proxy's, when its drain's time ran out or
 * the engine's side of their connection went, and container-seq's own that timed out): what they make may land after
 * the end's listing. A watcher looks for it once a second for 10 s, as after a dead session's collection, and then
 * forgets the session; it holds the session's lock (a copy) until then. 0 when a watcher took the session. */
static int watch_unanswered(struct ag_session *s, unsigned unanswered, ca_error **err) {
  _cleanup_free_ struct ag_watch_list *w = calloc(1, sizeof(*w));
  if (!w)
    return ca_error_set(err, ENOMEM, "out of memory");
  int lock = fcntl(s->lock_fd, F_DUPFD_CLOEXEC, 3);
  if (lock < 0)
    return ca_error_set_errno(err, errno, "cannot watch for late creates: the session's lock");
  int r = ag_watch_add(w, s->id, s->reg.docker_host, lock);
  if (r < 0) {
    close(lock);
    return ca_error_set(err, -r, "cannot watch for late creates: out of memory");
  }
  r = ag_watcher_start(s->env.state->dir, w, err);
  ag_watch_clear(w); /* our copy of the lock: the watcher has its own */
  if (r == 0)
    ca_log_notice("%u create%s sent to the engine without an answer, which the engine may still make: a watcher "
                  "removes what lands in the next 10 s",
                  unanswered, unanswered == 1 ? " was" : "s were");
  return r;
}

int ag_session_end(struct ag_session *s) {
  if (!s->registered)
    return 0;
  s->registered = false;
  atomic_store(&s->ending, true); /* no first call starts in the engine client's thread from here */
  /* One deadline for the whole end: the collection asks the engine within it, without retrying a timeout, and what
   * it did not remove by then stays registered. */
  uint64_t teardown = s->cfg->globals->teardown_usec ? s->cfg->globals->teardown_usec : AG_TEARDOWN_USEC;
  s->env.deadline_usec = ca_now_monotonic_usec() + teardown;
  /* Creates get a 503 from here; those in flight are answered and their ids recorded (proxy.h). */
  _cleanup_strv_free_ char **made = NULL;
  bool had_proxy = s->proxy != NULL;
  ag_proxy_stop_recorded(TAKE_PTR(s->proxy), CA_MIN(AG_SESSION_PROXY_DRAIN_USEC, teardown / 4), &made);
  unsigned unanswered = s->guardian.creates ? atomic_load(&s->guardian.creates->in_flight) : 0;
  _cleanup_error_ ca_error *err = NULL;
  late_engine(s);
  if (s->env.dk && dk_client_connect(s->env.dk, &err) < 0) {
    /* Not asked again below: the collection says the engine did not answer, and the registry stays. */
    ca_log_notice("no Docker engine (%s)", err->msg);
    ca_error_free(TAKE_PTR(err));
    dk_client_free(TAKE_PTR(s->env.dk));
  }
  s->collected.not_removed = &s->not_removed;
  /* What the proxy saw the engine create goes by id with what the listing by label finds (which a label the engine
   * dropped would miss), in the same parallel removals; one that cannot be removed keeps the registry. */
  s->env.recorded = made;
  _cleanup_error_ ca_error *why = NULL;
  int r = ag_collect_recorded(&s->env, &s->reg, s->id, &s->collected, &why);
  if (r == 0 && s->left)
    r = ca_error_set(&why, EBUSY, "%s", s->left);
  bool watched = false;
  if (r == 0 && unanswered && s->reg.docker_host)
    watched = (r = watch_unanswered(s, unanswered, &why)) == 0;
  if (!watched) /* the registry goes last, when everything went (collect.c); a watcher forgets it itself */
    r = ag_collect_settle(&s->env, s->id, r, &why, &err);
  s->env.recorded = NULL;
  s->collected.not_removed = NULL;
  s->kept = r < 0;
  if (r < 0)
    ag_session_warn(s, "%s; the session stays registered and the next start or gc collects it", err->msg);
  s->env.deadline_usec = 0;
  /* Sessions nested in this one that its end killed (nesting.h): their registries go too, before the end returns,
   * when every create of theirs went through this session's proxy, which drained above (no create left unanswered). */
  if (r == 0)
    collect_dead(s, had_proxy && !unanswered ? s->id : NULL);
  ag_guardian_release(&s->guardian);
  return r;
}

void ag_session_guardian_exited(struct ag_session *s) {
  ca_close_keep_errno(s->guardian.fd);
  s->guardian.fd = -1;
}

void ag_session_free(struct ag_session *s) {
  if (!s)
    return;
  (void)ag_session_end(s); /* a no-op when the command ended it; its warnings are logged */
  ca_strv_free(s->labels);
  ag_nesting_done(&s->nest);
  free(s->proxy_host);
  free(s->left);
  ag_not_removed_done(&s->not_removed);
  ca_close_keep_errno(s->lock_fd);
  dk_client_free(s->env.dk);
  cg_root_free(s->env.cg);
  ag_state_free(s->env.state);
  for (size_t i = 0; i < s->n_warnings; i++)
    free(s->warnings[i]);
  pthread_mutex_destroy(&s->reg_mu);
  free(s);
}
