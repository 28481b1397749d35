/* A growable byte buffer with a hard cap, for everything filled from outside (after curl's dynbuf). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

void ca_buf_init(ca_buf *b, size_t max) {
  *b = (ca_buf)CA_BUF_INIT(max);
}

static int buf_reserve(ca_buf *b, size_t extra, ca_error **err) {
  if (extra > b->max || b->len > b->max - extra)
    return ca_error_set(err, EMSGSIZE, "data exceeds the limit of %zu bytes", b->max);
  size_t need = b->len + extra + 1; /* room for the terminating NUL */
  if (need <= b->cap)
    return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need)
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  char *p = realloc(b->data, cap);
  if (!p)
    return ca_error_set(err, ENOMEM, "out of memory growing a buffer to %zu bytes", cap);
  b->data = p;
  b->cap = cap;
  return 0;
}

int ca_buf_append(ca_buf *b, const void *data, size_t len, ca_error **err) {
  int r = buf_reserve(b, len, err);
  if (r < 0)
    return r;
  if (len)
    memcpy(b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0';
  return 0;
}

int ca_buf_appendf(ca_buf *b, ca_error **err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    return ca_error_set(err, EINVAL, "cannot format text");
  int r = buf_reserve(b, (size_t)n, err);
  if (r < 0)
    return r;
  va_start(ap, fmt);
  (void)vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap); /* length checked above */
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

const char *ca_buf_str(const ca_buf *b) {
  return b->data ? b->data : "";
}

void ca_buf_reset(ca_buf *b) {
  b->len = 0;
  if (b->data)
    b->data[0] = '\0';
}

char *ca_buf_steal(ca_buf *b, size_t *ret_len) {
  char *p = b->data ? b->data : strdup("");
  if (ret_len)
    *ret_len = b->data ? b->len : 0;
  b->data = NULL;
  b->len = b->cap = 0;
  return p;
}

void ca_buf_free(ca_buf *b) {
  if (!b)
    return;
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}
