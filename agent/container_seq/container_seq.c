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
#include "lifecycle.h"
#include "seq-internal.h"

#define DEFAULT_PROTECT_WINDOW_USEC (3 * 1000000ULL)
#define DEFAULT_ENGINE_RETRY_USEC (60 * 1000000ULL)

/* ---- session ----------------------------------------------------------------------------------------------- */

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
  free(s->checkpoint);
  dk_client_free(s->dk_create);
  dk_client_free(s->dk_remove);
  dk_client_free(s->dk_logs);
  dk_client_free(s->dk_events);
  for (size_t i = 0; i < s->oom_n; i++)
    free(s->oom_ids[i]);
  free(s->oom_ids);
  ag_session_free(s->session);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->out_mu);
  cg_mounts_done(&s->mounts);
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

static void seq_init(struct seq *s, const struct seq_opts *o) {
  *s = (struct seq){
      .o = o,
      .window_usec = env_duration("CLEANUP_AGENT_PROTECT_WINDOW", DEFAULT_PROTECT_WINDOW_USEC),
      .engine_retry_usec = env_duration("CLEANUP_AGENT_ENGINE_RETRY", DEFAULT_ENGINE_RETRY_USEC),
      .load = {.paths = {.proc_stat = env_path("CLEANUP_AGENT_PROC_STAT", "/proc/stat"),
                         .meminfo = env_path("CLEANUP_AGENT_MEMINFO", "/proc/meminfo"),
                         .psi_memory = env_path("CLEANUP_AGENT_PSI_MEMORY", "/proc/pressure/memory")}},
  };
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  pthread_mutex_init(&s->out_mu, NULL);
}

/* What comes before the session begins, once its state dir and engine are open: the results, the checkpoint (a bad
 * one is refused before anything is collected or registered), --log-dir and the workers' engine clients. */
static int seq_prepare(struct seq *s, ca_error **err) {
  const struct seq_opts *o = s->o;
  s->env = s->session->env;
  s->docker_host = s->session->docker_host;
  if (!(s->results = calloc(o->n_files, sizeof(*s->results))) || !(s->order = calloc(o->n_files, sizeof(size_t))) ||
      !(s->slots = calloc(o->n_files, sizeof(*s->slots))))
    return ca_error_set(err, ENOMEM, "out of memory");
  int r = setup_checkpoint(s, err);
  if (r < 0)
    return r;
  if (o->log_dir && mkdir(o->log_dir, 0755) < 0 && errno != EEXIST)
    return ca_error_set_errno(err, errno, "--log-dir %s", o->log_dir);
  for (size_t i = 0; i < o->n_files; i++)
    if (s->results[i].outcome == SEQ_PENDING)
      s->order[s->n_order++] = i;
  if ((r = dk_client_clone(s->env.dk, &s->dk_create, err)) < 0 ||
      (r = dk_client_clone(s->env.dk, &s->dk_remove, err)) < 0 ||
      (r = dk_client_clone(s->env.dk, &s->dk_logs, err)) < 0 ||
      (r = dk_client_clone(s->env.dk, &s->dk_events, err)) < 0)
    return r;
  return 0;
}

/* Once the session began: its id in every container, the labels. */
static void seq_session_began(struct seq *s) {
  memcpy(s->id, s->session->id, sizeof(s->id));
  s->labels = s->session->labels;
  snprintf(s->session_env, sizeof(s->session_env), "CLEANUP_AGENT_SESSION=%s", s->id);
}

/* Signals go to the monitor thread only: blocked here, before any of our threads exists, so every thread inherits
 * it. Then the events, monitor, creator and remover threads. false when the run cannot go on (said why). */
static bool seq_start_threads(struct seq *s, pthread_t *creator, pthread_t *remover) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGHUP);
  sigaddset(&mask, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &mask, NULL);
  if (s->o->self_protect) {
    _cleanup_error_ ca_error *e = NULL;
    if (seq_load_sample(&s->load, NULL, &e) < 0) {
      ca_log_error("container-seq: --self-protect: %s", e->msg);
      return false;
    }
    if (cg_mounts_read(NULL, &s->mounts, &e) < 0)
      ca_log_warning("self-protect: %s: judging the whole host's load, this suite's tests included", e->msg);
  }
  if (pthread_create(&s->events, NULL, events_main, s) == 0)
    s->events_started = true;
  else
    ca_log_warning("cannot start a thread for engine events: OOM kills are told from the containers' state alone");
  if (pthread_create(&s->monitor, NULL, monitor_main, s) != 0) {
    ca_log_error("container-seq: cannot start the monitor thread");
    return false;
  }
  s->monitor_started = true;
  if (pthread_create(creator, NULL, creator_main, s) != 0) {
    ca_log_error("container-seq: cannot start the creator thread");
    return false;
  }
  if (pthread_create(remover, NULL, remover_main, s) != 0) {
    ca_log_error("container-seq: cannot start the remover thread");
    pthread_mutex_lock(&s->mu);
    s->quit = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(*creator, NULL);
    return false;
  }
  return true;
}

/* The tests one after another, then every thread stopped. */
static enum loop_end seq_run(struct seq *s, ca_error **err) {
  pthread_t creator, remover;
  enum loop_end end = LOOP_FAILED;
  if (seq_start_threads(s, &creator, &remover)) {
    end = run_all(s, err);
    stop_workers(s, creator, remover);
  }
  if (s->monitor_started) {
    pthread_kill(s->monitor, SIGUSR1);
    pthread_join(s->monitor, NULL);
  }
  if (s->events_started) {
    dk_cancel_request(&s->events_cancel);
    pthread_join(s->events, NULL);
  }
  return end;
}

/* What stderr says after the summary line, and the exit code. */
static int seq_exit_code(struct seq *s, enum loop_end end, const ca_error *err, size_t failed, size_t done) {
  const struct seq_opts *o = s->o;
  int stop = atomic_load(&s->stop);
  if (end == LOOP_COMPLETE)
    return failed ? AG_EXIT_FAILED : AG_EXIT_OK;
  if (stop == STOP_SIGNAL) {
    int sig = atomic_load(&s->stop_signal);
    ca_log_notice("stopped by SIG%s after %zu of %zu files; checkpoint saved in %s; resume with --resume",
                  sig_name(sig), done, o->n_files, s->checkpoint);
    return 128 + sig;
  }
  if (stop == STOP_PROTECT) {
    ca_log_error("stopped to protect the host: %s; %zu of %zu files done; checkpoint saved in %s; resume with "
                 "--resume",
                 s->protect_msg, done, o->n_files, s->checkpoint);
    return AG_EXIT_SELF_PROTECT;
  }
  if (end == LOOP_ENGINE_GONE) {
    char budget[32];
    ca_log_error("container-seq: the Docker engine at %s did not come back within %s (%s); %zu of %zu files done; "
                 "checkpoint saved in %s; resume with --resume",
                 s->docker_host, ca_format_duration(s->engine_retry_usec, budget), err ? err->msg : "unreachable", done,
                 o->n_files, s->checkpoint);
  } else {
    ca_log_error("container-seq: %s; %zu of %zu files done; checkpoint saved in %s", err ? err->msg : "failed", done,
                 o->n_files, s->checkpoint);
  }
  return AG_EXIT_AGENT_FAILED;
}

/* The results: the checkpoint (removed when a default one has nothing left to resume), the JUnit report and the
 * summary line; returns the exit code. */
static int seq_finish(struct seq *s, enum loop_end end, const ca_error *err) {
  const struct seq_opts *o = s->o;
  size_t passed = 0, failed = 0, pending = 0;
  for (size_t i = 0; i < o->n_files; i++) {
    passed += s->results[i].outcome == SEQ_PASS;
    failed += s->results[i].outcome == SEQ_FAIL;
    pending += s->results[i].outcome == SEQ_PENDING;
  }
  _cleanup_error_ ca_error *e = NULL;
  if (end == LOOP_COMPLETE && s->checkpoint_default) {
    /* Nothing left to resume: a default checkpoint would only pile up in the state dir. */
    if (unlink(s->checkpoint) < 0 && errno != ENOENT)
      ca_log_warning("remove checkpoint %s: %s", s->checkpoint, strerror(errno));
  } else if (save_checkpoint(s, &e) < 0) {
    ca_log_error("%s", e->msg);
    ca_error_free(TAKE_PTR(e));
  }
  if (o->junit && seq_junit_write(o->junit, "container-seq", o->files, o->n_files, s->results,
                                  (uint64_t)s->session->reg.created, &e) < 0)
    ca_log_error("%s", e->msg);
  /* The summary is the last line of stdout; what follows on stderr says why a run stopped early. */
  printf("%zu passed, %zu failed, %zu skipped\n", passed, failed, pending);
  fflush(stdout);
  return seq_exit_code(s, end, err, failed, o->n_files - pending);
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
  /* The tests run in the engine, so it is required; cgroups are not (the containers have the engine's). */
  const struct ag_session_config cfg = {
      .mode = "container-seq",
      .globals = g,
      .command = o.cmd,
      .engine_required = true,
      .proxy = o.docker_proxy ? AG_SESSION_PROXY_REQUIRED : AG_SESSION_NO_PROXY,
  };
  struct seq s;
  seq_init(&s, &o);
  _cleanup_error_ ca_error *err = NULL;
  int exit_code = AG_EXIT_AGENT_FAILED;
  enum loop_end end = LOOP_FAILED;
  if (ag_session_open(&cfg, &s.session, &err) < 0 || seq_prepare(&s, &err) < 0) {
    ca_log_error("container-seq: %s", err->msg);
    goto out;
  }
  if (ag_session_begin(s.session, &err) < 0 && !s.session->registered) {
    ca_log_error("container-seq: %s", err->msg);
    goto out;
  }
  seq_session_began(&s);
  if (!err) {
    /* Before any container exists: each one gets the proxy's socket as the engine's. */
    if (s.session->proxy)
      o.mounts[o.n_mounts++] = (struct dk_mount){
          .type = DK_MOUNT_BIND, .source = ag_proxy_socket_path(s.session->proxy), .target = "/var/run/docker.sock"};
    end = seq_run(&s, &err);
  }
  /* Everything labeled with the session: the container made ahead, one whose removal failed, ... */
  (void)ag_session_end(s.session); /* what it could not remove, it said; the next start or gc collects it */
  exit_code = seq_finish(&s, end, err);
out:
  seq_free(&s);
  opts_done(&o);
  return exit_code;
}
