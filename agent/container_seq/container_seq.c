/* container-seq: each test file in its own limited, labeled container, one at a time, with a checkpoint, --resume
 * and self-protection of the host (issue 6; CLI and exit codes in DESIGN.md).
 *
 * Pipelining. Several threads talk to the engine, each through its own dk_client (a client is one curl handle and
 * is not thread-safe; dk_client_clone is cheap and does no I/O):
 *   - the main thread runs the tests strictly one after another: arm the wait, start, wait with the timeout, and
 *     inspect only when the exit code says something went wrong;
 *   - the creator creates the container of the next pending file while the current test runs;
 *   - the remover force-removes finished containers while the next test starts;
 *   - a logs thread per test follows that test's output while the main thread blocks in the wait;
 *   - the monitor takes SIGINT/SIGTERM/SIGHUP (sigtimedwait) and samples the host load, and cancels the wait when
 *     the run has to stop.
 * An ordered sequence of calls on one client cannot overlap a container create (~100 ms on vfs) or a removal
 * (~40 ms) with a running test, and for short test files those are most of the cost per file. Two tests never run
 * at once: only the main thread starts containers, and only after the previous test's wait has returned (the
 * container killed first when it timed out or the run is stopping).
 *
 * Every container carries the session labels, so the end of the session, the guardian (agent SIGKILLed) and the
 * next agent start (agent and guardian killed) all find it.
 *
 * This file is the command itself: the session around the run, the summary and the exit code. seq-internal.h says
 * which file holds each of the other parts. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "seq-internal.h"

#define DEFAULT_PROTECT_WINDOW_USEC (3 * 1000000ULL)
#define DEFAULT_ENGINE_RETRY_USEC (60 * 1000000ULL)

/* ---- session ----------------------------------------------------------------------------------------------- */

static int make_labels(struct seq *s, const struct ag_registry *reg) {
  s->labels = ag_session_labels(reg, NULL);
  return s->labels ? 0 : -ENOMEM;
}

static void seq_free(struct seq *s) {
  if (s->results)
    for (size_t i = 0; i < s->o->n_files; i++)
      seq_result_done(&s->results[i]);
  free(s->results);
  if (s->slots)
    for (size_t i = 0; i < s->n_order; i++) {
      free(s->slots[i].cid);
      ca_error_free(s->slots[i].err);
    }
  free(s->slots);
  free(s->order);
  for (size_t i = 0; i < s->rm_n; i++)
    free(s->rm_queue[i]);
  free(s->rm_queue);
  ca_strv_free(s->labels);
  free(s->checkpoint);
  dk_client_free(s->dk_create);
  dk_client_free(s->dk_remove);
  dk_client_free(s->dk_logs);
  dk_client_free(s->dk_events);
  for (size_t i = 0; i < s->oom_n; i++)
    free(s->oom_ids[i]);
  free(s->oom_ids);
  dk_client_free(s->env.dk);
  cg_root_free(s->env.cg);
  ag_state_free(s->env.state);
  ca_close_keep_errno(s->lock_fd);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->out_mu);
}

static uint64_t env_duration(const char *var, uint64_t dflt) {
  const char *v = getenv(var);
  uint64_t usec;
  if (!v || !*v)
    return dflt;
  _cleanup_error_ ca_error *err = NULL;
  if (ca_parse_duration(v, &usec, &err) < 0) {
    ca_log_warning("%s: %s; using the default", var, err->msg);
    return dflt;
  }
  return usec;
}

static const char *env_path(const char *var, const char *dflt) {
  const char *v = getenv(var);
  return v && *v ? v : dflt;
}

int ag_cmd_container_seq(const struct ag_globals *g, int argc, char **argv) {
  struct seq_opts o = {0};
  int r = parse_seq_opts(argc, argv, &o);
  if (r != 0) {
    opts_done(&o);
    return r < 0 ? AG_EXIT_OK : r;
  }
  /* A CI log should show each line as it comes, not in 4 KiB blocks. */
  setvbuf(stdout, NULL, _IOLBF, 0);

  struct seq s = {
      .o = &o,
      .lock_fd = -1,
      .guardian = {.fd = -1},
      .window_usec = env_duration("CLEANUP_AGENT_PROTECT_WINDOW", DEFAULT_PROTECT_WINDOW_USEC),
      .engine_retry_usec = env_duration("CLEANUP_AGENT_ENGINE_RETRY", DEFAULT_ENGINE_RETRY_USEC),
      .load = {.paths = {.proc_stat = env_path("CLEANUP_AGENT_PROC_STAT", "/proc/stat"),
                         .meminfo = env_path("CLEANUP_AGENT_MEMINFO", "/proc/meminfo"),
                         .psi_memory = env_path("CLEANUP_AGENT_PSI_MEMORY", "/proc/pressure/memory")}},
  };
  pthread_mutex_init(&s.mu, NULL);
  pthread_cond_init(&s.cv, NULL);
  pthread_mutex_init(&s.out_mu, NULL);
  _cleanup_error_ ca_error *err = NULL;
  _cleanup_error_ ca_error *cerr = NULL; /* here, before the first goto: clang refuses a jump over a cleanup variable */
  int exit_code = AG_EXIT_AGENT_FAILED;
  bool session = false, threads = false;
  pthread_t creator, remover;
  enum loop_end end = LOOP_FAILED;
  struct ag_collect_stats collected = {0};

  if (!(s.results = calloc(o.n_files, sizeof(*s.results))) || !(s.order = calloc(o.n_files, sizeof(size_t))) ||
      !(s.slots = calloc(o.n_files, sizeof(*s.slots)))) {
    ca_log_error("container-seq: out of memory");
    goto out;
  }
  if (ag_state_open(g->state_dir, &s.env.state, &err) < 0 || setup_checkpoint(&s, &err) < 0) {
    ca_log_error("container-seq: %s", err->msg);
    goto out;
  }
  if (o.log_dir && mkdir(o.log_dir, 0755) < 0 && errno != EEXIST) {
    ca_log_error("container-seq: --log-dir %s: %s", o.log_dir, strerror(errno));
    goto out;
  }
  for (size_t i = 0; i < o.n_files; i++)
    if (s.results[i].outcome == SEQ_PENDING)
      s.order[s.n_order++] = i;

  s.docker_host = g->docker_host ? g->docker_host : "unix:///var/run/docker.sock";
  struct dk_client_options dopts = {.host = s.docker_host};
  if (dk_client_new(&dopts, &s.env.dk, &err) < 0 || dk_client_clone(s.env.dk, &s.dk_create, &err) < 0 ||
      dk_client_clone(s.env.dk, &s.dk_remove, &err) < 0 || dk_client_clone(s.env.dk, &s.dk_logs, &err) < 0 ||
      dk_client_clone(s.env.dk, &s.dk_events, &err) < 0) {
    ca_log_error("container-seq: %s", err->msg);
    goto out;
  }

  /* Layer 4: what dead sessions of this host left. Their cgroups too, so the cgroup root is opened for this. */
  cg_root_options copts = {.root = g->cgroup_root, .allow_process = true};
  if (cg_root_open(&copts, &s.env.cg, &err) < 0) {
    ca_log_warning("not collecting dead sessions: %s", err->msg);
    ca_error_free(TAKE_PTR(err));
  } else {
    struct ag_collect_stats startup = {0};
    int n = ag_collect_dead_sessions(&s.env, &startup, &err);
    if (n > 0) {
      char what[256];
      ag_collect_stats_format(&startup, what, sizeof(what));
      ca_log_notice("collected %d dead session%s%s%s", n, n == 1 ? "" : "s", *what ? ": " : "", what);
    } else if (n < 0) {
      ca_log_warning("collect dead sessions: %s", err->msg);
      ca_error_free(TAKE_PTR(err));
    }
  }

  /* The session: lock, guardian, registry, then containers. */
  struct ag_registry reg = {.created = time(NULL), .command = o.cmd, .docker_host = (char *)s.docker_host};
  if (ag_session_id_new(s.id, &err) < 0 || ag_owner_self(&reg.owner, &err) < 0 ||
      ag_session_lock(s.env.state, s.id, true, &s.lock_fd, &err) < 0) {
    ca_log_error("container-seq: %s", err->msg);
    goto out;
  }
  memcpy(reg.id, s.id, sizeof(reg.id));
  strcpy(reg.mode, "container-seq");
  snprintf(s.session_env, sizeof(s.session_env), "CLEANUP_AGENT_SESSION=%s", s.id);
  struct ag_guardian_config gcfg = {
      .session_id = s.id,
      .state_dir = s.env.state->dir,
      .cgroup_root = g->cgroup_root,
      .docker_host = s.docker_host,
      .lock_fd = s.lock_fd,
  };
  if (make_labels(&s, &reg) < 0 || ag_guardian_start(&gcfg, &s.guardian, &err) < 0) {
    ca_log_error("container-seq: %s", err ? err->msg : "out of memory");
    (void)ag_registry_remove(s.env.state, s.id, NULL); /* nothing was created yet */
    goto out;
  }
  session = true;
  reg.guardian_pid = s.guardian.pid;
  if (ag_registry_write(s.env.state, &reg, &err) < 0) {
    ca_log_error("container-seq: %s", err->msg);
    goto out_session;
  }
  if (o.docker_proxy) {
    /* Before any container exists: each one gets the socket as the engine's. */
    if (ag_proxy_start_session(s.env.state, &reg, s.docker_host, NULL, &s.proxy, &err) < 0) {
      ca_log_error("container-seq: --docker-proxy: %s", err->msg);
      goto out_session;
    }
    o.mounts[o.n_mounts++] = (struct dk_mount){
        .type = DK_MOUNT_BIND, .source = ag_proxy_socket_path(s.proxy), .target = "/var/run/docker.sock"};
  }

  /* Signals go to the monitor thread only: blocked here, before any thread exists, so every thread inherits it. */
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGHUP);
  sigaddset(&mask, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &mask, NULL);
  if (o.self_protect) {
    _cleanup_error_ ca_error *e = NULL;
    if (seq_load_sample(&s.load, &e) < 0) {
      ca_log_error("container-seq: --self-protect: %s", e->msg);
      goto out_session;
    }
  }
  if (pthread_create(&s.events, NULL, events_main, &s) == 0)
    s.events_started = true;
  else
    ca_log_warning("cannot start a thread for engine events: OOM kills are told from the containers' state alone");
  if (pthread_create(&s.monitor, NULL, monitor_main, &s) != 0) {
    ca_log_error("container-seq: cannot start the monitor thread");
    goto out_session;
  }
  s.monitor_started = true;
  if (pthread_create(&creator, NULL, creator_main, &s) != 0) {
    ca_log_error("container-seq: cannot start the creator thread");
    goto out_session;
  }
  if (pthread_create(&remover, NULL, remover_main, &s) != 0) {
    ca_log_error("container-seq: cannot start the remover thread");
    pthread_mutex_lock(&s.mu);
    s.quit = true;
    pthread_cond_broadcast(&s.cv);
    pthread_mutex_unlock(&s.mu);
    pthread_join(creator, NULL);
    goto out_session;
  }
  threads = true;

  end = run_all(&s, &err);
  stop_workers(&s, creator, remover);
  threads = false;

out_session:
  if (threads)
    stop_workers(&s, creator, remover);
  if (s.monitor_started) {
    pthread_kill(s.monitor, SIGUSR1);
    pthread_join(s.monitor, NULL);
  }
  if (s.events_started) {
    dk_cancel_request(&s.events_cancel);
    pthread_join(s.events, NULL);
  }
  /* The proxy goes first, so that a create racing the end is either collected below or never made. */
  ag_proxy_stop(s.proxy, 2000000);
  s.proxy = NULL;
  /* Everything labeled with the session: the container made ahead, one whose removal failed, ... */
  bool collected_all = true;
  if (session && ag_collect_docker(s.env.dk, s.id, &collected, &cerr) < 0) {
    ca_log_warning("remove the session's containers: %s; the next cleanup-agent start or gc collects them", cerr->msg);
    collected_all = false;
  }
  if (collected.failed)
    collected_all = false;
  if (!session)
    goto out;

  size_t passed = 0, failed = 0, pending = 0;
  for (size_t i = 0; i < o.n_files; i++) {
    passed += s.results[i].outcome == SEQ_PASS;
    failed += s.results[i].outcome == SEQ_FAIL;
    pending += s.results[i].outcome == SEQ_PENDING;
  }
  if (end == LOOP_COMPLETE && s.checkpoint_default) {
    /* Nothing left to resume: a default checkpoint would only pile up in the state dir. */
    if (unlink(s.checkpoint) < 0 && errno != ENOENT)
      ca_log_warning("remove checkpoint %s: %s", s.checkpoint, strerror(errno));
  } else {
    _cleanup_error_ ca_error *e = NULL;
    if (save_checkpoint(&s, &e) < 0)
      ca_log_error("%s", e->msg);
  }
  if (o.junit) {
    _cleanup_error_ ca_error *e = NULL;
    if (seq_junit_write(o.junit, "container-seq", o.files, o.n_files, s.results, (uint64_t)reg.created, &e) < 0)
      ca_log_error("%s", e->msg);
  }
  /* The summary is the last line of stdout; what follows on stderr says why a run stopped early. */
  printf("%zu passed, %zu failed, %zu skipped\n", passed, failed, pending);
  fflush(stdout);

  size_t done = o.n_files - pending;
  int stop = atomic_load(&s.stop);
  if (end == LOOP_COMPLETE) {
    exit_code = failed ? AG_EXIT_FAILED : AG_EXIT_OK;
  } else if (stop == STOP_SIGNAL) {
    int sig = atomic_load(&s.stop_signal);
    ca_log_notice("stopped by SIG%s after %zu of %zu files; checkpoint saved in %s; resume with --resume",
                  sig_name(sig), done, o.n_files, s.checkpoint);
    exit_code = 128 + sig;
  } else if (stop == STOP_PROTECT) {
    ca_log_error("stopped to protect the host: %s; %zu of %zu files done; checkpoint saved in %s; resume with "
                 "--resume",
                 s.protect_msg, done, o.n_files, s.checkpoint);
    exit_code = AG_EXIT_SELF_PROTECT;
  } else if (end == LOOP_ENGINE_GONE) {
    char budget[32];
    ca_log_error("container-seq: the Docker engine at %s did not come back within %s (%s); %zu of %zu files done; "
                 "checkpoint saved in %s; resume with --resume",
                 s.docker_host, ca_format_duration(s.engine_retry_usec, budget), err ? err->msg : "unreachable", done,
                 o.n_files, s.checkpoint);
  } else {
    ca_log_error("container-seq: %s; %zu of %zu files done; checkpoint saved in %s", err ? err->msg : "failed", done,
                 o.n_files, s.checkpoint);
  }
  if (collected_all) {
    _cleanup_error_ ca_error *e = NULL;
    if (ag_registry_remove(s.env.state, s.id, &e) < 0)
      ca_log_warning("%s", e->msg);
  }
  ag_guardian_release(&s.guardian);
  goto out_free;

out:
  if (session)
    ag_guardian_release(&s.guardian);
out_free:
  seq_free(&s);
  opts_done(&o);
  return exit_code;
}
