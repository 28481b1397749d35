/* Errors with context: each layer prefixes what it was doing, the CLI prints one line (after crun's error.c). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* Message used when formatting itself fails: the error must still reach the user. */
static char oom_msg[] = "out of memory while formatting an error";

/* Formats a message; control characters (newlines, tabs, ESC, ...) that quoted input carried in become '?', so an
 * error stays one line and cannot drive the terminal (found by tests/fuzz/). */
static char *vformat(const char *fmt, va_list ap) {
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0)
    return NULL;
  for (char *p = s; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f)
      *p = '?';
  return s;
}

static void error_fill(ca_error **err, int code, char *msg) {
  if (!err) {
    free(msg);
    return;
  }
  ca_error_free(*err);
  *err = NULL;
  ca_error *e = calloc(1, sizeof(*e));
  if (!e) {
    free(msg);
    return;
  }
  e->code = code > 0 ? code : EIO;
  e->msg = msg ? msg : strdup(oom_msg);
  *err = e;
}

int ca_error_set(ca_error **err, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = vformat(fmt, ap);
  va_end(ap);
  error_fill(err, code, msg);
  return -(code > 0 ? code : EIO);
}

int ca_error_set_errno(ca_error **err, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  _cleanup_free_ char *head = vformat(fmt, ap);
  va_end(ap);
  char *msg = NULL;
  if (head && asprintf(&msg, "%s: %s", head, strerror(code)) < 0)
    msg = NULL;
  error_fill(err, code, msg);
  return -(code > 0 ? code : EIO);
}

int ca_error_wrap(ca_error **err, const char *fmt, ...) {
  if (!err || !*err)
    return -EINVAL;
  ca_error *e = *err;
  va_list ap;
  va_start(ap, fmt);
  _cleanup_free_ char *ctx = vformat(fmt, ap);
  va_end(ap);
  char *msg = NULL;
  if (ctx && asprintf(&msg, "%s: %s", ctx, e->msg ? e->msg : "") >= 0) {
    free(e->msg);
    e->msg = msg;
  }
  return -e->code;
}

void ca_error_free(ca_error *e) {
  if (!e)
    return;
  free(e->msg);
  free(e);
}
