/* One test file: its container (created ahead by the creator, or here again after the engine came back), the start,
 * the wait with the timeout, the kill of a test that overran or is stopped, and the result with its reason. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "creates.h"
#include "seq-internal.h"

#define KILL_WAIT_USEC (30 * 1000000ULL) /* a killed container's wait must return within this */
#define OOM_POLLS 40                     /* re-inspections of a SIGKILLed test for the OOM flag ... */
#define OOM_POLL_MS 50                   /* ... this far apart: 2 s (0.5 s missed it once under a CI's load) */

/* The test's command: CMD with every {} replaced by the test file, or the test file added when there was none. */
static int test_command(const struct seq_opts *o, const char *test, char ***ret, ca_error **err) {
  size_t n = 0;
  bool substituted = false;
  while (o->cmd[n])
    n++;
  _cleanup_strv_free_ char **cmd = calloc(n + 2, sizeof(char *));
  if (!cmd)
    return ca_error_set(err, ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    ca_buf b = CA_BUF_INIT(1024 * 1024);
    const char *p = o->cmd[i], *q;
    while ((q = strstr(p, "{}"))) {
      (void)ca_buf_append(&b, p, (size_t)(q - p), NULL);
      (void)ca_buf_append(&b, test, strlen(test), NULL);
      p = q + 2;
      substituted = true;
    }
    if (ca_buf_append(&b, p, strlen(p), err) < 0) {
      ca_buf_free(&b);
      return -ENOMEM;
    }
    cmd[i] = ca_buf_steal(&b, NULL);
    if (!cmd[i])
      return ca_error_set(err, ENOMEM, "out of memory");
  }
  if (!substituted && !(cmd[n] = strdup(test)))
    return ca_error_set(err, ENOMEM, "out of memory");
  *ret = TAKE_PTR(cmd);
  return 0;
}

/* Named "ca-seq-<first 12 of the session>-<file index>[-<attempt>]": readable in docker ps, and unique, so that a
 * name conflict after a re-sent request can only be our own container. */
int container_spec_create(struct seq *s, struct dk_client *dk, size_t file, int attempt, char **ret_cid,
                          ca_error **err) {
  const struct seq_opts *o = s->o;
  const char *test = o->files[file];
  _cleanup_strv_free_ char **cmd = NULL;
  int r = test_command(o, test, &cmd, err);
  if (r < 0)
    return r;

  const char **env = calloc(o->n_env + 2, sizeof(char *));
  if (!env)
    return ca_error_set(err, ENOMEM, "out of memory");
  env[0] = s->session_env;
  memcpy(env + 1, o->env, o->n_env * sizeof(char *));
  char name[64];
  if (attempt == 0)
    snprintf(name, sizeof(name), "ca-seq-%.12s-%zu", s->id, file);
  else
    snprintf(name, sizeof(name), "ca-seq-%.12s-%zu-%d", s->id, file, attempt);
  struct dk_container_spec spec = {
      .image = o->image,
      .name = name,
      .cmd = (const char *const *)cmd,
      .env = env,
      .labels = (const char *const *)s->labels,
      .working_dir = o->workdir,
      .mounts = o->mounts,
      .n_mounts = o->n_mounts,
      .network_mode = o->network,
      .memory_bytes = (int64_t)o->memory,
      .cpus = o->cpus,
      .pids_limit = (int64_t)o->pids,
  };
  ag_creates_begin(); /* a guardian whose agent dies now watches for it (creates.h) */
  r = dk_container_create(dk, &spec, ret_cid, err);
  if (r == 0 || dk_error_kind(*err) != DK_ERR_TRANSIENT || dk_error_retryable(*err, false))
    ag_creates_end(); /* answered, or never sent (the engine refused the connection); a timeout may still create it */
  free(env);
  return r < 0 ? ca_error_wrap(err, "%s", test) : 0;
}

/* One test while it runs. */
struct test_run {
  struct seq *s;
  const char *name; /* the test file */
  const char *cid;
  struct dk_wait *w;
  struct test_output out;
  int code; /* the exit code; -1 until known */
  bool timed_out;
  uint64_t duration_usec;
};

static void set_message(struct seq_result *ret, const char *fmt, ...) _printf_(2, 3);
static void set_message(struct seq_result *ret, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&ret->message, fmt, ap) < 0)
    ret->message = NULL; /* out of memory: the FAIL line says "failed" */
  va_end(ap);
}

/* Starts the test's container. False when it did not start: *ret_status is then TEST_DONE with a FAIL in ret (the
 * container cannot start) or TEST_ENGINE (the engine is gone, err says how). */
static bool start_container(struct test_run *tr, struct seq_result *ret, enum test_status *ret_status, ca_error **err) {
  struct dk_client *dk = tr->s->env.dk;
  if (dk_container_start(dk, tr->cid, err) == 0)
    return true;
  /* A container that cannot start (no such command in the image, a bad mount) fails its test, unless the engine
   * itself is gone. A dropped connection says nothing about the container: the engine may even have started it
   * before the answer was lost, so the file runs again in a new one once the engine is back. */
  char *v = NULL, *os = NULL;
  if ((dk_error_kind(*err) == DK_ERR_TRANSIENT && (*err)->detail == 0) || dk_engine_version(dk, &v, &os, NULL) < 0) {
    *ret_status = TEST_ENGINE;
    return false;
  }
  free(v);
  free(os);
  ret->outcome = SEQ_FAIL;
  ret->reason = SEQ_REASON_EXIT;
  ret->exit_code = -1;
  ret->duration_usec = 0;
  set_message(ret, "cannot start: %s", (*err)->msg);
  ca_error_free(*err);
  *err = NULL;
  *ret_status = TEST_DONE;
  return false;
}

/* Waits for the test's exit, at most its timeout; a test that overran or is stopped is killed and reaped. */
static enum test_status wait_exit(struct test_run *tr, uint64_t t0, ca_error **err) {
  struct seq *s = tr->s;
  enum test_status status = TEST_DONE;
  s->cancel.deadline_usec = s->o->timeout_usec ? t0 + s->o->timeout_usec : 0;
  int r = dk_wait_end(tr->w, &s->cancel, &tr->code, err);
  if (r < 0 && (*err)->code == ETIMEDOUT && atomic_load(&s->stop) == STOP_NONE) {
    tr->timed_out = true;
    ca_error_free(TAKE_PTR(*err));
  } else if (r < 0 && (*err)->code == ECANCELED) {
    status = TEST_STOPPED;
    ca_error_free(TAKE_PTR(*err));
  } else if (r < 0) {
    status = dk_error_kind(*err) == DK_ERR_TRANSIENT ? TEST_ENGINE : TEST_FAILED;
  }
  tr->duration_usec = ca_now_monotonic_usec() - t0;
  ca_log_debug("%s: wait returned", tr->name);
  if (tr->timed_out || status == TEST_STOPPED) {
    _cleanup_error_ ca_error *e = NULL;
    if (dk_container_kill(s->env.dk, tr->cid, NULL, &e) < 0)
      ca_log_warning("%s: kill container %.12s: %s", tr->name, tr->cid, e->msg);
    struct dk_cancel bounded = {.deadline_usec = ca_now_monotonic_usec() + KILL_WAIT_USEC};
    ca_error_free(TAKE_PTR(e));
    if (dk_wait_end(tr->w, &bounded, &tr->code, &e) < 0)
      ca_log_warning("%s: wait for the killed container %.12s: %s", tr->name, tr->cid, e->msg);
  }
  return status;
}

/* Whether the kernel's OOM killer ended the test. Only a failure is worth an inspect. */
static bool oom_killed(struct test_run *tr) {
  _cleanup_(dk_container_info_freep) struct dk_container_info *info = NULL;
  _cleanup_error_ ca_error *e = NULL;
  for (int poll = 0;; poll++) {
    if (dk_container_inspect(tr->s->env.dk, tr->cid, &info, &e) < 0) {
      ca_log_warning("%s: inspect container %.12s: %s", tr->name, tr->cid, e->msg);
      return false;
    }
    if (info->oom_killed || saw_oom_event(tr->s, tr->cid))
      return true;
    /* The engine learns of the OOM kill from a separate event that can land just after the exit: for a SIGKILLed
     * test (137) the event stream and the state are asked again for a short while before it counts as a plain
     * exit. */
    if (tr->code != 128 + SIGKILL || poll >= OOM_POLLS)
      return false;
    dk_container_info_free(TAKE_PTR(info));
    struct timespec ts = {0, OOM_POLL_MS * 1000000L};
    nanosleep(&ts, NULL);
  }
}

static void record_result(struct test_run *tr, struct seq_result *ret) {
  const struct seq_opts *o = tr->s->o;
  ret->duration_usec = tr->duration_usec;
  ret->exit_code = tr->code;
  char buf[32];
  if (tr->timed_out) {
    ret->outcome = SEQ_FAIL;
    ret->reason = SEQ_REASON_TIMEOUT;
    set_message(ret, "timeout after %s", ca_format_duration(o->timeout_usec, buf));
  } else if (tr->code == 0) {
    ret->outcome = SEQ_PASS;
  } else {
    ret->outcome = SEQ_FAIL;
    ret->reason = oom_killed(tr) ? SEQ_REASON_OOM : SEQ_REASON_EXIT;
    if (ret->reason != SEQ_REASON_OOM)
      set_message(ret, "exit %d", tr->code);
    else if (o->memory)
      set_message(ret, "OOM-killed at %s", ca_format_size(o->memory, buf));
    else
      set_message(ret, "OOM-killed");
  }
  if (ret->outcome == SEQ_FAIL)
    ret->tail = test_output_tail(&tr->out);
}

/* With --self-protect, tells the monitor the test's main process, so that the test's own load is not taken for the
 * host's. Without it (the test already ended, the engine did not answer) the monitor judges the whole host. */
static void publish_own_pid(struct test_run *tr) {
  if (!tr->s->o->self_protect)
    return;
  _cleanup_(dk_container_info_freep) struct dk_container_info *info = NULL;
  if (dk_container_inspect(tr->s->env.dk, tr->cid, &info, NULL) == 0 && info->running && info->pid > 0)
    atomic_store(&tr->s->own_pid, info->pid);
}

/* The test from its start: its output followed, its exit waited for, its result recorded. */
static enum test_status run_started(struct test_run *tr, struct seq_result *ret, ca_error **err) {
  uint64_t t0 = ca_now_monotonic_usec();
  ca_log_debug("%s: started", tr->name);
  publish_own_pid(tr);
  test_output_follow(&tr->out);
  enum test_status status = wait_exit(tr, t0, err);
  atomic_store(&tr->s->own_pid, 0);
  test_output_finish(&tr->out, status == TEST_DONE);
  if (status == TEST_DONE)
    record_result(tr, ret);
  return status;
}

enum test_status run_test(struct seq *s, size_t file, const char *cid, struct seq_result *ret, ca_error **err) {
  struct test_run tr = {.s = s, .name = s->o->files[file], .cid = cid, .code = -1};
  _cleanup_(dk_wait_freep) struct dk_wait *w = NULL;
  if (dk_wait_begin(s->env.dk, cid, DK_WAIT_NEXT_EXIT, &w, err) < 0)
    return dk_error_kind(*err) == DK_ERR_TRANSIENT ? TEST_ENGINE : TEST_FAILED;
  tr.w = w;
  if (test_output_init(&tr.out, s, tr.name, cid, err) < 0)
    return TEST_FAILED;

  enum test_status status = TEST_STOPPED;
  /* The cancel is re-armed before the stop flag is read: a stop requested after the read cancels this wait. */
  atomic_store(&s->cancel.requested, false);
  s->cancel.deadline_usec = 0;
  if (atomic_load(&s->stop) == STOP_NONE) {
    ca_log_debug("%s: wait armed", tr.name);
    if (start_container(&tr, ret, &status, err))
      status = run_started(&tr, ret, err);
  }
  test_output_done(&tr.out);
  return status;
}
