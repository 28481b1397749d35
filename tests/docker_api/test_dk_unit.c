/* Unit tests of docker_api without an engine: filter encoding, label checks, log demultiplexing, parsing of
 * malformed and oddly typed answers, error classification. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "docker-internal.h"

/* Decodes %XX escapes (the inverse of dk_escape) so tests can compare the JSON that travels in the URL. */
static char *unescape(const char *s) {
  char *out = malloc(strlen(s) + 1), *o = out;
  for (; *s; s++) {
    if (*s == '%') {
      unsigned v;
      cr_assert_eq(sscanf(s + 1, "%2x", &v), 1);
      *o++ = (char)v;
      s += 2;
    } else {
      *o++ = *s;
    }
  }
  *o = '\0';
  return out;
}

/* ---- filters ----------------------------------------------------------------------------------------------- */

/* A lazy client initialises libcurl in its connecting thread while the agent's other threads run (client.c,
 * dk_global_init): libcurl allows that only when built thread-safe. */
Test(libcurl, the_linked_libcurl_initialises_thread_safely) {
  const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
  cr_assert(v->features & CURL_VERSION_THREADSAFE, "libcurl %s lacks CURL_VERSION_THREADSAFE", v->version);
  cr_assert_eq(dk_global_init(NULL), 0);
}

Test(filters, groups_repeated_keys_into_one_array) {
  const struct dk_filter f[] = {{"label", "a=1"}, {"status", "exited"}, {"label", "b"}, {"status", "dead"}, {0}};
  _cleanup_free_ char *enc = NULL;
  cr_assert_eq(dk_filters_encode(f, &enc, NULL), 0);
  _cleanup_free_ char *json = unescape(enc);
  cr_assert_str_eq(json, "{\"label\":[\"a=1\",\"b\"],\"status\":[\"exited\",\"dead\"]}");
}

Test(filters, escapes_quotes_equals_and_unicode) {
  const char *value = "k=va\"l=ue \xc3\xbc&?#%/+";
  const struct dk_filter f[] = {{"label", value}, {0}};
  _cleanup_free_ char *enc = NULL;
  cr_assert_eq(dk_filters_encode(f, &enc, NULL), 0);
  /* nothing that would end or split a query parameter survives unescaped */
  for (const char *p = enc; *p; p++)
    cr_assert(strchr("&?#=+ \"/", *p) == NULL, "unescaped '%c' in %s", *p, enc);
  _cleanup_free_ char *json = unescape(enc);
  _cleanup_json_ cJSON *j = cJSON_Parse(json);
  cr_assert_not_null(j, "not JSON: %s", json);
  cJSON *arr = cJSON_GetObjectItem(j, "label");
  cr_assert_str_eq(cJSON_GetArrayItem(arr, 0)->valuestring, value);
}

Test(filters, none_encodes_as_empty) {
  _cleanup_free_ char *enc = NULL;
  cr_assert_eq(dk_filters_encode(NULL, &enc, NULL), 0);
  cr_assert_str_eq(enc, "");
}

Test(filters, rejects_empty_key) {
  const struct dk_filter f[] = {{"", "x"}, {0}};
  _cleanup_free_ char *enc = NULL;
  _cleanup_error_ ca_error *e = NULL;
  cr_assert_lt(dk_filters_encode(f, &enc, &e), 0);
  cr_assert_null(enc);
}

/* ---- labels ------------------------------------------------------------------------------------------------ */

Test(labels, accepts_ordinary_and_unicode_values) {
  cr_assert_eq(dk_label_validate("io.cleanup-agent.session=0123456789abcdef0123456789abcdef", NULL), 0);
  cr_assert_eq(dk_label_validate("k=", NULL), 0);
  cr_assert_eq(dk_label_validate("k=a=b \"quoted\"", NULL), 0);
  cr_assert_eq(dk_label_validate("k=gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x90\xb3", NULL), 0);
}

Test(labels, rejects_malformed) {
  static const char *const bad[] = {
      "novalue",            /* no '=' */
      "=v",                 /* empty key */
      "k ey=v",             /* space in key */
      "k\xc3\xbc=v",        /* non-ASCII key */
      "k=line\nbreak",      /* control character */
      "k=\xc3",             /* truncated UTF-8 */
      "k=\xc0\xaf",         /* overlong */
      "k=\xed\xa0\x80",     /* surrogate */
      "k=\xf5\x80\x80\x80", /* beyond U+10FFFF */
  };
  for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
    _cleanup_error_ ca_error *e = NULL;
    cr_assert_eq(dk_label_validate(bad[i], &e), -EINVAL, "accepted bad label #%zu", i);
    cr_assert_not_null(e);
    cr_assert(strstr(e->msg, "label"), "message: %s", e->msg);
  }
}

Test(labels, rejects_oversized) {
  char key[300], kv[5000];
  memset(key, 'k', sizeof(key) - 1);
  key[sizeof(key) - 1] = '\0';
  snprintf(kv, sizeof(kv), "%s=v", key);
  cr_assert_lt(dk_label_validate(kv, NULL), 0);
  memset(kv, 'v', sizeof(kv) - 1);
  kv[0] = 'k';
  kv[1] = '=';
  kv[sizeof(kv) - 1] = '\0';
  cr_assert_lt(dk_label_validate(kv, NULL), 0);
}

/* ---- demux ------------------------------------------------------------------------------------------------- */

struct collected {
  ca_buf out, err;
  int calls;
};

static int collect(void *ud, enum dk_stream s, const char *data, size_t len) {
  struct collected *c = ud;
  c->calls++;
  cr_assert_gt(len, 0, "empty callback");
  cr_assert_eq(ca_buf_append(s == DK_STDOUT ? &c->out : &c->err, data, len, NULL), 0);
  return 0;
}

static size_t frame(unsigned char *buf, int stream, const char *payload, size_t len) {
  buf[0] = (unsigned char)stream;
  buf[1] = buf[2] = buf[3] = 0;
  buf[4] = (unsigned char)(len >> 24);
  buf[5] = (unsigned char)(len >> 16);
  buf[6] = (unsigned char)(len >> 8);
  buf[7] = (unsigned char)len;
  memcpy(buf + 8, payload, len);
  return 8 + len;
}

/* A stream of frames of both kinds with payloads of assorted sizes, and what each side should receive. */
static size_t make_stream(unsigned char *buf, ca_buf *want_out, ca_buf *want_err) {
  size_t n = 0;
  char payload[70000];
  for (int i = 0; i < 40; i++) {
    size_t len = (size_t)(i * 1777) % 70000 + (i % 3 == 0 ? 0 : 1);
    for (size_t k = 0; k < len; k++)
      payload[k] = (char)('a' + (i + k) % 26);
    int stream = i % 2 ? DK_STDERR : DK_STDOUT;
    if (len == 0)
      continue; /* zero-length frames carry nothing */
    n += frame(buf + n, stream, payload, len);
    cr_assert_eq(ca_buf_append(stream == DK_STDOUT ? want_out : want_err, payload, len, NULL), 0);
  }
  return n;
}

static void check_demux_in_chunks(unsigned seed, bool one_byte) {
  static unsigned char stream[40 * 70010];
  ca_buf want_out = CA_BUF_INIT(1 << 24), want_err = CA_BUF_INIT(1 << 24);
  size_t n = make_stream(stream, &want_out, &want_err);
  struct collected c = {.out = CA_BUF_INIT(1 << 24), .err = CA_BUF_INIT(1 << 24)};
  struct dk_demux d;
  dk_demux_init(&d, collect, &c);
  srand(seed);
  for (size_t off = 0; off < n;) {
    size_t chunk = one_byte ? 1 : (size_t)(rand() % 20000) + 1;
    chunk = CA_MIN(chunk, n - off);
    cr_assert_eq(dk_demux_feed(&d, (const char *)stream + off, chunk, NULL), 0, "at offset %zu", off);
    off += chunk;
  }
  cr_assert_eq(dk_demux_finish(&d, NULL), 0);
  cr_assert_eq(c.out.len, want_out.len);
  cr_assert_eq(c.err.len, want_err.len);
  cr_assert(memcmp(c.out.data, want_out.data, want_out.len) == 0, "stdout differs");
  cr_assert(memcmp(c.err.data, want_err.data, want_err.len) == 0, "stderr differs");
  dk_demux_done(&d);
  ca_buf_free(&c.out);
  ca_buf_free(&c.err);
  ca_buf_free(&want_out);
  ca_buf_free(&want_err);
}

Test(demux, one_byte_at_a_time) {
  check_demux_in_chunks(1, true);
}

Test(demux, random_chunk_sizes) {
  for (unsigned seed = 1; seed <= 20; seed++)
    check_demux_in_chunks(seed, false);
}

Test(demux, system_error_frame_is_an_error_with_its_message) {
  unsigned char buf[256];
  size_t n = frame(buf, DK_STDOUT, "hello\n", 6);
  n += frame(buf + n, 3, "error from daemon in stream: file not found", 43);
  struct collected c = {.out = CA_BUF_INIT(1024), .err = CA_BUF_INIT(1024)};
  struct dk_demux d;
  dk_demux_init(&d, collect, &c);
  _cleanup_error_ ca_error *e = NULL;
  int k = 0;
  for (size_t i = 0; i < n && k == 0; i++) /* split inside the error frame too */
    k = dk_demux_feed(&d, (const char *)buf + i, 1, &e);
  cr_assert_lt(k, 0);
  cr_assert(strstr(e->msg, "file not found"), "message: %s", e->msg);
  cr_assert_str_eq(ca_buf_str(&c.out), "hello\n");
  dk_demux_done(&d);
  ca_buf_free(&c.out);
  ca_buf_free(&c.err);
}

Test(demux, tty_stream_is_rejected_not_misread) {
  struct dk_demux d;
  struct collected c = {.out = CA_BUF_INIT(1024), .err = CA_BUF_INIT(1024)};
  dk_demux_init(&d, collect, &c);
  _cleanup_error_ ca_error *e = NULL;
  cr_assert_eq(dk_demux_feed(&d, "plain text output\n", 18, &e), -EBADMSG);
  cr_assert(strstr(e->msg, "TTY"), "message: %s", e->msg);
  cr_assert_eq(c.calls, 0);
  dk_demux_done(&d);
}

Test(demux, stream_ending_inside_a_frame_is_an_error) {
  unsigned char buf[64];
  size_t n = frame(buf, DK_STDERR, "0123456789", 10);
  struct dk_demux d;
  struct collected c = {.out = CA_BUF_INIT(1024), .err = CA_BUF_INIT(1024)};
  dk_demux_init(&d, collect, &c);
  cr_assert_eq(dk_demux_feed(&d, (const char *)buf, n - 3, NULL), 0);
  _cleanup_error_ ca_error *e = NULL;
  cr_assert_eq(dk_demux_finish(&d, &e), -EBADMSG);
  cr_assert(strstr(e->msg, "3 bytes missing"), "message: %s", e->msg);
  dk_demux_done(&d);
  ca_buf_free(&c.err);
}

static int stop_after_first(void *ud, enum dk_stream s, const char *data, size_t len) {
  (void)s, (void)data, (void)len;
  (*(int *)ud)++;
  return 1;
}

Test(demux, callback_can_stop) {
  unsigned char buf[64];
  size_t n = frame(buf, DK_STDOUT, "a", 1);
  n += frame(buf + n, DK_STDOUT, "b", 1);
  int calls = 0;
  struct dk_demux d;
  dk_demux_init(&d, stop_after_first, &calls);
  cr_assert_eq(dk_demux_feed(&d, (const char *)buf, n, NULL), 0);
  cr_assert(d.stopped);
  cr_assert_eq(calls, 1);
  dk_demux_done(&d);
}

/* ---- JSON parsing ------------------------------------------------------------------------------------------ */

static const char container_list[] =
    "[{\"Id\":\"abc\",\"Names\":[\"/one\",\"/two\"],\"Image\":\"busybox\",\"State\":\"exited\",\"Created\":1700000000,"
    "\"Labels\":{\"io.cleanup-agent.session\":\"s1\",\"x\":\"\"},\"Unknown\":{\"deep\":[1,2]}},"
    "{\"Id\":\"def\",\"Names\":null,\"Labels\":null,\"State\":\"dead\"}]";

Test(parse, container_list) {
  _cleanup_(dk_list_freep) struct dk_list *l = NULL;
  cr_assert_eq(dk_parse_list(DK_CONTAINER, container_list, strlen(container_list), &l, NULL), 0);
  cr_assert_eq(l->n, 2);
  cr_assert_str_eq(l->items[0].id, "abc");
  cr_assert_str_eq(l->items[0].names[0], "one");
  cr_assert_str_eq(l->items[0].names[1], "two");
  cr_assert_null(l->items[0].names[2]);
  cr_assert_str_eq(l->items[0].image, "busybox");
  cr_assert_str_eq(l->items[0].state, "exited");
  cr_assert_eq(l->items[0].created_us, INT64_C(1700000000) * 1000000);
  cr_assert_str_eq(dk_item_label(&l->items[0], "io.cleanup-agent.session"), "s1");
  cr_assert_str_eq(dk_item_label(&l->items[0], "x"), "");
  cr_assert_null(dk_item_label(&l->items[0], "missing"));
  cr_assert_null(l->items[1].names[0]);
  cr_assert_eq(l->items[1].labels.n, 0);
  cr_assert_str_eq(l->items[1].state, "dead");
}

Test(parse, network_and_volume_lists) {
  const char *nets =
      "[{\"Name\":\"n1\",\"Id\":\"nid\",\"Created\":\"2024-05-07T21:09:36.5Z\",\"Labels\":{\"a\":\"b\"}}]";
  _cleanup_(dk_list_freep) struct dk_list *l = NULL;
  cr_assert_eq(dk_parse_list(DK_NETWORK, nets, strlen(nets), &l, NULL), 0);
  cr_assert_str_eq(l->items[0].id, "nid");
  cr_assert_str_eq(l->items[0].names[0], "n1");
  cr_assert_eq(l->items[0].created_us, INT64_C(1715116176) * 1000000 + 500000);
  const char *vols = "{\"Volumes\":[{\"Name\":\"v1\",\"CreatedAt\":\"2024-05-07T23:09:36+02:00\",\"Labels\":{}}],"
                     "\"Warnings\":null}";
  _cleanup_(dk_list_freep) struct dk_list *v = NULL;
  cr_assert_eq(dk_parse_list(DK_VOLUME, vols, strlen(vols), &v, NULL), 0);
  cr_assert_str_eq(v->items[0].id, "v1");
  cr_assert_eq(v->items[0].created_us, INT64_C(1715116176) * 1000000);
  const char *none = "{\"Volumes\":null}";
  _cleanup_(dk_list_freep) struct dk_list *e = NULL;
  cr_assert_eq(dk_parse_list(DK_VOLUME, none, strlen(none), &e, NULL), 0);
  cr_assert_eq(e->n, 0);
}

Test(parse, malformed_and_oddly_typed_answers_are_errors) {
  static const char *const bad[] = {
      "",
      "[",
      "[{\"Id\":\"a\"}",
      "{\"Id\":\"a\"}",                             /* object where an array is expected */
      "[1]",                                        /* item not an object */
      "[{}]",                                       /* no Id */
      "[{\"Id\":5}]",                               /* Id not a string */
      "[{\"Id\":\"a\",\"Names\":\"/x\"}]",          /* Names not an array */
      "[{\"Id\":\"a\",\"Names\":[\"/x\",7]}]",      /* a name not a string */
      "[{\"Id\":\"a\",\"Labels\":[\"k=v\"]}]",      /* Labels not an object */
      "[{\"Id\":\"a\",\"Labels\":{\"k\":1}}]",      /* label value not a string */
      "[{\"Id\":\"a\",\"Created\":\"yesterday\"}]", /* Created not a number */
      "[{\"Id\":\"a\",\"Created\":1.5}]",           /* not an integer */
      "[{\"Id\":\"a\",\"Created\":-1}]",            /* negative */
      "[{\"Id\":\"a\",\"Created\":1e300}]",         /* absurd */
      "[{\"Id\":\"a\",\"State\":true}]",            /* State not a string */
      "[{\"Id\":\"a\"}] trailing",                  /* garbage after the value */
  };
  for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
    struct dk_list *l = NULL;
    _cleanup_error_ ca_error *e = NULL;
    int k = dk_parse_list(DK_CONTAINER, bad[i], strlen(bad[i]), &l, &e);
    cr_assert_lt(k, 0, "accepted #%zu: %s", i, bad[i]);
    cr_assert_null(l);
    cr_assert_not_null(e);
    cr_assert_eq(e->code, EBADMSG, "#%zu: %s", i, e->msg);
  }
}

Test(parse, deep_nesting_is_refused_without_crashing) {
  size_t depth = 100000;
  char *s = malloc(depth * 2 + 1);
  memset(s, '[', depth);
  memset(s + depth, ']', depth);
  s[depth * 2] = '\0';
  struct dk_list *l = NULL;
  _cleanup_error_ ca_error *e = NULL;
  cr_assert_lt(dk_parse_list(DK_CONTAINER, s, depth * 2, &l, &e), 0);
  free(s);
}

Test(parse, embedded_nul_is_not_read_past) {
  const char text[] = "[{\"Id\":\"a\"}]\0[{\"Id\":\"b\"}]";
  struct dk_list *l = NULL;
  cr_assert_lt(dk_parse_list(DK_CONTAINER, text, sizeof(text) - 1, &l, NULL), 0);
}

static const char inspect_json[] =
    "{\"Id\":\"cid\",\"Name\":\"/web\",\"Image\":\"sha256:123\",\"Created\":\"2024-05-07T21:09:36.123456789Z\","
    "\"State\":{\"Status\":\"exited\",\"Running\":false,\"OOMKilled\":true,\"ExitCode\":137,\"Pid\":0,\"Error\":\"\","
    "\"StartedAt\":\"2024-05-07T21:09:37Z\",\"FinishedAt\":\"2024-05-07T21:09:38.000001Z\"},"
    "\"Config\":{\"Image\":\"busybox\",\"Labels\":{\"k\":\"v\"}}}";

Test(parse, container_inspect) {
  _cleanup_(dk_container_info_freep) struct dk_container_info *i = NULL;
  cr_assert_eq(dk_parse_container_info(inspect_json, strlen(inspect_json), &i, NULL), 0);
  cr_assert_str_eq(i->id, "cid");
  cr_assert_str_eq(i->name, "web");
  cr_assert_str_eq(i->image, "busybox");
  cr_assert_str_eq(i->image_id, "sha256:123");
  cr_assert_str_eq(i->status, "exited");
  cr_assert(i->oom_killed);
  cr_assert_not(i->running);
  cr_assert_eq(i->exit_code, 137);
  cr_assert_null(i->error);
  cr_assert_eq(i->created_us, INT64_C(1715116176) * 1000000 + 123456);
  cr_assert_eq(i->started_us, INT64_C(1715116177) * 1000000);
  cr_assert_eq(i->finished_us, INT64_C(1715116178) * 1000000 + 1);
  cr_assert_str_eq(dk_labels_get(&i->labels, "k"), "v");
}

Test(parse, container_inspect_oddities) {
  static const char *const bad[] = {
      "{\"Id\":\"a\"}",                                                    /* no State */
      "{\"Id\":\"a\",\"State\":[]}",                                       /* State not an object */
      "{\"Id\":\"a\",\"State\":{\"OOMKilled\":\"yes\"}}",                  /* bool as string */
      "{\"Id\":\"a\",\"State\":{\"ExitCode\":4294967296}}",                /* out of int range */
      "{\"Id\":\"a\",\"State\":{\"StartedAt\":\"2024-13-01T00:00:00Z\"}}", /* month 13 */
      "{\"Id\":\"a\",\"State\":{},\"Config\":{\"Labels\":{\"k\":null}}}",  /* null label value */
      "[]",
  };
  for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
    struct dk_container_info *info = NULL;
    _cleanup_error_ ca_error *e = NULL;
    cr_assert_lt(dk_parse_container_info(bad[i], strlen(bad[i]), &info, &e), 0, "accepted #%zu", i);
    cr_assert_null(info);
  }
  /* Go's zero time means "never", and null optional fields are absent */
  const char *ok = "{\"Id\":\"a\",\"Name\":null,\"State\":{\"StartedAt\":\"0001-01-01T00:00:00Z\",\"Error\":null},"
                   "\"Config\":null}";
  _cleanup_(dk_container_info_freep) struct dk_container_info *i = NULL;
  cr_assert_eq(dk_parse_container_info(ok, strlen(ok), &i, NULL), 0);
  cr_assert_eq(i->started_us, 0);
  cr_assert_null(i->name);
}

Test(parse, times) {
  int64_t us = -1;
  cr_assert_eq(dk_parse_time("1970-01-01T00:00:01Z", &us, NULL), 0);
  cr_assert_eq(us, 1000000);
  cr_assert_eq(dk_parse_time("1970-01-01T01:00:00+01:00", &us, NULL), 0);
  cr_assert_eq(us, 0);
  cr_assert_eq(dk_parse_time("1970-01-01T00:00:00.999999999-00:30", &us, NULL), 0);
  cr_assert_eq(us, 1800 * INT64_C(1000000) + 999999);
  static const char *const bad[] = {"",
                                    "2024-05-07",
                                    "2024-05-07T21:09:36",
                                    "2024-05-07T21:09:36.Z",
                                    "2024-05-07T21:09:36Zjunk",
                                    "2024-05-07 21:09:36Z",
                                    "2024-05-07T25:00:00Z"};
  for (size_t i = 0; i < ELEMENTSOF(bad); i++)
    cr_assert_lt(dk_parse_time(bad[i], &us, NULL), 0, "accepted %s", bad[i]);
}

Test(parse, events) {
  const char *line =
      "{\"status\":\"die\",\"id\":\"c1\",\"Type\":\"container\",\"Action\":\"die\",\"Actor\":{\"ID\":\"c1\","
      "\"Attributes\":{\"exitCode\":\"3\",\"name\":\"x\"}},\"scope\":\"local\",\"time\":1,"
      "\"timeNano\":1700000000123456789}";
  _cleanup_json_ cJSON *j = NULL;
  struct dk_event ev;
  cr_assert_eq(dk_parse_event(line, strlen(line), &j, &ev, NULL), 0);
  cr_assert_str_eq(ev.type, "container");
  cr_assert_str_eq(ev.action, "die");
  cr_assert_str_eq(ev.id, "c1");
  cr_assert_str_eq(dk_labels_get(&ev.attributes, "exitCode"), "3");
  cr_assert_gt(ev.time_ns, INT64_C(1700000000) * 1000000000);
  dk_labels_clear(&ev.attributes);

  static const char *const bad[] = {"{}", "[]", "{\"Action\":3}", "{\"Action\":\"x\",\"Actor\":\"c1\"}",
                                    "{\"Action\":\"x\",\"Actor\":{\"Attributes\":{\"a\":[]}}}"};
  for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
    cJSON *jj = NULL;
    struct dk_event e2;
    cr_assert_lt(dk_parse_event(bad[i], strlen(bad[i]), &jj, &e2, NULL), 0, "accepted %s", bad[i]);
    cr_assert_null(jj);
  }
}

Test(parse, wait_result) {
  int code = -1;
  const char *ok = "{\"StatusCode\":3,\"Error\":null}";
  cr_assert_eq(dk_parse_wait_result(ok, strlen(ok), &code, NULL), 0);
  cr_assert_eq(code, 3);
  const char *failed = "{\"StatusCode\":-1,\"Error\":{\"Message\":\"container gone\"}}";
  _cleanup_error_ ca_error *e = NULL;
  cr_assert_lt(dk_parse_wait_result(failed, strlen(failed), &code, &e), 0);
  cr_assert(strstr(e->msg, "container gone"), "message: %s", e->msg);
  const char *nocode = "{\"Error\":null}";
  cr_assert_lt(dk_parse_wait_result(nocode, strlen(nocode), &code, NULL), 0);
}

/* ---- errors ------------------------------------------------------------------------------------------------ */

static enum dk_error_kind classify(long status, const char *body, bool has_api_version, int *ret_code) {
  ca_error *e = NULL;
  dk_http_error(&e, "DELETE", "/containers/x?force=1", status, body, body ? strlen(body) : 0, has_api_version);
  enum dk_error_kind k = dk_error_kind(e);
  cr_assert_eq(e->detail, status);
  cr_assert_null(strstr(e->msg, "force=1"), "query string in message: %s", e->msg);
  *ret_code = e->code;
  ca_error_free(e);
  return k;
}

Test(errors, classification_by_status_and_message) {
  int code;
  cr_assert_eq(classify(404, "{\"message\":\"No such container: x\"}", true, &code), DK_ERR_NOT_FOUND);
  cr_assert_eq(classify(404, "{\"message\":\"page not found\"}", false, &code), DK_ERR_FINAL);
  cr_assert_eq(code, ENOSYS);
  cr_assert_eq(classify(409, "{\"message\":\"removal of container x is already in progress\"}", true, &code),
               DK_ERR_IN_PROGRESS);
  cr_assert_eq(classify(409, "{\"message\":\"a prune operation is already running\"}", true, &code),
               DK_ERR_IN_PROGRESS);
  cr_assert_eq(classify(409, "{\"message\":\"Container x is not running\"}", true, &code), DK_ERR_NOT_RUNNING);
  cr_assert_eq(
      classify(409, "{\"message\":\"Conflict. The container name \\\"/a\\\" is already in use\"}", true, &code),
      DK_ERR_CONFLICT);
  cr_assert_eq(code, EEXIST);
  cr_assert_eq(classify(409, "{\"message\":\"remove v: volume is in use\"}", true, &code), DK_ERR_CONFLICT);
  cr_assert_eq(classify(500, "{\"message\":\"driver failed\"}", true, &code), DK_ERR_TRANSIENT);
  cr_assert_eq(classify(500, "not json at all", true, &code), DK_ERR_TRANSIENT);
  cr_assert_eq(classify(400, "{\"message\":\"bad\"}", true, &code), DK_ERR_FINAL);
  cr_assert_eq(classify(403, NULL, true, &code), DK_ERR_FINAL);
}

Test(errors, message_carries_method_status_and_daemon_text) {
  _cleanup_error_ ca_error *e = NULL;
  const char *body = "{\"message\":\"driver \\\"vfs\\\" failed\\nto remove\"}";
  dk_http_error(&e, "DELETE", "/containers/abc?force=1", 500, body, strlen(body), true);
  cr_assert_str_eq(e->msg, "DELETE /containers/abc: daemon said 500: driver \"vfs\" failed to remove");
  _cleanup_error_ ca_error *e2 = NULL;
  dk_http_error(&e2, "GET", "/x", 502, NULL, 0, false);
  cr_assert_str_eq(e2->msg, "GET /x: daemon said 502: (no message)");
}

Test(errors, api_version_parse) {
  cr_assert_eq(dk_api_version_parse("1.41"), 1041);
  cr_assert_eq(dk_api_version_parse("1.30"), 1030);
  cr_assert_eq(dk_api_version_parse("2.0"), 2000);
  cr_assert_lt(dk_api_version_parse("1.41x"), 0);
  cr_assert_lt(dk_api_version_parse(""), 0);
  cr_assert_lt(dk_api_version_parse("v1.41"), 0);
  cr_assert_lt(dk_api_version_parse(NULL), 0);
}
