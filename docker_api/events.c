/* The event stream: newline-delimited JSON over a chunked, never-ending response. Lines may span any number of
 * write callbacks; each complete line is parsed and handed to the caller. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker-internal.h"

struct events_ctx {
  const struct dk_events_options *o;
  ca_buf line;
  int cb_result; /* < 0 when on_event failed */
};

static int deliver(struct events_ctx *x, const char *line, size_t len, ca_error **err) {
  while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
    len--;
  if (len == 0)
    return 0;
  _cleanup_json_ cJSON *j = NULL;
  struct dk_event ev;
  int k = dk_parse_event(line, len, &j, &ev, err);
  if (k < 0)
    return k;
  k = x->o->on_event(x->o->userdata, &ev);
  dk_labels_clear(&ev.attributes);
  if (k < 0) {
    x->cb_result = k;
    return ca_error_set(err, -k, "event callback failed on %s %s", ev.type, ev.action);
  }
  return k > 0 ? 1 : 0;
}

static int events_on_body(struct dk_req *r, const char *data, size_t len) {
  struct events_ctx *x = r->stream_ctx;
  while (len > 0) {
    const char *nl = memchr(data, '\n', len);
    size_t take = nl ? (size_t)(nl - data) : len;
    int k;
    if (x->line.len == 0 && nl) {
      k = deliver(x, data, take, &r->cb_err); /* the common case: a whole line in this chunk */
    } else {
      if ((k = ca_buf_append(&x->line, data, take, &r->cb_err)) < 0)
        return k;
      k = 0;
      if (nl) {
        k = deliver(x, x->line.data, x->line.len, &r->cb_err);
        ca_buf_reset(&x->line);
      }
    }
    if (k != 0)
      return k;
    data += take + (nl ? 1 : 0);
    len -= take + (nl ? 1 : 0);
  }
  return 0;
}

int dk_events(struct dk_client *c, const struct dk_events_options *o, const struct dk_cancel *cancel, ca_error **err) {
  if (!o || !o->on_event)
    return ca_error_set(err, EINVAL, "events: no callback");
  _cleanup_free_ char *f = NULL, *path = NULL, *since = NULL;
  int k = dk_filters_encode(o->filters, &f, err);
  if (k < 0)
    return ca_error_wrap(err, "events");
  if (o->since_us > 0 && asprintf(&since, "since=%lld.%09lld", (long long)(o->since_us / 1000000),
                                  (long long)(o->since_us % 1000000) * 1000) < 0)
    return ca_error_set(err, ENOMEM, "out of memory");
  if (asprintf(&path, "/events%s%s%s%s%s", (f[0] || since) ? "?" : "", f[0] ? "filters=" : "", f,
               (f[0] && since) ? "&" : "", since ? since : "") < 0)
    return ca_error_set(err, ENOMEM, "out of memory");
  struct events_ctx x = {.o = o};
  ca_buf_init(&x.line, c->max_body);
  _cleanup_(dk_req_done) struct dk_req r;
  dk_req_init(&r, "GET", path, NULL, 0);
  r.on_body = events_on_body;
  r.stream_ctx = &x;
  k = dk_stream_perform(c, &r, cancel, err);
  ca_buf_free(&x.line);
  if (k < 0)
    return x.cb_result < 0 ? x.cb_result : k;
  if (!r.stopped)
    return ca_error_set(err, ECONNRESET, "GET /events: the engine closed the stream");
  return 0;
}
