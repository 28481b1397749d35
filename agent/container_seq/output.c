/* One test's output: stdout and stderr lines prefixed with the test file on our stdout (or the raw text in a
 * --log-dir file), and the last few KiB kept for the failure message of the JUnit report and the checkpoint. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "seq-internal.h"

#define LOGS_DRAIN_USEC (2 * 1000000ULL) /* after the wait returned, time for the log stream to end by itself */

static void emit_line(struct test_output *t, const char *data, size_t len) {
  pthread_mutex_lock(&t->s->out_mu);
  fprintf(stdout, "%s | %.*s\n", t->file, (int)len, data);
  pthread_mutex_unlock(&t->s->out_mu);
}

static void flush_partial(struct test_output *t) {
  for (size_t i = 0; i < 2; i++)
    if (t->lines[i].len) {
      emit_line(t, t->lines[i].data, t->lines[i].len);
      t->lines[i].len = 0;
    }
}

static void keep_tail(struct test_output *t, const char *data, size_t len) {
  if (len >= TAIL_BYTES) {
    ca_buf_reset(&t->tail);
    (void)ca_buf_append(&t->tail, data + len - TAIL_BYTES, TAIL_BYTES, NULL); /* within the cap */
    return;
  }
  if (t->tail.len + len > 2 * TAIL_BYTES) {
    size_t keep = TAIL_BYTES - len;
    memmove(t->tail.data, t->tail.data + t->tail.len - keep, keep);
    t->tail.len = keep;
    t->tail.data[keep] = '\0';
  }
  (void)ca_buf_append(&t->tail, data, len, NULL); /* within the cap */
}

static int on_output(void *userdata, enum dk_stream stream, const char *data, size_t len) {
  struct test_output *t = userdata;
  keep_tail(t, data, len);
  if (t->log) {
    if (fwrite(data, 1, len, t->log) != len)
      return 0; /* a full disk loses log text, not the test run */
    return 0;
  }
  /* stdout and stderr lines are assembled apart so that one never cuts into the other. */
  struct line_buf *lb = &t->lines[stream == DK_STDERR];
  for (size_t i = 0; i < len; i++) {
    if (data[i] == '\n') {
      emit_line(t, lb->data, lb->len);
      lb->len = 0;
      continue;
    }
    if (lb->len == sizeof(lb->data)) {
      emit_line(t, lb->data, lb->len);
      lb->len = 0;
    }
    lb->data[lb->len++] = data[i];
  }
  return 0;
}

static void *logs_main(void *arg) {
  struct test_output *t = arg;
  struct dk_logs_options lo = {.follow = true, .on_output = on_output, .userdata = t};
  (void)dk_container_logs(t->s->dk_logs, t->cid, &lo, &t->cancel, &t->err); /* t->err says why */
  if (!t->log)
    flush_partial(t);
  pthread_mutex_lock(&t->mu);
  t->done = true;
  pthread_cond_broadcast(&t->cv);
  pthread_mutex_unlock(&t->mu);
  return NULL;
}

char *test_output_tail(struct test_output *t) {
  if (t->tail.len == 0)
    return NULL;
  const char *p = t->tail.data;
  size_t len = t->tail.len;
  if (len > TAIL_BYTES) {
    p += len - TAIL_BYTES;
    len = TAIL_BYTES;
    const char *nl = memchr(p, '\n', len);
    if (nl && (size_t)(nl - p) + 1 < len) {
      len -= (size_t)(nl - p) + 1;
      p = nl + 1;
    }
  }
  return strndup(p, len);
}

/* Opens DIR/<file>.log of --log-dir, a '/' in the file's name made '_'. */
static int open_log(const struct seq_opts *o, const char *file, FILE **ret, ca_error **err) {
  _cleanup_free_ char *name = strdup(file), *path = NULL;
  if (!name)
    return ca_error_set(err, ENOMEM, "out of memory");
  for (char *p = name; *p; p++)
    if (*p == '/')
      *p = '_';
  if (asprintf(&path, "%s/%s.log", o->log_dir, name) < 0)
    return ca_error_set(err, ENOMEM, "out of memory");
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0)
    return ca_error_set_errno(err, errno, "--log-dir: %s", path);
  FILE *f = fdopen(fd, "w");
  if (!f) {
    int r = ca_error_set_errno(err, errno, "--log-dir: %s", path);
    close(fd);
    return r;
  }
  *ret = f;
  return 0;
}

int test_output_init(struct test_output *t, struct seq *s, const char *file, const char *cid, ca_error **err) {
  *t = (struct test_output){.s = s, .file = file, .cid = cid, .tail = CA_BUF_INIT(4 * TAIL_BYTES)};
  int r = s->o->log_dir ? open_log(s->o, file, &t->log, err) : 0;
  if (r < 0)
    return r;
  pthread_mutex_init(&t->mu, NULL);
  pthread_cond_init(&t->cv, NULL);
  return 0;
}

void test_output_follow(struct test_output *t) {
  if (pthread_create(&t->thread, NULL, logs_main, t) == 0)
    t->started = true;
  else
    ca_log_warning("%s: cannot start a thread for its output", t->file);
}

void test_output_finish(struct test_output *t, bool warn) {
  if (!t->started)
    return;
  /* The stream ends with the container; give it a moment to deliver the last frames, then cut it. */
  uint64_t until = ca_now_realtime_usec() + LOGS_DRAIN_USEC;
  struct timespec ts = {(time_t)(until / 1000000), (long)(until % 1000000) * 1000};
  pthread_mutex_lock(&t->mu);
  while (!t->done)
    if (pthread_cond_timedwait(&t->cv, &t->mu, &ts) != 0)
      break;
  pthread_mutex_unlock(&t->mu);
  dk_cancel_request(&t->cancel);
  pthread_join(t->thread, NULL);
  t->started = false;
  if (t->err && t->err->code != ECANCELED && warn)
    ca_log_warning("%s: output: %s", t->file, t->err->msg);
  ca_log_debug("%s: output %s", t->file, t->done ? "complete" : "cut after the drain time");
}

void test_output_done(struct test_output *t) {
  if (t->log)
    (void)fclose(t->log); /* log text is best effort */
  ca_error_free(t->err);
  ca_buf_free(&t->tail);
  pthread_mutex_destroy(&t->mu);
  pthread_cond_destroy(&t->cv);
}
