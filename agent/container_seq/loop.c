/* The main thread's loop over the files: one test at a time, in order, each result printed and saved in the
 * checkpoint as soon as it is known; a file interrupted by the engine going away runs again once it is back. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "seq-internal.h"

int save_checkpoint(struct seq *s, ca_error **err) {
  _cleanup_free_ char *text = seq_checkpoint_format(s->o->files, s->o->n_files, s->results, s->id);
  if (!text)
    return ca_error_set(err, ENOMEM, "checkpoint: out of memory");
  return ca_write_file_atomic(s->checkpoint, text, strlen(text), 0600, err);
}

/* Resolves the checkpoint path and, with --resume, loads the results it holds. */
int setup_checkpoint(struct seq *s, ca_error **err) {
  const struct seq_opts *o = s->o;
  if (o->checkpoint) {
    if (!(s->checkpoint = strdup(o->checkpoint)))
      return ca_error_set(err, ENOMEM, "out of memory");
  } else {
    char hash[17], cwd[PATH_MAX];
    seq_files_hash(getcwd(cwd, sizeof(cwd)) ? cwd : "", o->files, o->n_files, hash);
    if (asprintf(&s->checkpoint, "%s/container-seq-%s.json", s->env.state->dir, hash) < 0)
      return ca_error_set(err, ENOMEM, "out of memory");
    s->checkpoint_default = true;
  }
  _cleanup_free_ char *text = NULL;
  size_t len;
  int r = ca_read_file(s->checkpoint, 256 * 1024 * 1024, &text, &len, err);
  if (r == -ENOENT) {
    ca_error_free(TAKE_PTR(*err));
    if (o->resume)
      ca_log_notice("--resume: no checkpoint at %s: running all %zu files", s->checkpoint, o->n_files);
    return 0;
  }
  if (r < 0)
    return ca_error_wrap(err, "checkpoint");
  _cleanup_error_ ca_error *e = NULL;
  r = seq_checkpoint_parse(text, len, o->files, o->n_files, s->results, &e);
  if (r == -ESTALE && o->resume)
    return ca_error_set(err, ESTALE, "--resume: refusing checkpoint %s: %s; remove it or pass the same files",
                        s->checkpoint, e->msg);
  if (r == -EINVAL || (r < 0 && r != -ESTALE))
    return ca_error_set(err, -r, "refusing to use or overwrite %s: %s", s->checkpoint, e->msg);
  if (!o->resume) {
    /* A fresh run replaces an earlier checkpoint of these or other files. */
    for (size_t i = 0; r == 0 && i < o->n_files; i++)
      seq_result_done(&s->results[i]);
    memset(s->results, 0, o->n_files * sizeof(*s->results));
    return 0;
  }
  size_t done = 0, passed = 0, failed = 0;
  for (size_t i = 0; i < o->n_files; i++) {
    done += s->results[i].outcome != SEQ_PENDING;
    passed += s->results[i].outcome == SEQ_PASS;
    failed += s->results[i].outcome == SEQ_FAIL;
  }
  ca_log_notice("resuming from %s: %zu of %zu files already done (%zu passed, %zu failed)", s->checkpoint, done,
                o->n_files, passed, failed);
  return 0;
}

/* Sleeps usec, in steps short enough to notice a stop of the run. */
static void pause_unless_stopped(struct seq *s, uint64_t usec) {
  uint64_t end = ca_now_monotonic_usec() + usec;
  while (atomic_load(&s->stop) == STOP_NONE) {
    uint64_t now = ca_now_monotonic_usec();
    if (now >= end)
      break;
    uint64_t step = CA_MIN(end - now, 100000);
    struct timespec ts = {(time_t)(step / 1000000), (long)(step % 1000000) * 1000L};
    nanosleep(&ts, NULL);
  }
}

/* After a transient failure while running one file: waits until the engine answers again. The budget
 * (engine_retry_usec) counts from the file's first failure, not per attempt: an engine that answers /version again
 * but still fails the next create or start (its containerd is not back yet) gets the same minute, with growing
 * pauses between attempts, rather than three quick tries. False when the budget is spent or the run was stopped. */
static bool engine_recover(struct seq *s, const char *why, int *attempt, uint64_t *give_up) {
  char budget[32];
  uint64_t now = ca_now_monotonic_usec();
  if (!*give_up) {
    *give_up = now + s->engine_retry_usec;
    ca_log_warning("the Docker engine went away (%s); retrying for up to %s", why,
                   ca_format_duration(s->engine_retry_usec, budget));
  } else {
    ca_log_warning("the Docker engine failed again (%s); retrying", why);
    uint64_t pause = CA_MIN(250000ULL << CA_MIN(*attempt, 5), 5000000ULL);
    pause_unless_stopped(s, CA_MIN(pause, *give_up > now ? *give_up - now : 0));
  }
  (*attempt)++;
  uint64_t delay_usec = 250000;
  for (;;) {
    if (atomic_load(&s->stop) != STOP_NONE || ca_now_monotonic_usec() >= *give_up)
      return false;
    char *v = NULL, *os = NULL;
    if (dk_engine_version(s->env.dk, &v, &os, NULL) == 0) {
      free(v);
      free(os);
      ca_log_notice("the Docker engine answers again");
      return true;
    }
    pause_unless_stopped(s, delay_usec);
    delay_usec = CA_MIN(delay_usec * 2, 5000000);
  }
}

/* Takes the container the creator made for position k (waiting for it), and lets it make the one after. */
static int take_container(struct seq *s, size_t k, char **ret_cid, ca_error **err) {
  pthread_mutex_lock(&s->mu);
  s->create_limit = k + 2;
  pthread_cond_broadcast(&s->cv);
  while (!s->slots[k].ready)
    pthread_cond_wait(&s->cv, &s->mu);
  *ret_cid = TAKE_PTR(s->slots[k].cid);
  ca_error *e = TAKE_PTR(s->slots[k].err);
  pthread_mutex_unlock(&s->mu);
  if (e) {
    ca_error_free(*err);
    *err = e;
    return -e->code;
  }
  return 0;
}

static void print_result(struct seq *s, size_t file) {
  const struct seq_result *r = &s->results[file];
  pthread_mutex_lock(&s->out_mu);
  if (r->outcome == SEQ_PASS)
    printf("PASS %s (%.1fs)\n", s->o->files[file], (double)r->duration_usec / 1e6);
  else
    printf("FAIL %s: %s\n", s->o->files[file], r->message ? r->message : "failed");
  fflush(stdout);
  pthread_mutex_unlock(&s->out_mu);
}

/* Runs the file at position k of the order until it has a result, in a new container each time the engine went away
 * under it (LOOP_COMPLETE then). */
static enum loop_end run_file(struct seq *s, size_t k, ca_error **err) {
  size_t file = s->order[k];
  _cleanup_free_ char *cid = NULL;
  int attempt = 0;
  uint64_t give_up = 0; /* set at the file's first transient failure */
  ca_log_debug("%s: taking its container", s->o->files[file]);
  int r = take_container(s, k, &cid, err);
  ca_log_debug("%s: got its container", s->o->files[file]);
  for (;;) {
    if (r == 0) {
      enum test_status st = run_test(s, file, cid, &s->results[file], err);
      queue_removal(s, TAKE_PTR(cid));
      if (st == TEST_DONE)
        return LOOP_COMPLETE;
      if (st == TEST_STOPPED)
        return LOOP_STOPPED;
      if (st == TEST_FAILED)
        return LOOP_FAILED;
      /* TEST_ENGINE: no result; once the engine is back the file runs again in a new container. */
    } else if (dk_error_kind(*err) != DK_ERR_TRANSIENT) {
      return LOOP_FAILED;
    }
    if (!engine_recover(s, (*err)->msg, &attempt, &give_up))
      return atomic_load(&s->stop) != STOP_NONE ? LOOP_STOPPED : LOOP_ENGINE_GONE;
    ca_error_free(TAKE_PTR(*err));
    r = container_spec_create(s, s->env.dk, file, attempt, &cid, err);
  }
}

enum loop_end run_all(struct seq *s, ca_error **err) {
  for (size_t k = 0; k < s->n_order; k++) {
    size_t file = s->order[k];
    /* Before each test: do not start one on a host that is over a threshold right now. Either it recovers or the
     * monitor stops the run once the window has passed. */
    while (s->o->self_protect && atomic_load(&s->over_now) && atomic_load(&s->stop) == STOP_NONE) {
      struct timespec ts = {0, 100 * 1000000L};
      nanosleep(&ts, NULL);
    }
    if (atomic_load(&s->stop) != STOP_NONE)
      return LOOP_STOPPED;
    enum loop_end end = run_file(s, k, err);
    if (end != LOOP_COMPLETE)
      return end;
    print_result(s, file);
    _cleanup_error_ ca_error *e = NULL;
    if (save_checkpoint(s, &e) < 0)
      ca_log_warning("%s", e->msg);
    ca_log_debug("%s: checkpoint saved", s->o->files[file]);
  }
  return LOOP_COMPLETE;
}
