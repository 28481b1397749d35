/* The Docker proxy's request direction, fed literal HTTP: label merge, create targets, framing, refusal, raw mode. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"
#include "nesting.h"
#include "session.h"

#define SESSION "0123456789abcdef0123456789abcdef"
#define OTHER "fedcba9876543210fedcba9876543210"

static const char *const labels[] = {AG_LABEL_SESSION "=" SESSION, AG_LABEL_MANAGED "=true", AG_LABEL_MODE "=run",
                                     NULL};

struct out {
  ca_buf engine, client;
};

/* Feeds text in pieces of step bytes (0: all at once). */
static void feed(const char *text, size_t len, size_t step, struct out *o) {
  struct ag_proxy_req *r = ag_proxy_req_new(SESSION, labels);
  cr_assert_not_null(r);
  ca_buf_init(&o->engine, 64 * 1024 * 1024);
  ca_buf_init(&o->client, 1024 * 1024);
  ca_error *err = NULL;
  for (size_t off = 0; off < len;) {
    size_t n = step ? CA_MIN(step, len - off) : len;
    cr_assert_geq(ag_proxy_req_feed(r, text + off, n, &o->engine, &o->client, &err), 0);
    off += n;
  }
  ag_proxy_req_free(r);
}

static void out_free(struct out *o) {
  ca_buf_free(&o->engine);
  ca_buf_free(&o->client);
}

/* The single request in buf: its head (NUL-terminated copy) and its body, checking Content-Length against it. */
static cJSON *parse_request(const ca_buf *b, char *head, size_t head_size) {
  const char *end = strstr(ca_buf_str(b), "\r\n\r\n");
  cr_assert_not_null(end, "no complete head in: %s", ca_buf_str(b));
  size_t hl = (size_t)(end - b->data) + 4;
  cr_assert_lt(hl, head_size);
  memcpy(head, b->data, hl);
  head[hl] = '\0';
  const char *cl = strcasestr(head, "\r\nContent-Length: ");
  cr_assert_not_null(cl, "no Content-Length in: %s", head);
  size_t body_len = b->len - hl;
  cr_assert_eq(strtoul(cl + 18, NULL, 10), body_len, "Content-Length does not match the body in: %s", b->data);
  cr_assert_null(strcasestr(head, "Transfer-Encoding"), "framing header left in: %s", head);
  return cJSON_ParseWithLength(b->data + hl, body_len);
}

static const char *label(const cJSON *body, const char *key) {
  const cJSON *l = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(body, "Labels"), key);
  return cJSON_IsString(l) ? l->valuestring : NULL;
}

static void request(char *buf, size_t size, const char *target, const char *body) {
  snprintf(buf, size,
           "POST %s HTTP/1.1\r\nHost: docker\r\nUser-Agent: test\r\nContent-Type: application/json\r\n"
           "Content-Length: %zu\r\n\r\n%s",
           target, strlen(body), body);
}

Test(proxy, merges_labels_and_keeps_the_clients) {
  static const char *const targets[] = {
      "/containers/create",    "/v1.41/containers/create?name=x",       "/v1.24/networks/create", "/volumes/create",
      "/v1.43/volumes/create", "http://docker/v1.41/containers/create", "/containers/%63reate"};
  for (size_t i = 0; i < ELEMENTSOF(targets); i++) {
    char req[1024], head[1024];
    request(req, sizeof(req), targets[i],
            "{\"Image\":\"busybox\",\"Labels\":{\"app\":\"web\",\"" AG_LABEL_KEEP "\":\"true\"}}");
    for (size_t step = 0; step < 4; step++) {
      struct out o;
      feed(req, strlen(req), step * 7, &o);
      cJSON *body = parse_request(&o.engine, head, sizeof(head));
      cr_assert_not_null(body, "%s: body not JSON: %s", targets[i], o.engine.data);
      cr_assert_str_eq(label(body, AG_LABEL_SESSION), SESSION, "%s", targets[i]);
      cr_assert_str_eq(label(body, AG_LABEL_MANAGED), "true");
      cr_assert_str_eq(label(body, "app"), "web");
      cr_assert_str_eq(label(body, AG_LABEL_KEEP), "true", "keep=true must pass through");
      cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(body, "Image")->valuestring, "busybox");
      char line[256];
      snprintf(line, sizeof(line), "POST %s HTTP/1.1\r\n", targets[i]);
      cr_assert(strncmp(head, line, strlen(line)) == 0, "request line changed: %s", head);
      cr_assert_not_null(strstr(head, "\r\nUser-Agent: test\r\n"), "headers lost: %s", head);
      cr_assert_eq(o.client.len, 0);
      cJSON_Delete(body);
      out_free(&o);
    }
  }
}

Test(proxy, adds_labels_when_there_are_none_or_null_or_other_spellings) {
  static const char *const bodies[] = {"{}", "{\"Labels\":null}", "{\"labels\":{\"a\":\"1\"}}",
                                       "{\"LABELS\":{\"a\":\"1\"},\"Labels\":{\"b\":\"2\"}}"};
  for (size_t i = 0; i < ELEMENTSOF(bodies); i++) {
    char req[1024], head[1024];
    request(req, sizeof(req), "/v1.41/networks/create", bodies[i]);
    struct out o;
    feed(req, strlen(req), 0, &o);
    cJSON *body = parse_request(&o.engine, head, sizeof(head));
    cr_assert_not_null(body);
    cr_assert_str_eq(label(body, AG_LABEL_SESSION), SESSION, "%s", bodies[i]);
    int spellings = 0;
    for (cJSON *it = body->child; it; it = it->next)
      spellings += strcasecmp(it->string, "labels") == 0;
    cr_assert_eq(spellings, 1, "%s: every spelling of Labels must end up in one object", bodies[i]);
    if (i >= 2)
      cr_assert_str_eq(label(body, "a"), "1");
    if (i == 3)
      cr_assert_str_eq(label(body, "b"), "2");
    cJSON_Delete(body);
    out_free(&o);
  }
}

/* Feeds text all at once to a fresh parser: its last return value, with the outputs in o. */
static int feed_rc(const char *text, size_t len, struct out *o) {
  struct ag_proxy_req *r = ag_proxy_req_new(SESSION, labels);
  cr_assert_not_null(r);
  ca_buf_init(&o->engine, 64 * 1024 * 1024);
  ca_buf_init(&o->client, 1024 * 1024);
  int rc = ag_proxy_req_feed(r, text, len, &o->engine, &o->client, NULL);
  ag_proxy_req_free(r);
  return rc;
}

/* o holds a 400 of the proxy in the engine's error format, whose message contains why, and nothing for the engine. */
static void assert_refused(const struct out *o, const char *why, const char *what) {
  const char *c = ca_buf_str(&o->client);
  cr_assert_eq(o->engine.len, 0, "%s: nothing of it may reach the engine, got: %.300s", what, ca_buf_str(&o->engine));
  cr_assert(strncmp(c, "HTTP/1.1 400 ", 13) == 0, "%s: no 400: %.300s", what, c);
  const char *body = strstr(c, "\r\n\r\n");
  cr_assert_not_null(body, "%s: %s", what, c);
  cJSON *j = cJSON_Parse(body + 4);
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
  cr_assert(cJSON_IsString(m), "%s: no {\"message\"}: %s", what, c);
  cr_assert_not_null(strstr(m->valuestring, why), "%s: %s", what, m->valuestring);
  cJSON_Delete(j);
}

/* Under every spelling of Labels the engine reads too: case, escapes, Unicode folding (U+017F is an s). */
Test(proxy, refuses_a_foreign_session_label) {
  static const char *const bodies[] = {"{\"Labels\":{\"" AG_LABEL_SESSION "\":\"" OTHER "\"}}",
                                       "{\"Labels\":{\"" AG_LABEL_SESSION "\":5}}",
                                       "{\"labels\":{\"" AG_LABEL_SESSION "\":\"\"}}",
                                       "{\"Label\xc5\xbf\":{\"" AG_LABEL_SESSION "\":\"" OTHER "\"}}",
                                       "{\"Label\\u0073\":{\"" AG_LABEL_SESSION "\":\"" OTHER "\"}}",
                                       "{\"Labels\":{},\"LABELS\":{\"io.cleanup-agent.\\u0073ession\":\"" OTHER "\"}}"};
  for (size_t i = 0; i < ELEMENTSOF(bodies); i++) {
    char req[1024];
    request(req, sizeof(req), "/v1.41/containers/create", bodies[i]);
    struct out o;
    feed(req, strlen(req), 0, &o);
    cr_assert_eq(o.engine.len, 0, "%s: a refused create reached the engine", bodies[i]);
    cr_assert(strncmp(ca_buf_str(&o.client), "HTTP/1.1 400 ", 13) == 0, "%s", ca_buf_str(&o.client));
    cr_assert_not_null(strstr(ca_buf_str(&o.client), "names another session"), "%s", ca_buf_str(&o.client));
    out_free(&o);
  }
  /* Its own session id is fine. */
  char req[1024], head[1024];
  request(req, sizeof(req), "/containers/create", "{\"Labels\":{\"" AG_LABEL_SESSION "\":\"" SESSION "\"}}");
  struct out o;
  feed(req, strlen(req), 0, &o);
  cJSON *body = parse_request(&o.engine, head, sizeof(head));
  cr_assert_str_eq(label(body, AG_LABEL_SESSION), SESSION);
  cJSON_Delete(body);
  out_free(&o);
}

Test(proxy, chunked_create_becomes_a_plain_body) {
  const char *req = "POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n"
                    "Content-Type: application/json\r\n\r\n"
                    "5\r\n{\"Ima\r\n"
                    "e\r\nge\":\"busybox\"}\r\n"
                    "0\r\n\r\n";
  for (size_t step = 0; step < 5; step++) {
    struct out o;
    char head[1024];
    feed(req, strlen(req), step, &o);
    cJSON *body = parse_request(&o.engine, head, sizeof(head));
    cr_assert_not_null(body, "%s", o.engine.data);
    cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(body, "Image")->valuestring, "busybox");
    cr_assert_str_eq(label(body, AG_LABEL_SESSION), SESSION);
    cJSON_Delete(body);
    out_free(&o);
  }
}

/* Fail closed: a create the proxy cannot read is answered 400 and the connection closes, never forwarded as it is. */
Test(proxy, create_body_that_does_not_parse_is_refused_and_closes) {
  static const char *const bodies[] = {
      "{not json", "[1,2]", "\"s\"", "{\"Labels\":[\"a=b\"]}", "", "{} {", "{\"Labels\":{\"a\":\"b\"},}"};
  for (size_t i = 0; i < ELEMENTSOF(bodies); i++) {
    char req[1024];
    request(req, sizeof(req), "/containers/create", bodies[i]);
    struct out o;
    cr_assert_eq(feed_rc(req, strlen(req), &o), 1, "%s: the connection must close", bodies[i]);
    assert_refused(&o, "JSON", bodies[i]);
    out_free(&o);
  }
  /* Deeper than cJSON reads (1000 levels). */
  size_t depth = 2000;
  ca_buf b = CA_BUF_INIT(1 << 20);
  cr_assert_eq(ca_buf_appendf(&b, NULL, "{\"Image\":\"x\",\"HostConfig\":"), 0);
  for (size_t i = 0; i < depth; i++)
    cr_assert_eq(ca_buf_append(&b, "[", 1, NULL), 0);
  for (size_t i = 0; i < depth; i++)
    cr_assert_eq(ca_buf_append(&b, "]", 1, NULL), 0);
  cr_assert_eq(ca_buf_append(&b, "}", 1, NULL), 0);
  char *req = malloc(b.len + 256);
  request(req, b.len + 256, "/containers/create", ca_buf_str(&b));
  struct out o;
  cr_assert_eq(feed_rc(req, strlen(req), &o), 1);
  assert_refused(&o, "JSON", "2000 levels deep");
  out_free(&o);
  free(req);
  ca_buf_free(&b);
}

Test(proxy, content_length_and_chunked_on_a_create_are_refused) {
  const char *req = "POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: 2\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
                    "POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: 2\r\n\r\n{}";
  struct out o;
  cr_assert_eq(feed_rc(req, strlen(req), &o), 1);
  assert_refused(&o, "HTTP", "Content-Length and chunked");
  out_free(&o);
}

Test(proxy, head_over_80_kib_is_refused_and_closes) {
  size_t big = 90 * 1024;
  char *req = malloc(big + 512);
  int n = snprintf(req, big + 512, "GET /_ping HTTP/1.1\r\nHost: d\r\nX-Big: ");
  memset(req + n, 'a', big);
  snprintf(req + n + big, 512, "\r\n\r\nPOST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: 2\r\n\r\n{}");
  for (size_t step = 0; step < 2; step++) {
    struct out o;
    if (step == 0)
      cr_assert_eq(feed_rc(req, strlen(req), &o), 1);
    else
      feed(req, strlen(req), 4096, &o);
    assert_refused(&o, "head", "a 90 KiB head");
    out_free(&o);
  }
  free(req);
}

Test(proxy, upgrade_headers_on_a_create_are_refused) {
  static const char *const heads[] = {"Connection: Upgrade\r\nUpgrade: tcp\r\n", "Upgrade: tcp\r\n",
                                      "Connection: upgrade\r\n"};
  for (size_t i = 0; i < ELEMENTSOF(heads); i++) {
    char req[1024];
    snprintf(req, sizeof(req),
             "POST /containers/create HTTP/1.1\r\nHost: d\r\n%sContent-Length: 2\r\n\r\n{}"
             "POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: 2\r\n\r\n{}",
             heads[i]);
    struct out o;
    cr_assert_eq(feed_rc(req, strlen(req), &o), 1, "%s", heads[i]);
    assert_refused(&o, "Upgrade", heads[i]);
    out_free(&o);
  }
}

/* Labels of the agent's namespace are the agent's: keep=true, and the session's own labels, are all a client may set.
 */
Test(proxy, labels_of_the_agent_namespace_are_refused) {
  static const char *const refused[] = {AG_LABEL_EXPIRES "\":\"1",        AG_LABEL_MACHINE "\":\"m",
                                        AG_LABEL_KEEP "\":\"false",       AG_LABEL_MANAGED "\":\"false",
                                        AG_LABEL_PREFIX "anything\":\"x", AG_LABEL_MODE "\":\"container-seq"};
  for (size_t i = 0; i < ELEMENTSOF(refused); i++) {
    char req[1024], body[512];
    snprintf(body, sizeof(body), "{\"Labels\":{\"app\":\"x\",\"%s\"}}", refused[i]);
    request(req, sizeof(req), "/v1.41/containers/create", body);
    struct out o;
    feed(req, strlen(req), 0, &o);
    assert_refused(&o, AG_LABEL_PREFIX, refused[i]);
    cr_assert_not_null(strstr(ca_buf_str(&o.client), AG_LABEL_KEEP "=true"), "the refusal says what is allowed: %s",
                       ca_buf_str(&o.client));
    out_free(&o);
  }
  static const char *const allowed[] = {AG_LABEL_KEEP "\":\"true", AG_LABEL_MANAGED "\":\"true",
                                        AG_LABEL_MODE "\":\"run"};
  for (size_t i = 0; i < ELEMENTSOF(allowed); i++) {
    char req[1024], body[512], head[1024];
    snprintf(body, sizeof(body), "{\"Labels\":{\"%s\"}}", allowed[i]);
    request(req, sizeof(req), "/v1.41/volumes/create", body);
    struct out o;
    feed(req, strlen(req), 0, &o);
    cJSON *j = parse_request(&o.engine, head, sizeof(head));
    cr_assert_str_eq(label(j, AG_LABEL_SESSION), SESSION, "%s", allowed[i]);
    cJSON_Delete(j);
    out_free(&o);
  }
}

/* Change nothing else: every token but the Labels goes to the engine as the client wrote it. */
Test(proxy, every_other_token_is_kept_as_sent) {
  static const char *const bodies[] = {
      "{\"Image\":\"b\",\"HostConfig\":{\"PidsLimit\":9007199254740993}}",
      "{ \"HostConfig\" : { \"PidsLimit\" : 9223372036854775807 , \"Memory\":1e400 } ,\"Labels\":{\"a\":\"1\"} }",
      "{\"labels\":{\"a\":\"\\u00e9\"},\"Env\":[\"X=\\u00e9\\/\"],\"N\":-0.0e-0,\"Labels\":null,\"x\":1.50}",
  };
  static const char *const kept[][4] = {
      {"{\"Image\":\"b\",\"HostConfig\":{\"PidsLimit\":9007199254740993}", NULL},
      {"{ \"HostConfig\" : { \"PidsLimit\" : 9223372036854775807 , \"Memory\":1e400 }", "\"a\":\"1\"", NULL},
      {"\"Env\":[\"X=\\u00e9\\/\"],\"N\":-0.0e-0,", "\"x\":1.50", NULL},
  };
  for (size_t i = 0; i < ELEMENTSOF(bodies); i++) {
    char req[1024], head[1024];
    request(req, sizeof(req), "/containers/create", bodies[i]);
    struct out o;
    feed(req, strlen(req), 0, &o);
    cJSON *j = parse_request(&o.engine, head, sizeof(head));
    cr_assert_not_null(j, "%s", ca_buf_str(&o.engine));
    cr_assert_str_eq(label(j, AG_LABEL_SESSION), SESSION);
    for (size_t k = 0; kept[i][k]; k++)
      cr_assert_not_null(strstr(ca_buf_str(&o.engine), kept[i][k]), "%s changed into: %s", kept[i][k],
                         ca_buf_str(&o.engine));
    if (i == 2)
      cr_assert_null(label(j, "a"), "Labels: null after them clears the labels before, as the engine reads it");
    cJSON_Delete(j);
    out_free(&o);
  }
}

/* Bounded: create bodies are a few KiB; over 1 MiB gets a 413 that says so, and the connection closes. */
Test(proxy, body_over_1_mib_gets_413) {
  for (size_t n = 1024 * 1024; n <= 1024 * 1024 + 1; n++) {
    char head[256];
    snprintf(head, sizeof(head), "POST /volumes/create HTTP/1.1\r\nHost: d\r\nContent-Length: %zu\r\n\r\n", n);
    char *req = malloc(strlen(head) + n);
    cr_assert_not_null(req);
    memcpy(req, head, strlen(head));
    memset(req + strlen(head), ' ', n);
    memcpy(req + strlen(head), "{}", 2);
    struct out o;
    feed(req, strlen(head) + n, 1 << 16, &o);
    if (n == 1024 * 1024) {
      cr_assert_eq(o.client.len, 0, "a 1 MiB body is taken: %.300s", ca_buf_str(&o.client));
      cr_assert_not_null(strstr(ca_buf_str(&o.engine), SESSION));
    } else {
      cr_assert_eq(o.engine.len, 0);
      cr_assert(strncmp(ca_buf_str(&o.client), "HTTP/1.1 413 ", 13) == 0, "%s", ca_buf_str(&o.client));
      cr_assert_not_null(strstr(ca_buf_str(&o.client), "1 MiB"), "%s", ca_buf_str(&o.client));
      cr_assert_not_null(strstr(ca_buf_str(&o.client), "Connection: close"));
    }
    out_free(&o);
    free(req);
  }
  /* Answered as soon as the cap is passed, not after the client sent the rest: a Content-Length over it at once, a
   * chunked body when the cap is reached. */
  static const char *const heads[] = {
      "POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: 17179869184\r\n\r\n{\"Image\":",
      "POST /containers/create HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n100001\r\n"};
  for (size_t i = 0; i < ELEMENTSOF(heads); i++) {
    size_t pad = i == 1 ? 1024 * 1024 + 1 : 0, n = strlen(heads[i]);
    char *req = malloc(n + pad);
    memcpy(req, heads[i], n);
    memset(req + n, ' ', pad);
    struct out o;
    cr_assert_eq(feed_rc(req, n + pad, &o), AG_PROXY_CLOSE, "%s", heads[i]);
    cr_assert(strncmp(ca_buf_str(&o.client), "HTTP/1.1 413 ", 13) == 0, "%s", ca_buf_str(&o.client));
    cr_assert_eq(o.engine.len, 0);
    out_free(&o);
    free(req);
  }
}

/* Everything that is not a create goes byte for byte: keep-alive with several requests, chunked bodies. */
Test(proxy, other_requests_pass_untouched_at_every_split) {
  const char *req = "GET /v1.41/containers/json HTTP/1.1\r\nHost: d\r\n\r\n"
                    "POST /v1.41/containers/abc/start HTTP/1.1\r\nHost: d\r\nContent-Length: 2\r\n\r\n{}"
                    "POST /v1.41/containers/abc/wait?condition=next-exit HTTP/1.1\r\nHost: d\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                    "GET /v1.41/containers/create HTTP/1.1\r\nHost: d\r\n\r\n"
                    "POST /v1.41/containers/create/x HTTP/1.1\r\nHost: d\r\nContent-Length: 2\r\n\r\n{}"
                    "GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n";
  for (size_t step = 0; step <= strlen(req); step++) {
    struct out o;
    feed(req, strlen(req), step, &o);
    cr_assert_str_eq(ca_buf_str(&o.engine), req, "split every %zu bytes", step);
    cr_assert_eq(o.client.len, 0);
    out_free(&o);
  }
}

/* A create between pass-through requests: the others stay intact, the create is rewritten. */
Test(proxy, create_between_others) {
  const char *before = "GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n";
  const char *create = "POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: 2\r\n\r\n{}";
  const char *after = "GET /v1.41/version HTTP/1.1\r\nHost: d\r\n\r\n";
  char req[512];
  snprintf(req, sizeof(req), "%s%s%s", before, create, after);
  for (size_t step = 1; step <= strlen(req); step++) {
    struct out o;
    feed(req, strlen(req), step, &o);
    const char *e = ca_buf_str(&o.engine);
    cr_assert(strncmp(e, before, strlen(before)) == 0, "%s", e);
    cr_assert(strlen(e) > strlen(after) && streq(e + strlen(e) - strlen(after), after), "split %zu: %s", step, e);
    cr_assert_not_null(strstr(e, SESSION));
    out_free(&o);
  }
}

/* One connection fed from both sides, as the server does. */
struct conn_sim {
  struct ag_proxy_req *r;
  ca_buf engine, client;
};

static void sim_new(struct conn_sim *c) {
  c->r = ag_proxy_req_new(SESSION, labels);
  cr_assert_not_null(c->r);
  ca_buf_init(&c->engine, 1 << 24);
  ca_buf_init(&c->client, 1 << 24);
}

static int sim_client(struct conn_sim *c, const char *text) {
  int k = ag_proxy_req_feed(c->r, text, strlen(text), &c->engine, &c->client, NULL);
  cr_assert_geq(k, 0);
  return k;
}

static int sim_engine(struct conn_sim *c, const char *text) {
  int k = ag_proxy_resp_feed(c->r, text, strlen(text), &c->client, NULL);
  cr_assert_geq(k, 0);
  return k;
}

static void sim_free(struct conn_sim *c) {
  ag_proxy_req_free(c->r);
  ca_buf_free(&c->engine);
  ca_buf_free(&c->client);
}

#define CREATE "POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: 2\r\n\r\n{}"

/* docker-py's exec_start(detach=True) on a pooled connection: the engine answers plain HTTP, and the next create on
 * the same connection is labeled. */
Test(proxy, exec_start_detached_keeps_the_connection_http) {
  const char *exec = "POST /v1.41/exec/abc/start HTTP/1.1\r\nHost: d\r\nContent-Length: 16\r\n\r\n{\"Detach\": true}";
  for (size_t together = 0; together < 2; together++) {
    struct conn_sim c;
    sim_new(&c);
    char both[1024];
    snprintf(both, sizeof(both), "%s%s", exec, together ? CREATE : "");
    cr_assert_eq(sim_client(&c, both), AG_PROXY_WAIT, "an exec start waits for the engine's answer");
    cr_assert_str_eq(ca_buf_str(&c.engine), exec, "only the exec start goes before its answer");
    cr_assert(ag_proxy_req_waiting(c.r));
    cr_assert_eq(sim_engine(&c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), AG_PROXY_GO);
    cr_assert_not(ag_proxy_req_waiting(c.r));
    cr_assert_not(ag_proxy_req_is_raw(c.r), "a detached exec start's 200 does not take the connection over");
    ca_buf_reset(&c.engine);
    cr_assert_eq(together ? ag_proxy_req_feed(c.r, NULL, 0, &c.engine, &c.client, NULL) : sim_client(&c, CREATE),
                 AG_PROXY_GO);
    cr_assert_not_null(strstr(ca_buf_str(&c.engine), SESSION), "the create after it is not labeled: %s",
                       ca_buf_str(&c.engine));
    sim_free(&c);
  }
}

/* A connection turns into a byte stream only once the engine said so: 101, or an unframed 200 to attach. */
Test(proxy, upgrade_and_hijack_become_raw_after_the_engine_said_so) {
  const char *up = "POST /v1.41/exec/abc/start HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                   "Content-Length: 2\r\n\r\n{}";
  const char *stdin_bytes = "POST /containers/create HTTP/1.1\r\n\x01\x02 raw stdin";
  struct conn_sim c;
  sim_new(&c);
  char both[1024];
  snprintf(both, sizeof(both), "%s%s", up, stdin_bytes);
  cr_assert_eq(sim_client(&c, both), AG_PROXY_WAIT);
  cr_assert_str_eq(ca_buf_str(&c.engine), up);
  const char *answer = "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
                       "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n\x01stream";
  cr_assert_eq(sim_engine(&c, answer), AG_PROXY_GO);
  cr_assert(ag_proxy_req_is_raw(c.r));
  cr_assert_eq(ag_proxy_req_feed(c.r, NULL, 0, &c.engine, &c.client, NULL), AG_PROXY_GO);
  cr_assert_eq(sim_client(&c, "more"), AG_PROXY_GO);
  char want[1024];
  snprintf(want, sizeof(want), "%s%smore", up, stdin_bytes);
  cr_assert_str_eq(ca_buf_str(&c.engine), want, "bytes after an upgrade pass as they are");
  cr_assert_str_eq(ca_buf_str(&c.client), answer, "the engine's answer passes as it is");
  sim_free(&c);

  const char *attach = "POST /v1.41/containers/abc/attach?stream=1&stdin=1 HTTP/1.1\r\nHost: d\r\n\r\n";
  sim_new(&c);
  snprintf(both, sizeof(both), "%s%s", attach, CREATE);
  cr_assert_eq(sim_client(&c, both), AG_PROXY_WAIT);
  cr_assert_eq(sim_engine(&c, "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\nout"),
               AG_PROXY_GO);
  cr_assert(ag_proxy_req_is_raw(c.r));
  cr_assert_eq(ag_proxy_req_feed(c.r, NULL, 0, &c.engine, &c.client, NULL), AG_PROXY_GO);
  cr_assert_str_eq(ca_buf_str(&c.engine), both, "stdin of an attach passes as it is");
  sim_free(&c);

  /* The engine refused the attach (no such container): the connection stays HTTP. */
  sim_new(&c);
  cr_assert_eq(sim_client(&c, both), AG_PROXY_WAIT);
  cr_assert_eq(sim_engine(&c, "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
                              "\r\n{}"),
               AG_PROXY_GO);
  cr_assert_not(ag_proxy_req_is_raw(c.r));
  ca_buf_reset(&c.engine);
  cr_assert_eq(ag_proxy_req_feed(c.r, NULL, 0, &c.engine, &c.client, NULL), AG_PROXY_GO);
  cr_assert_not_null(strstr(ca_buf_str(&c.engine), SESSION), "%s", ca_buf_str(&c.engine));
  sim_free(&c);
}

/* Pipelined requests: the proxy's answer comes after the engine's answers to what was sent before it, never inside. */
Test(proxy, own_answers_never_interleave_with_the_engines) {
  struct conn_sim c;
  sim_new(&c);
  const char *reqs = "HEAD /_ping HTTP/1.1\r\nHost: d\r\n\r\n"
                     "GET /v1.41/containers/json HTTP/1.1\r\nHost: d\r\n\r\n"
                     "POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: 9\r\n\r\n{not json";
  cr_assert_eq(sim_client(&c, reqs), AG_PROXY_CLOSE);
  cr_assert_eq(c.client.len, 0, "the 400 went out before the engine's answers: %s", ca_buf_str(&c.client));
  cr_assert(ag_proxy_req_answer_pending(c.r));
  const char *ping = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nApi-Version: 1.41\r\n\r\n";
  const char *list1 = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 6\r\n\r\n[{}";
  const char *list2 = ",{}]";
  cr_assert_eq(sim_engine(&c, ping), AG_PROXY_GO);
  cr_assert_eq(sim_engine(&c, list1), AG_PROXY_GO);
  cr_assert_eq(c.client.len, strlen(ping) + strlen(list1), "%s", ca_buf_str(&c.client));
  cr_assert_eq(sim_engine(&c, list2), AG_PROXY_CLOSE);
  const char *own = ca_buf_str(&c.client) + strlen(ping) + strlen(list1) + strlen(list2);
  cr_assert(strncmp(own, "HTTP/1.1 400 ", 13) == 0, "%s", ca_buf_str(&c.client));
  cr_assert_not_null(strstr(own, "Connection: close\r\n"));
  cr_assert_eq(sim_engine(&c, "HTTP/1.1 200 OK\r\n"), AG_PROXY_CLOSE);
  cr_assert_null(strstr(own, "HTTP/1.1 200"), "nothing of the engine after the proxy's answer");
  sim_free(&c);
}

/* A request beyond the 64 in flight is refused and never reaches the engine, and its 400 comes after the answers to
 * all 64: the last one's too, here a create's (the id the session's end removes is in it). */
Test(proxy, a_request_over_the_pipelining_limit_is_answered_after_all_64) {
  struct conn_sim c;
  sim_new(&c);
  ca_buf reqs = CA_BUF_INIT(1 << 20);
  for (int i = 0; i < 63; i++)
    cr_assert_eq(ca_buf_appendf(&reqs, NULL, "GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n"), 0);
  cr_assert_eq(ca_buf_appendf(&reqs, NULL, "%sGET /_ping HTTP/1.1\r\nHost: d\r\n\r\n", CREATE), 0);
  cr_assert_eq(sim_client(&c, ca_buf_str(&reqs)), AG_PROXY_CLOSE);
  size_t pings = 0;
  for (const char *e = ca_buf_str(&c.engine); (e = strstr(e, "GET /_ping ")); e++)
    pings++;
  cr_assert_eq(pings, 63, "%zu pings reached the engine", pings);
  const char *ping = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK";
  for (int i = 0; i < 63; i++)
    cr_assert_eq(sim_engine(&c, ping), AG_PROXY_GO);
  cr_assert_null(strstr(ca_buf_str(&c.client), "HTTP/1.1 400 "), "the 400 went out before the create's answer");
  const char *created = "HTTP/1.1 201 Created\r\nContent-Length: 9\r\n\r\n{\"Id\":\"a\"}";
  cr_assert_eq(sim_engine(&c, created), AG_PROXY_CLOSE);
  const char *own = strstr(ca_buf_str(&c.client), created);
  cr_assert_not_null(own, "the create's answer was dropped: %s", ca_buf_str(&c.client) + c.client.len - 200);
  cr_assert(strncmp(own + strlen(created), "HTTP/1.1 400 ", 13) == 0, "%s", own);
  ca_buf_free(&reqs);
  sim_free(&c);
}

/* Bytes that are not HTTP the proxy can read are answered 400 and close the connection: nothing goes to the engine. */
Test(proxy, bytes_that_are_not_http_are_refused_and_close) {
  static const char *const inputs[] = {"\x16\x03\x01 tls hello", "GET / HTTP/1.1\r\nbad header line\r\n\r\n",
                                       "NOTAMETHOD / HTTP/1.1\r\n\r\n"};
  for (size_t i = 0; i < ELEMENTSOF(inputs); i++) {
    struct out o;
    cr_assert_eq(feed_rc(inputs[i], strlen(inputs[i]), &o), 1, "%s", inputs[i]);
    assert_refused(&o, "HTTP", inputs[i]);
    out_free(&o);
  }
}

/* The engine ignores Transfer-Encoding in an HTTP/1.0 request (its body is empty to it) where the parser reads chunks:
 * what the proxy took for one chunk the engine reads as the next request, here an unlabeled create. */
Test(proxy, transfer_encoding_in_http_1_0_is_refused) {
  const char *smuggled = "Host: d\r\n\r\nPOST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: "
                         "application/json\r\nContent-Length: 13\r\n\r\n{\"Image\":\"x\"}";
  char req[1024];
  snprintf(req, sizeof(req),
           "GET /_ping HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n%zx / HTTP/1.1\r\n%s\r\n"
           "0\r\n\r\n",
           strlen(smuggled), smuggled);
  struct out o;
  cr_assert_eq(feed_rc(req, strlen(req), &o), 1);
  assert_refused(&o, "HTTP/1.0", "Transfer-Encoding in HTTP/1.0");
  out_free(&o);
}

/* /v1.41.0.0...0/containers/create with n ".0": the engine's router takes any run of digits and dots as the API
 * version, and 1.41.0.0 is 1.41 to it. */
static void long_version_target(ca_buf *target, int n) {
  ca_buf_init(target, 64 * 1024);
  cr_assert_eq(ca_buf_appendf(target, NULL, "/v1.41"), 0);
  for (int i = 0; i < n; i++)
    cr_assert_eq(ca_buf_appendf(target, NULL, ".0"), 0);
  cr_assert_eq(ca_buf_appendf(target, NULL, "/containers/create"), 0);
}

Test(proxy, a_create_behind_a_long_api_version_is_labeled) {
  ca_buf target;
  long_version_target(&target, 150);
  char req[2048], head[2048];
  request(req, sizeof(req), ca_buf_str(&target), "{\"Image\":\"x\"}");
  struct out o;
  feed(req, strlen(req), 0, &o);
  cJSON *body = parse_request(&o.engine, head, sizeof(head));
  cr_assert_str_eq(label(body, AG_LABEL_SESSION), SESSION, "an unlabeled create went to the engine: %s", head);
  cJSON_Delete(body);
  out_free(&o);
  ca_buf_free(&target);
}

/* A path the proxy cannot decode whole is refused, never taken for something that creates nothing. */
Test(proxy, a_path_too_long_to_read_is_refused) {
  ca_buf target;
  long_version_target(&target, 3000);
  const char *ops[] = {"POST", "GET"};
  for (size_t i = 0; i < ELEMENTSOF(ops); i++) {
    char *req = NULL;
    cr_assert_gt(asprintf(&req,
                          "%s %s HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nContent-Length: "
                          "13\r\n\r\n{\"Image\":\"x\"}",
                          ops[i], ca_buf_str(&target)),
                 0);
    struct out o;
    cr_assert_eq(feed_rc(req, strlen(req), &o), 1, "%s", ops[i]);
    assert_refused(&o, "path", ops[i]);
    out_free(&o);
    free(req);
  }
  ca_buf_free(&target);
}

Test(proxy, create_targets) {
  cr_assert(ag_proxy_is_create("POST", "/v1.41/containers/create?name=a", 32));
  cr_assert_not(ag_proxy_is_create("GET", "/containers/create", 18));
  cr_assert_not(ag_proxy_is_create("POST", "/containers/createx", 19));
  cr_assert_not(ag_proxy_is_create("POST", "/vx/containers/create", 21));
  cr_assert_not(ag_proxy_is_create("POST", "/images/create", 14));
}

Test(proxy, engine_socket_of_docker_host) {
  cr_assert_str_eq(ag_proxy_engine_socket("unix:///run/d.sock"), "/run/d.sock");
  cr_assert_str_eq(ag_proxy_engine_socket(NULL), "/var/run/docker.sock");
  cr_assert_null(ag_proxy_engine_socket("tcp://1.2.3.4:2376"));
}

Test(proxy, malformed_create_body_is_answered_and_closes) {
  const char *req = "POST /containers/create HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "zz\r\n{}\r\n0\r\n\r\nGET /_ping HTTP/1.1\r\n\r\n";
  struct ag_proxy_req *r = ag_proxy_req_new(SESSION, labels);
  ca_buf engine = CA_BUF_INIT(1 << 20), client = CA_BUF_INIT(1 << 20);
  cr_assert_eq(ag_proxy_req_feed(r, req, strlen(req), &engine, &client, NULL), 1);
  cr_assert_eq(engine.len, 0, "nothing of a create the proxy could not read goes to the engine: %s", engine.data);
  cr_assert(strncmp(ca_buf_str(&client), "HTTP/1.1 400 ", 13) == 0, "%s", ca_buf_str(&client));
  cr_assert_eq(ag_proxy_req_feed(r, "GET / HTTP/1.1\r\n\r\n", 18, &engine, &client, NULL), 1);
  cr_assert_eq(engine.len, 0);
  ca_buf_free(&engine);
  ca_buf_free(&client);
  ag_proxy_req_free(r);
}

/* ---- the server, in front of a fake engine that greets every connection and keeps it open ---- */

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

static int unix_socket(const char *path, bool listening) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert_geq(fd, 0);
  if (listening)
    cr_assert(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 16) == 0);
  else
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect %s: %s", path, strerror(errno));
  return fd;
}

static void *fake_engine(void *arg) {
  int lfd = *(int *)arg, fd;
  while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0)
    (void)!write(fd, "hello\n", 6); /* kept open until the test process ends */
  return NULL;
}

/* True when fd gets the greeting within timeout_ms. */
static bool greeted(int fd, int timeout_ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  char buf[16];
  return poll(&p, 1, timeout_ms) == 1 && read(fd, buf, sizeof(buf)) == 6;
}

/* Reads what comes on fd into answer (NUL-terminated) until it closes, or nothing came for timeout_ms: true when it
 * closed. */
static bool read_answer(int fd, char *answer, size_t size, int timeout_ms) {
  size_t got = 0;
  ssize_t n = 1;
  struct pollfd p = {.fd = fd, .events = POLLIN};
  while (n > 0 && got < size - 1 && poll(&p, 1, timeout_ms) == 1) {
    n = read(fd, answer + got, size - 1 - got);
    got += n > 0 ? (size_t)n : 0;
  }
  answer[got] = '\0';
  return n == 0;
}

Test(proxy_server, connections_are_bounded_and_stop_removes_the_socket) {
  char dir[] = "/tmp/ag-proxy-XXXXXX", engine[64], sock[64];
  cr_assert_not_null(mkdtemp(dir));
  snprintf(engine, sizeof(engine), "%s/engine.sock", dir);
  snprintf(sock, sizeof(sock), "%s/proxy.sock", dir);
  int lfd = unix_socket(engine, true);
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, fake_engine, &lfd), 0);
  struct ag_proxy *px = NULL;
  ca_error *err = NULL;
  struct ag_proxy_config cfg = {
      .socket_path = sock, .engine_socket = engine, .session_id = SESSION, .labels = labels, .max_connections = 2};
  cr_assert_eq(ag_proxy_start(&cfg, &px, &err), 0, "%s", err ? err->msg : "");
  struct stat st;
  cr_assert_eq(stat(sock, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0600, "socket mode %o", st.st_mode & 0777);

  int c1 = unix_socket(sock, false), c2 = unix_socket(sock, false);
  cr_assert(greeted(c1, 5000) && greeted(c2, 5000), "the first two clients must be served");
  /* A third one beyond the cap of 2 is answered 503 at once, not left waiting in the backlog. */
  int c3 = unix_socket(sock, false);
  char answer[1024];
  read_answer(c3, answer, sizeof(answer), 5000);
  cr_assert(strncmp(answer, "HTTP/1.1 503 ", 13) == 0, "a third connection beyond the cap of 2: %s", answer);
  cr_assert_not_null(strstr(answer, "{\"message\":\"cleanup-agent: "), "%s", answer);
  close(c3);
  close(c1);
  for (int tries = 0; tries < 50; tries++) { /* the proxy sees c1 end a moment later */
    c3 = unix_socket(sock, false);
    if (greeted(c3, 5000))
      break;
    close(c3);
    c3 = -1;
    usleep(20000);
  }
  cr_assert_geq(c3, 0, "a client must be served once a connection ended");

  ag_proxy_stop(px, 100000); /* c2 and c3 stay open: the stop closes them after the drain time */
  cr_assert_neq(stat(sock, &st), 0, "the socket is left after stop");
  char buf[16];
  cr_assert_eq(read(c2, buf, sizeof(buf)), 0, "an open connection must be closed by stop");
  close(c2);
  close(c3);
  shutdown(lfd, SHUT_RDWR);
  pthread_join(t, NULL);
  close(lfd);
  unlink(engine);
  rmdir(dir);
}

/* ---- bounded: idle connections, buffered bodies, accept without descriptors (issue 21) ---- */

#include <fcntl.h>
#include <sys/wait.h>

/* An engine that speaks just enough HTTP: GET /events answers a chunked head and, 800 ms later, one chunk; an attach
 * answers 101 and, 800 ms later, echoes what it reads; a build is never answered (the engine waits for the rest of
 * its context); anything else gets "OK". One thread per connection. */
static void *http_engine_conn(void *arg) {
  int fd = (int)(intptr_t)arg;
  char req[4096];
  size_t got = 0;
  while (got < sizeof(req) - 1 && !memmem(req, got, "\r\n\r\n", 4)) {
    ssize_t n = read(fd, req + got, sizeof(req) - 1 - got);
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  req[got] = '\0';
  if (strncmp(req, "GET /events", 11) == 0) {
    (void)!write(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 47);
    usleep(800 * 1000);
    (void)!write(fd, "5\r\nhello\r\n", 10);
  } else if (strstr(req, "/attach")) {
    (void)!write(fd, "HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n", 60);
    usleep(800 * 1000);
    char b[64];
    ssize_t n = read(fd, b, sizeof(b));
    if (n > 0)
      (void)!write(fd, b, (size_t)n);
  } else if (!strstr(req, "/build")) {
    (void)!write(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK", 40);
  }
  char b[64];
  while (read(fd, b, sizeof(b)) > 0) /* until the proxy closes its side */
    ;
  close(fd);
  return NULL;
}

static void *http_engine(void *arg) {
  int lfd = *(int *)arg, fd;
  while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
    pthread_t t;
    if (pthread_create(&t, NULL, http_engine_conn, (void *)(intptr_t)fd) == 0)
      pthread_detach(t);
  }
  return NULL;
}

struct live {
  char dir[32], engine[64], sock[64];
  int lfd;
  pthread_t t;
  struct ag_proxy *px;
};

/* A temp dir with the fake engine's socket, served by engine in a thread; the proxy's socket path next to it. */
static void engine_start(struct live *l, void *(*engine)(void *)) {
  signal(SIGPIPE, SIG_IGN); /* the fake engine answers connections that the proxy closed */
  snprintf(l->dir, sizeof(l->dir), "/tmp/ag-proxy-XXXXXX");
  cr_assert_not_null(mkdtemp(l->dir));
  snprintf(l->engine, sizeof(l->engine), "%s/engine.sock", l->dir);
  snprintf(l->sock, sizeof(l->sock), "%s/proxy.sock", l->dir);
  l->lfd = unix_socket(l->engine, true);
  cr_assert_eq(pthread_create(&l->t, NULL, engine, &l->lfd), 0);
}

static void engine_stop(struct live *l) {
  shutdown(l->lfd, SHUT_RDWR);
  pthread_join(l->t, NULL);
  close(l->lfd);
  unlink(l->sock);
  unlink(l->engine);
  rmdir(l->dir);
}

static void live_start(struct live *l, void *(*engine)(void *), struct ag_proxy_config cfg) {
  engine_start(l, engine);
  cfg.socket_path = l->sock;
  cfg.engine_socket = l->engine;
  cfg.session_id = SESSION;
  cfg.labels = labels;
  ca_error *err = NULL;
  cr_assert_eq(ag_proxy_start(&cfg, &l->px, &err), 0, "%s", err ? err->msg : "");
}

static void live_stop(struct live *l) {
  ag_proxy_stop(l->px, 100000);
  engine_stop(l);
}

/* What fd sends within timeout_ms, up to size - 1 bytes (stops early at want, when given); -1 for an end of stream
 * before anything came, else the length. */
static ssize_t read_within(int fd, char *buf, size_t size, int timeout_ms, const char *want) {
  size_t got = 0;
  uint64_t end = ca_now_monotonic_usec() + (uint64_t)timeout_ms * 1000;
  buf[0] = '\0';
  while (got < size - 1 && !(want && strstr(buf, want))) {
    uint64_t now = ca_now_monotonic_usec();
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (now >= end || poll(&p, 1, (int)((end - now) / 1000) + 1) != 1)
      break;
    ssize_t n = read(fd, buf + got, size - 1 - got);
    if (n <= 0)
      return got ? (ssize_t)got : -1;
    got += (size_t)n;
    buf[got] = '\0';
  }
  return (ssize_t)got;
}

/* True when fd reaches its end of stream within timeout_ms (whatever came before it is skipped). */
static bool closed_within(int fd, int timeout_ms) {
  char buf[4096];
  uint64_t end = ca_now_monotonic_usec() + (uint64_t)timeout_ms * 1000;
  for (;;) {
    uint64_t now = ca_now_monotonic_usec();
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (now >= end || poll(&p, 1, (int)((end - now) / 1000) + 1) != 1)
      return false;
    if (read(fd, buf, sizeof(buf)) <= 0)
      return true;
  }
}

/* The first connection that reaches the engine tells the session (which records the engine in its registry) before
 * any of its bytes go there; when that fails the connection is refused and nothing is forwarded, and the next one
 * asks again. Once it succeeded nobody is asked any more. */
static int reached_calls;
static int engine_reached_fails_once(void *ctx, ca_error **err) {
  (void)ctx;
  if (++reached_calls == 1)
    return ca_error_set(err, ENOSPC, "cannot write the registry");
  return 0;
}

Test(proxy_server, the_first_connection_that_reaches_the_engine_is_reported_before_it_forwards) {
  struct live l;
  live_start(&l, fake_engine, (struct ag_proxy_config){.engine_reached = engine_reached_fails_once});
  int c1 = unix_socket(l.sock, false);
  char answer[1024];
  read_within(c1, answer, sizeof(answer), 5000, "}");
  cr_assert(strncmp(answer, "HTTP/1.1 502 ", 13) == 0, "a connection whose engine was not recorded: %s", answer);
  cr_assert_not_null(strstr(answer, "forwards nothing: cannot write the registry"), "%s", answer);
  cr_assert_null(strstr(answer, "hello"), "the engine's bytes reached the client: %s", answer);
  int c2 = unix_socket(l.sock, false), c3 = unix_socket(l.sock, false);
  cr_assert(greeted(c2, 5000) && greeted(c3, 5000), "the connections after a recorded engine must be served");
  cr_assert_eq(reached_calls, 2, "engine_reached was called %d times", reached_calls);
  live_stop(&l);
  close(c1);
  close(c2);
  close(c3);
}

Test(proxy_server, idle_connections_are_closed_and_streams_are_not) {
  struct live l;
  live_start(&l, http_engine, (struct ag_proxy_config){.idle_usec = 300 * 1000});
  char buf[4096];
  /* A client that connects and sends nothing, and one idle after its answer: both closed after the idle time. */
  int silent = unix_socket(l.sock, false), pinged = unix_socket(l.sock, false);
  const char ping[] = "GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n";
  cr_assert_eq(ca_write_all(pinged, ping, strlen(ping)), 0);
  cr_assert_gt(read_within(pinged, buf, sizeof(buf), 2000, "OK"), 0);
  cr_assert_not_null(strstr(buf, "\r\n\r\nOK"), "%s", buf);
  uint64_t t0 = ca_now_monotonic_usec();
  cr_assert(closed_within(silent, 3000), "a connection that sent nothing was not closed");
  cr_assert(closed_within(pinged, 3000), "a connection idle after its answer was not closed");
  cr_assert_lt(ca_now_monotonic_usec() - t0, 2000 * 1000ULL);
  /* A stream quiet for longer than the idle time (events) and a hijacked connection (attach) are not cut. */
  int events = unix_socket(l.sock, false), attach = unix_socket(l.sock, false);
  const char ev[] = "GET /events HTTP/1.1\r\nHost: d\r\n\r\n";
  const char at[] = "POST /containers/c1/attach?stream=1 HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\n"
                    "Upgrade: tcp\r\nContent-Length: 0\r\n\r\n";
  cr_assert_eq(ca_write_all(events, ev, strlen(ev)), 0);
  cr_assert_eq(ca_write_all(attach, at, strlen(at)), 0);
  cr_assert_gt(read_within(events, buf, sizeof(buf), 3000, "hello"), 0);
  cr_assert_not_null(strstr(buf, "5\r\nhello"), "the events stream was cut after its quiet time: '%s'", buf);
  cr_assert_gt(read_within(attach, buf, sizeof(buf), 2000, "\r\n\r\n"), 0);
  cr_assert_not_null(strstr(buf, "101"), "%s", buf);
  usleep(900 * 1000); /* quiet for three idle times, then the stream goes on */
  cr_assert_eq(ca_write_all(attach, "ping", 4), 0);
  cr_assert_eq(read_within(attach, buf, sizeof(buf), 2000, "ping"), 4, "the attach stream was cut: '%s'", buf);
  close(silent);
  close(pinged);
  close(events);
  close(attach);
  live_stop(&l);
}

/* Sends a create head for a body of total bytes and the first part bytes of it. */
static int partial_create(const char *sock, size_t total, size_t part) {
  int fd = unix_socket(sock, false);
  char head[256];
  snprintf(head, sizeof(head), "POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: %zu\r\n\r\n", total);
  char *body = malloc(part);
  cr_assert_not_null(body);
  memset(body, ' ', part);
  body[0] = '{';
  cr_assert_eq(ca_write_all(fd, head, strlen(head)), 0);
  for (size_t off = 0; off < part;) { /* a refused one is closed before all of it went */
    ssize_t n = send(fd, body + off, part - off, MSG_NOSIGNAL);
    if (n <= 0)
      break;
    off += (size_t)n;
  }
  free(body);
  return fd;
}

Test(proxy_server, create_bodies_buffered_across_connections_are_bounded) {
  struct live l;
  live_start(&l, http_engine, (struct ag_proxy_config){.body_budget = 1024 * 1024});
  char buf[4096];
  int a = partial_create(l.sock, 1000000, 700000);
  usleep(300 * 1000); /* the proxy holds a's 700 kB */
  int b = partial_create(l.sock, 1000000, 700000);
  cr_assert_gt(read_within(b, buf, sizeof(buf), 3000, "}"), 0, "a create beyond the budget got no answer");
  cr_assert(strncmp(buf, "HTTP/1.1 503 ", 13) == 0, "%s", buf);
  cr_assert_not_null(strstr(buf, "{\"message\":\"cleanup-agent: "), "%s", buf);
  close(b);
  /* a's bytes go back to the budget when it ends: the next create is held again, not refused. */
  close(a);
  usleep(300 * 1000);
  int c = partial_create(l.sock, 1000000, 700000);
  cr_assert_eq(read_within(c, buf, sizeof(buf), 500, NULL), 0, "a create within the budget was answered: %s", buf);
  close(c);
  live_stop(&l);
}

/* Out of descriptors, the proxy's accept fails while the client waits in the backlog: the proxy waits between tries
 * instead of spinning, and serves the client once descriptors are back. The proxy runs in a process of its own
 * (proxy_cut_child.c), whose RLIMIT_NOFILE is cut to the descriptors it has. */
Test(proxy_server, accept_without_descriptors_backs_off) {
  struct live l;
  engine_start(&l, fake_engine);
  int go[2], cpu[2];
  cr_assert(pipe(go) == 0 && pipe(cpu) == 0);
  pid_t child = fork();
  cr_assert_geq(child, 0);
  if (child == 0) {
    int g = fcntl(go[1], F_DUPFD, 10), c = fcntl(cpu[1], F_DUPFD, 10); /* clear of 3 and 4 */
    if (g < 0 || c < 0 || dup2(g, 3) < 0 || dup2(c, 4) < 0)
      _exit(2);
    execl(AG_PROXY_CUT_CHILD, AG_PROXY_CUT_CHILD, l.sock, l.engine, (char *)NULL);
    _exit(127);
  }
  close(go[1]);
  close(cpu[1]);
  char x;
  cr_assert_eq(read(go[0], &x, 1), 1);
  int client = unix_socket(l.sock, false);
  long used = -1;
  cr_assert_eq(read(cpu[0], &used, sizeof(used)), (ssize_t)sizeof(used));
  cr_assert_lt(used, 200000L, "the proxy used %ld us of CPU in one second of failed accepts", used);
  /* The waiting client is served; or, when a descriptor the proxy held only for a moment freed a slot during the cut
   * (ASan's runtime makes that window wider), it was accepted then and refused (no descriptor for the engine): the
   * next client, after the cut, is served. */
  bool served = greeted(client, 10000);
  close(client);
  if (!served) {
    client = unix_socket(l.sock, false);
    served = greeted(client, 10000);
    close(client);
  }
  cr_assert(served, "no client was served once descriptors were back");
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  engine_stop(&l);
}

/* An engine the proxy cannot reach: a client that streams a body (docker build's context) sends it whole and then
 * reads the proxy's 502 that says why, instead of a broken pipe. */
Test(proxy_server, a_client_still_sending_reads_why_the_engine_cannot_be_reached) {
  struct live l;
  live_start(&l, fake_engine, (struct ag_proxy_config){0});
  cr_assert_eq(unlink(l.engine), 0);
  const size_t body_len = 16 * 1024 * 1024;
  char *body = calloc(1, body_len), head[256], all[4096];
  cr_assert_not_null(body);
  snprintf(head, sizeof(head), "POST /v1.41/build HTTP/1.1\r\nHost: d\r\nContent-Length: %zu\r\n\r\n", body_len);
  int fd = unix_socket(l.sock, false);
  cr_assert_eq(ca_write_all(fd, head, strlen(head)), 0);
  int k = ca_write_all(fd, body, body_len);
  cr_assert_eq(k, 0, "the client could not send its body: %s", strerror(-k));
  cr_assert(read_answer(fd, all, sizeof(all), 5000), "the connection did not close after the answer: %s", all);
  cr_assert(strncmp(all, "HTTP/1.1 502 ", 13) == 0, "%s", all);
  cr_assert_not_null(strstr(all, "cannot reach the engine"), "%s", all);
  close(fd);
  free(body);
  live_stop(&l);
}

/* A classic build that keeps its step containers (counted as a create in flight) whose chunked body turns
 * unreadable halfway: the proxy answers 400 while the engine still waits for the rest, and drops what the client
 * still sends, which then reads the answer and the end. */
Test(proxy_server, a_build_refused_halfway_through_its_body_is_answered_while_the_engine_waits) {
  struct live l;
  live_start(&l, http_engine, (struct ag_proxy_config){0});
  int fd = unix_socket(l.sock, false);
  struct timeval limit = {.tv_sec = 10}; /* a proxy that stopped reading fails the write instead of hanging it */
  cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(limit)), 0);
  const char *start = "POST /v1.41/build?rm=0&forcerm=0 HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "4\r\nabcd\r\nzz\r\n";
  cr_assert_eq(ca_write_all(fd, start, strlen(start)), 0);
  const size_t rest_len = 16 * 1024 * 1024;
  char *rest = calloc(1, rest_len), all[4096];
  cr_assert_not_null(rest);
  int k = ca_write_all(fd, rest, rest_len);
  cr_assert_eq(k, 0, "the client could not send the rest: %s", strerror(-k));
  cr_assert(read_answer(fd, all, sizeof(all), 5000), "the connection did not close after the answer: %s", all);
  cr_assert(strncmp(all, "HTTP/1.1 400 ", 13) == 0, "%s", all);
  close(fd);
  free(rest);
  live_stop(&l);
}

/* ---- volumes a container create implies ---- */

static const cJSON *mount_labels(const cJSON *body, int i) {
  const cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(body, "HostConfig"), "Mounts"), i);
  return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItem(m, "VolumeOptions"), "Labels");
}

static const char *mount_label(const cJSON *body, int i, const char *key) {
  const cJSON *l = cJSON_GetObjectItemCaseSensitive(mount_labels(body, i), key);
  return cJSON_IsString(l) ? l->valuestring : NULL;
}

Test(proxy, volume_mounts_get_the_session_labels_and_nothing_else_changes) {
  static const char bind[] = "{\"Type\":\"bind\",\"Source\":\"/tmp\",\"Target\":\"/y\"}";
  const char *body_text =
      "{\"Image\":\"busybox\",\"hostconfig\":{\"PidsLimit\":9007199254740993,\"Mounts\":["
      "{\"Type\":\"volume\",\"Source\":\"data\",\"Target\":\"/x\"}, "
      "{\"Type\":\"bind\",\"Source\":\"/tmp\",\"Target\":\"/y\"},"
      "{\"Target\":\"/z\",\"VolumeOptions\":{\"NoCopy\":true,\"Labels\":{\"a\":\"b\"}},\"type\":\"volume\"},"
      "{\"Type\":\"volume\",\"Target\":\"/w\",\"VolumeOptions\":null}],\"Memory\":1e400}}";
  char req[2048], head[1024];
  request(req, sizeof(req), "/v1.41/containers/create", body_text);
  for (size_t step = 0; step < 3; step++) {
    struct out o;
    feed(req, strlen(req), step * 13, &o);
    cJSON *body = parse_request(&o.engine, head, sizeof(head));
    cr_assert_not_null(body, "%s", ca_buf_str(&o.engine));
    cr_assert_str_eq(label(body, AG_LABEL_SESSION), SESSION);
    cr_assert_str_eq(mount_label(body, 0, AG_LABEL_SESSION), SESSION, "%s", ca_buf_str(&o.engine));
    cr_assert_str_eq(mount_label(body, 0, AG_LABEL_MODE), "run");
    cr_assert_null(mount_labels(body, 1), "a bind mount has no volume to label");
    cr_assert_str_eq(mount_label(body, 2, AG_LABEL_SESSION), SESSION, "%s", ca_buf_str(&o.engine));
    cr_assert_str_eq(mount_label(body, 2, "a"), "b");
    cr_assert_str_eq(mount_label(body, 3, AG_LABEL_SESSION), SESSION, "%s", ca_buf_str(&o.engine));
    const char *e = ca_buf_str(&o.engine);
    cr_assert_not_null(strstr(e, "\"NoCopy\":true"), "%s", e);
    cr_assert_not_null(strstr(e, "9007199254740993"), "%s", e);
    cr_assert_not_null(strstr(e, "\"Memory\":1e400"), "%s", e);
    cr_assert_not_null(strstr(e, bind), "the bind mount must stay as sent: %s", e);
    cJSON_Delete(body);
    out_free(&o);
  }
}

Test(proxy, volume_mount_labels_of_the_agent_namespace_are_refused) {
  char req[1024];
  request(req, sizeof(req), "/containers/create",
          "{\"HostConfig\":{\"Mounts\":[{\"Type\":\"volume\",\"Source\":\"d\",\"Target\":\"/x\","
          "\"VolumeOptions\":{\"Labels\":{\"" AG_LABEL_SESSION "\":\"" OTHER "\"}}}]}}");
  struct out o;
  feed(req, strlen(req), 0, &o);
  assert_refused(&o, "names another session", "a foreign session label on a volume mount");
  out_free(&o);
}

Test(proxy, bind_volumes_are_the_named_sources) {
  const char *body = "{\"HostConfig\":{\"Binds\":[\"data:/x\",\"/host:/y\",\"data:/z:ro\",\"x:/a\",\"v.2_b-c:/b:rw\","
                     "\"no-target\",5]}}";
  char **names = NULL;
  cr_assert_eq(ag_proxy_bind_volumes(body, strlen(body), &names, NULL), 0);
  cr_assert_str_eq(names[0], "data");
  cr_assert_str_eq(names[1], "v.2_b-c");
  cr_assert_null(names[2]);
  ca_strv_free(names);
  cr_assert_eq(ag_proxy_bind_volumes("{}", 2, &names, NULL), 0);
  cr_assert_null(names[0]);
  ca_strv_free(names);
}

/* The engine reads member names with Unicode folding (U+017F is an s), merges an object given twice, and (API 1.41)
 * takes Binds at the top level when no HostConfig is there: a volume any of those implies is one the proxy makes
 * first, with the session's labels. */
Test(proxy, bind_volumes_under_every_spelling_the_engine_reads) {
  static const char *const bodies[] = {
      "{\"HostConfig\":{\"Bind\xc5\xbf\":[\"leak:/d\"]}}",
      "{\"Ho\xc5\xbftConfig\":{\"Binds\":[\"leak:/d\"]}}",
      "{\"HostConfig\":{\"Binds\":[\"leak:/d\"]},\"HostConfig\":{}}",
      "{\"Image\":\"x\",\"Binds\":[\"leak:/d\"]}",
  };
  for (size_t i = 0; i < ELEMENTSOF(bodies); i++) {
    char **names = NULL;
    cr_assert_eq(ag_proxy_bind_volumes(bodies[i], strlen(bodies[i]), &names, NULL), 0);
    cr_assert(names[0] && streq(names[0], "leak"), "%s: the volume it implies was not found", bodies[i]);
    ca_strv_free(names);
  }
}

/* Volume mounts under the spellings the engine reads (see above) get the session's labels too. */
Test(proxy, volume_mounts_under_every_spelling_the_engine_reads_get_the_session_labels) {
  static const char *const bodies[] = {
      "{\"HostConfig\":{\"Mount\xc5\xbf\":[{\"Type\":\"volume\",\"Source\":\"leak\",\"Target\":\"/d\"}]}}",
      "{\"Image\":\"x\",\"Mounts\":[{\"Type\":\"volume\",\"Source\":\"leak\",\"Target\":\"/d\"}]}",
  };
  for (size_t i = 0; i < ELEMENTSOF(bodies); i++) {
    char req[1024];
    request(req, sizeof(req), "/containers/create", bodies[i]);
    struct out o;
    feed(req, strlen(req), 0, &o);
    const char *e = ca_buf_str(&o.engine);
    const char *opts = strstr(e, "\"VolumeOptions\"");
    cr_assert(opts && strstr(opts, "\"" AG_LABEL_SESSION "\":\"" SESSION "\""),
              "%s: the volume mount went without the session's labels: %s", bodies[i], e);
    out_free(&o);
  }
}

/* Only a create whose labels, as the engine reads them (the last of a key, a null Labels resetting them), name our
 * session as its outer one and another valid session as its own is a nested session's; anything else that tries is
 * refused, not let through without our labels. */
Test(proxy, a_create_that_only_looks_nested_is_refused) {
  static const char *const bodies[] = {
      "{\"Labels\":{\"" AG_LABEL_OUTER "\":\"" SESSION "\",\"" AG_LABEL_SESSION "\":\"" OTHER "\"},\"Labels\":null}",
      "{\"Labels\":{\"" AG_LABEL_OUTER "\":\"" SESSION "\",\"" AG_LABEL_SESSION "\":\"" OTHER "\",\"" AG_LABEL_OUTER
      "\":\"00000000000000000000000000000000\"}}",
      "{\"Labels\":{\"" AG_LABEL_OUTER "\":\"" SESSION "\",\"" AG_LABEL_SESSION "\":\"x\"}}",
  };
  for (size_t i = 0; i < ELEMENTSOF(bodies); i++) {
    char req[1024];
    request(req, sizeof(req), "/volumes/create", bodies[i]);
    struct out o;
    feed(req, strlen(req), 0, &o);
    assert_refused(&o, "label", bodies[i]);
    out_free(&o);
  }
}

struct volumes_seen {
  char names[4][64];
  int n, fail;
  size_t engine_len; /* what had reached the engine when the volume was asked for */
  const ca_buf *engine;
};

static int see_volume(void *ctx, const char *name, ca_error **err) {
  struct volumes_seen *v = ctx;
  if (v->n < 4)
    snprintf(v->names[v->n++], sizeof(v->names[0]), "%s", name);
  v->engine_len = v->engine->len;
  return v->fail ? ca_error_set(err, EIO, "the engine said 500") : 0;
}

Test(proxy, bind_volumes_exist_before_the_create_is_forwarded) {
  char req[1024];
  request(req, sizeof(req), "/v1.41/containers/create",
          "{\"Image\":\"b\",\"HostConfig\":{\"Binds\":[\"data:/x\",\"/h:/y\"]}}");
  for (int fail = 0; fail < 2; fail++) {
    struct conn_sim c;
    sim_new(&c);
    struct volumes_seen v = {.fail = fail, .engine = &c.engine};
    ag_proxy_req_set_volume_fn(c.r, see_volume, &v);
    int k = sim_client(&c, req);
    cr_assert_eq(v.n, 1);
    cr_assert_str_eq(v.names[0], "data");
    cr_assert_eq(v.engine_len, 0, "the create went out before its volume was made");
    if (!fail) {
      cr_assert_eq(k, AG_PROXY_GO);
      cr_assert_not_null(strstr(ca_buf_str(&c.engine), SESSION));
    } else {
      cr_assert_eq(k, AG_PROXY_CLOSE);
      cr_assert_eq(c.engine.len, 0);
      cr_assert(strncmp(ca_buf_str(&c.client), "HTTP/1.1 502 ", 13) == 0, "%s", ca_buf_str(&c.client));
      cr_assert_not_null(strstr(ca_buf_str(&c.client), "could not create volume data"), "%s", ca_buf_str(&c.client));
    }
    sim_free(&c);
  }
  /* Network and volume creates bind nothing. */
  request(req, sizeof(req), "/networks/create", "{\"Name\":\"n\",\"HostConfig\":{\"Binds\":[\"data:/x\"]}}");
  struct conn_sim c;
  sim_new(&c);
  struct volumes_seen v = {.engine = &c.engine};
  ag_proxy_req_set_volume_fn(c.r, see_volume, &v);
  sim_client(&c, req);
  cr_assert_eq(v.n, 0);
  sim_free(&c);
}

/* A session nested in ours labeled its create, volume mounts included: both stay its own (nesting.h). */
Test(proxy, nested_sessions_volume_mounts_keep_their_labels) {
  char req[1024], head[1024];
  request(req, sizeof(req), "/containers/create",
          "{\"Labels\":{\"" AG_LABEL_SESSION "\":\"" OTHER "\",\"" AG_LABEL_OUTER "\":\"" SESSION "\"},"
          "\"HostConfig\":{\"Mounts\":[{\"Type\":\"volume\",\"Source\":\"d\",\"Target\":\"/x\",\"VolumeOptions\":"
          "{\"Labels\":{\"" AG_LABEL_SESSION "\":\"" OTHER "\",\"" AG_LABEL_OUTER "\":\"" SESSION "\"}}}]}}");
  struct out o;
  feed(req, strlen(req), 0, &o);
  cJSON *body = parse_request(&o.engine, head, sizeof(head));
  cr_assert_not_null(body, "%s", ca_buf_str(&o.engine));
  cr_assert_str_eq(label(body, AG_LABEL_SESSION), OTHER);
  cr_assert_str_eq(mount_label(body, 0, AG_LABEL_SESSION), OTHER);
  cr_assert_null(mount_label(body, 0, AG_LABEL_MODE), "the outer proxy added its labels to a nested create's volume");
  cJSON_Delete(body);
  out_free(&o);
}

/* ---- what the engine created, and the session's end ---- */

struct recorded {
  char ids[8][80];
  int n;
  bool ending;
};

static void note_created(void *ctx, char kind, const char *id) {
  struct recorded *rec = ctx;
  if (rec->n < 8)
    snprintf(rec->ids[rec->n++], sizeof(rec->ids[0]), "%c:%s", kind, id);
}

static bool is_ending(void *ctx) {
  return ((struct recorded *)ctx)->ending;
}

static void sim_hooked(struct conn_sim *c, struct recorded *rec) {
  sim_new(c);
  ag_proxy_req_set_hooks(c->r, &(struct ag_proxy_hooks){.created = note_created, .ending = is_ending, .ctx = rec});
}

/* The client was answered 503 because the session is ending, and nothing reached the engine. */
static void assert_ending_503(const struct conn_sim *c) {
  cr_assert_eq(c->engine.len, 0, "a create reached the engine while the session ends: %s", ca_buf_str(&c->engine));
  cr_assert(strncmp(ca_buf_str(&c->client), "HTTP/1.1 503 ", 13) == 0, "%s", ca_buf_str(&c->client));
  cr_assert_not_null(strstr(ca_buf_str(&c->client), "the session is ending"), "%s", ca_buf_str(&c->client));
}

/* The session's end begins while the proxy makes a volume that a container create binds. */
static int volume_then_end(void *ctx, const char *name, ca_error **err) {
  (void)name;
  (void)err;
  ((struct recorded *)ctx)->ending = true;
  return 0;
}

/* A create whose volumes were made while the session's end began is not sent: the end may have listed already (the
 * volumes it made are counted as creates in flight, so the end watches for them). */
Test(proxy, a_create_whose_volumes_were_made_while_the_session_began_to_end_is_answered_503) {
  struct recorded rec = {0};
  struct conn_sim c;
  sim_hooked(&c, &rec);
  ag_proxy_req_set_volume_fn(c.r, volume_then_end, &rec);
  char req[512];
  request(req, sizeof(req), "/v1.41/containers/create", "{\"Image\":\"b\",\"HostConfig\":{\"Binds\":[\"data:/x\"]}}");
  cr_assert_eq(sim_client(&c, req), AG_PROXY_CLOSE);
  assert_ending_503(&c);
  sim_free(&c);
}

static void create_answered(struct conn_sim *c, const char *target, const char *body, const char *answer) {
  char req[1024];
  request(req, sizeof(req), target, body);
  cr_assert_eq(sim_client(c, req), AG_PROXY_GO);
  cr_assert(ag_proxy_req_create_in_flight(c->r) || strstr(body, AG_LABEL_KEEP), "%s", body);
  /* In two pieces, as an engine may send it. */
  size_t half = strlen(answer) / 2;
  char first[512];
  snprintf(first, sizeof(first), "%.*s", (int)half, answer);
  sim_engine(c, first);
  sim_engine(c, answer + half);
  cr_assert_not(ag_proxy_req_create_in_flight(c->r));
}

Test(proxy, ids_of_what_the_engine_created_are_recorded) {
  struct recorded rec = {0};
  struct conn_sim c;
  sim_hooked(&c, &rec);
  static const char cid[] = "{\"Id\":\"c0ffee\",\"Warnings\":[]}", vol[] = "{\"Name\":\"v1\",\"Driver\":\"local\"}",
                    net[] = "{\"Id\":\"beef\",\"Warning\":\"\"}", conflict[] = "{\"message\":\"Conflict. in use\"}";
  char answer[512];
  snprintf(answer, sizeof(answer), "HTTP/1.1 201 Created\r\nContent-Length: %zu\r\n\r\n%s", strlen(cid), cid);
  create_answered(&c, "/v1.41/containers/create", "{}", answer);
  snprintf(answer, sizeof(answer), "HTTP/1.1 201 Created\r\nContent-Length: %zu\r\n\r\n%s", strlen(vol), vol);
  create_answered(&c, "/volumes/create", "{\"Name\":\"v1\"}", answer);
  snprintf(answer, sizeof(answer), "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n0\r\n\r\n",
           strlen(net), net);
  create_answered(&c, "/networks/create", "{\"Name\":\"n\"}", answer);
  snprintf(answer, sizeof(answer), "HTTP/1.1 409 Conflict\r\nContent-Length: %zu\r\n\r\n%s", strlen(conflict),
           conflict);
  create_answered(&c, "/containers/create?name=x", "{}", answer);
  /* Kept by its creator's wish: not the end's to remove. */
  snprintf(answer, sizeof(answer), "HTTP/1.1 201 Created\r\nContent-Length: %zu\r\n\r\n%s", strlen(cid), cid);
  create_answered(&c, "/containers/create", "{\"Labels\":{\"" AG_LABEL_KEEP "\":\"true\"}}", answer);
  /* Not a create. */
  sim_client(&c, "GET /containers/json HTTP/1.1\r\nHost: d\r\n\r\n");
  sim_engine(&c, "HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{\"Id\":\"nope\"}\r\n");
  cr_assert_eq(rec.n, 3);
  cr_assert_str_eq(rec.ids[0], "c:c0ffee");
  cr_assert_str_eq(rec.ids[1], "v:v1");
  cr_assert_str_eq(rec.ids[2], "n:beef");
  sim_free(&c);
}

Test(proxy, creates_get_503_once_the_session_is_ending) {
  struct recorded rec = {.ending = true};
  struct conn_sim c;
  sim_hooked(&c, &rec);
  sim_client(&c, "GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n");
  cr_assert_not_null(strstr(ca_buf_str(&c.engine), "GET /_ping"), "other requests still pass");
  ca_buf_reset(&c.engine);
  sim_engine(&c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK");
  ca_buf_reset(&c.client);
  char req[512];
  request(req, sizeof(req), "/v1.41/containers/create", "{\"Image\":\"b\"}");
  cr_assert_eq(sim_client(&c, req), AG_PROXY_CLOSE);
  assert_ending_503(&c);
  sim_free(&c);
}

/* The 503 comes once the create's body was read, so that a client still writing it reads the answer (not a broken
 * pipe); a create whose body completes after the end began is refused too, though its head came before. */
Test(proxy, a_create_is_answered_503_once_its_body_was_read) {
  static const char head[] = "POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: 2\r\n\r\n";
  for (int flip = 0; flip < 2; flip++) {
    struct recorded rec = {.ending = !flip};
    struct conn_sim c;
    sim_hooked(&c, &rec);
    cr_assert_eq(sim_client(&c, head), AG_PROXY_GO);
    cr_assert_eq(c.client.len, 0, "answered before the body: %s", ca_buf_str(&c.client));
    rec.ending = true;
    cr_assert_eq(sim_client(&c, "{}"), AG_PROXY_CLOSE);
    assert_ending_503(&c);
    sim_free(&c);
  }
  /* A client that waits with Expect: 100-continue sends no body before an answer: it gets the 503 at once. */
  struct recorded rec = {.ending = true};
  struct conn_sim c;
  sim_hooked(&c, &rec);
  cr_assert_eq(sim_client(&c, "POST /containers/create HTTP/1.1\r\nHost: d\r\nExpect: 100-continue\r\n"
                              "Content-Length: 2\r\n\r\n"),
               AG_PROXY_CLOSE);
  assert_ending_503(&c);
  sim_free(&c);
}

/* ---- images the session builds ---- */

/* Percent-decodes the query value at v, up to the next '&', into out (NUL-terminated, cut to size); its length. */
static size_t decode_value(const char *v, char *out, size_t size) {
  size_t n = 0;
  for (; *v && *v != '&' && n + 1 < size; v++) {
    char hex[3] = {v[1], v[1] ? v[2] : 0, 0};
    out[n++] = *v == '%' ? (char)strtol(hex, NULL, 16) : *v;
    v += *v == '%' && v[1] && v[2] ? 2 : 0;
  }
  out[n] = '\0';
  return n;
}

/* The labels parameter of a rewritten build target, decoded and parsed. */
static cJSON *build_labels_of(const char *url) {
  const char *l = strstr(url, "labels=");
  cr_assert_not_null(l, "%s", url);
  char text[4096];
  decode_value(l + 7, text, sizeof(text));
  cJSON *j = cJSON_Parse(text);
  cr_assert(cJSON_IsObject(j), "%s", text);
  return j;
}

static const char *build_label(const cJSON *j, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The labels parameter's members in the agent's namespace, as "k=v;" in their order (static buffer). */
static const char *agent_labels(const cJSON *j) {
  static char text[1024];
  size_t n = 0;
  text[0] = '\0';
  for (const cJSON *it = j->child; it; it = it->next)
    if (strncmp(it->string, AG_LABEL_PREFIX, strlen(AG_LABEL_PREFIX)) == 0 && cJSON_IsString(it))
      n += (size_t)snprintf(text + n, sizeof(text) - n, "%s=%s;", it->string, it->valuestring);
  return text;
}

/* An image gets one label of the agent's, built-by=<session>: the engine copies an image's labels into every container
 * made from it, also outside the session, and a session label there would make that container the session's. */
Test(proxy, builds_carry_built_by_alone_and_classic_ones_forcerm) {
  char *url = NULL;
  cr_assert_eq(ag_proxy_rewrite_build_url(SESSION, labels, "/v1.41/build?t=x%3Ay&rm=1", 25, &url, NULL), 0);
  cr_assert(strncmp(url, "/v1.41/build?t=x%3Ay&rm=1&labels=", 33) == 0, "%s", url);
  cr_assert_not_null(strstr(url, "&forcerm=1"), "%s", url);
  cJSON *j = build_labels_of(url);
  cr_assert_str_eq(agent_labels(j), AG_LABEL_BUILT_BY "=" SESSION ";");
  cJSON_Delete(j);
  free(url);
  /* The client's labels kept (keep=true among them), its forcerm=0 kept, BuildKit (version=2) gets no forcerm. */
  static const char with[] =
      "/build?labels=%7B%22a%22%3A%22b%22%2C%22io.cleanup-agent.keep%22%3A%22true%22%7D&forcerm=0";
  cr_assert_eq(ag_proxy_rewrite_build_url(SESSION, labels, with, strlen(with), &url, NULL), 0);
  cr_assert_not_null(strstr(url, "&forcerm=0"), "%s", url);
  cr_assert_null(strstr(url, "forcerm=1"), "%s", url);
  j = build_labels_of(url);
  cr_assert_str_eq(build_label(j, "a"), "b");
  cr_assert_str_eq(agent_labels(j), AG_LABEL_KEEP "=true;" AG_LABEL_BUILT_BY "=" SESSION ";");
  cJSON_Delete(j);
  free(url);
  cr_assert_eq(ag_proxy_rewrite_build_url(SESSION, labels, "/build?version=2", 16, &url, NULL), 0);
  cr_assert_null(strstr(url, "forcerm"), "%s", url);
  cr_assert_not_null(strstr(url, "labels="), "%s", url);
  free(url);
  cr_assert_eq(ag_proxy_rewrite_build_url(SESSION, labels, "/build", 6, &url, NULL), 0);
  cr_assert(strncmp(url, "/build?labels=", 14) == 0, "%s", url);
  free(url);
  /* A foreign session label is refused as on a create; so are the session's own labels (an image carries none) and a
   * built-by that names another session. */
  static const char *const refused[] = {
      "/build?labels=%7B%22io.cleanup-agent.session%22%3A%22x%22%7D",
      "/build?labels=%7B%22io.cleanup-agent.session%22%3A%22" SESSION "%22%7D",
      "/build?labels=%7B%22io.cleanup-agent.managed%22%3A%22true%22%7D",
      "/build?labels=%7B%22io.cleanup-agent.built-by%22%3A%22" OTHER "%22%7D",
  };
  for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
    ca_error *err = NULL;
    cr_assert_eq(ag_proxy_rewrite_build_url(SESSION, labels, refused[i], strlen(refused[i]), &url, &err), -EPERM, "%s",
                 refused[i]);
    cr_assert_not_null(strstr(err->msg, i ? "namespace" : "names another session"), "%s", err->msg);
    ca_error_free(err);
  }
}

/* A nested session's proxy adds built-by and the outer label (for the proxies in front of it); the outer proxy lets
 * such a build through, and the outermost drops the outer label, so the image names the inner session by built-by
 * alone. */
Test(proxy, nested_builds_carry_the_inner_built_by_alone) {
  static const char *const inner[] = {AG_LABEL_SESSION "=" OTHER, AG_LABEL_OUTER "=" SESSION, NULL};
  char *url = NULL;
  cr_assert_eq(ag_proxy_rewrite_build_url(OTHER, inner, "/build", 6, &url, NULL), 0);
  cJSON *j = build_labels_of(url);
  cr_assert_str_eq(agent_labels(j), AG_LABEL_BUILT_BY "=" OTHER ";" AG_LABEL_OUTER "=" SESSION ";");
  cJSON_Delete(j);
  char *outer = NULL;
  cr_assert_eq(ag_proxy_rewrite_build_url(SESSION, labels, url, strlen(url), &outer, NULL), 0);
  j = build_labels_of(outer);
  cr_assert_str_eq(agent_labels(j), AG_LABEL_BUILT_BY "=" OTHER ";");
  cJSON_Delete(j);
  free(outer);
  free(url);
}

Test(proxy, build_request_line_is_rewritten_and_the_body_passes) {
  static const char req[] = "POST /v1.41/build?t=img HTTP/1.1\r\nHost: d\r\nContent-Type: application/x-tar\r\n"
                            "Content-Length: 5\r\n\r\nTAR!!";
  for (size_t step = 0; step < 4; step++) {
    struct out o;
    feed(req, strlen(req), step * 5, &o);
    const char *e = ca_buf_str(&o.engine);
    cr_assert(strncmp(e, "POST /v1.41/build?t=img&labels=", 31) == 0, "%s", e);
    cr_assert_not_null(strstr(e, "&forcerm=1 HTTP/1.1\r\nHost: d\r\nContent-Type: application/x-tar\r\n"
                                 "Content-Length: 5\r\n\r\nTAR!!"),
                       "%s", e);
    cr_assert_eq(o.client.len, 0);
    out_free(&o);
  }
  /* A refused build: a 400, nothing to the engine. */
  static const char bad[] = "POST /build?labels=%7Bnot-json HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n";
  struct out o;
  feed(bad, strlen(bad), 0, &o);
  assert_refused(&o, "", "a build with labels that are not JSON");
  out_free(&o);
}

Test(proxy, builds_that_keep_step_containers) {
  const char *keep[] = {"/build?rm=0&forcerm=0", "/v1.41/build?forcerm=False&rm=False", "/build?forcerm=&t=x",
                        "/build?forcerm=none&forcerm=1"};
  const char *not_kept[] = {"/build?rm=0&forcerm=1", "/build?forcerm=0&version=2", "/build?forcerm=true&forcerm=0",
                            "/build?t=x&forcermx=0"};
  for (size_t i = 0; i < 4; i++) {
    cr_assert(ag_proxy_build_keeps_steps(keep[i], strlen(keep[i])), "%s", keep[i]);
    cr_assert_not(ag_proxy_build_keeps_steps(not_kept[i], strlen(not_kept[i])), "%s", not_kept[i]);
  }
}

/* A classic build that keeps its step containers (the docker CLI's --rm=false sends rm=0 alone) goes as it is: its
 * "Running in <id>" lines name them, and the end removes them. A quiet one (q) that keeps them all names none when it
 * succeeds, so the engine removes them as it goes: forcerm=1 in place of the client's; one that keeps only a failed
 * step's gives its output when it fails. rm= reads as absent (true), a value with white space as the engine trims it,
 * and q with a byte beyond ASCII as quiet. A parameter the engine would skip (a ';', a bad escape) is refused. */
Test(proxy, a_build_keeps_its_step_containers_when_its_output_names_them) {
  static const struct {
    const char *url;
    bool forced, keeps;
  } cases[] = {
      {"/build?rm=0", false, true},
      {"/build?rm=%20no%20&t=x", false, true},
      {"/build?q=0&rm=0", false, true},
      {"/build?rm=", true, false},
      {"/build?q=1&rm=0", true, false},
      {"/build?q=1&rm=0&forcerm=0", true, false},
      {"/build?forcerm=%200&q=true", false, true},
      {"/build?q=1", true, false},
      {"/build?q=%C2%A0&rm=0", true, false},
      {"/build?q=1&rm=0&version=2", false, false},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char *url = NULL;
    cr_assert_eq(ag_proxy_rewrite_build_url(SESSION, labels, cases[i].url, strlen(cases[i].url), &url, NULL), 0);
    const char *forcerm = strstr(url, "forcerm");
    if (cases[i].forced)
      cr_expect(forcerm && streq(forcerm, "forcerm=1"), "%s: want forcerm=1 alone, at the end: %s", cases[i].url, url);
    else
      cr_expect_null(strstr(url, "forcerm=1"), "%s: want the client's parameters as they are: %s", cases[i].url, url);
    cr_expect_eq(ag_proxy_build_keeps_steps(url, strlen(url)), cases[i].keeps, "%s -> %s", cases[i].url, url);
    free(url);
  }
  /* A forced build keeps no forcerm of the client's, however its name is spelled. */
  char *url = NULL;
  const char *encoded = "/build?force%72m=0&q=1&rm=0";
  cr_assert_eq(ag_proxy_rewrite_build_url(SESSION, labels, encoded, strlen(encoded), &url, NULL), 0);
  cr_expect(!strstr(url, "force%72m") && streq(strstr(url, "forcerm"), "forcerm=1"), "%s", url);
  free(url);
  static const char *const skipped[] = {"/build?rm=0&forcerm=%zz", "/build?forcerm=1;&rm=0", "/build?t=a%2"};
  for (size_t i = 0; i < sizeof(skipped) / sizeof(skipped[0]); i++) {
    url = NULL;
    ca_error *err = NULL;
    cr_assert_eq(ag_proxy_rewrite_build_url(SESSION, labels, skipped[i], strlen(skipped[i]), &url, &err), -EINVAL, "%s",
                 skipped[i]);
    cr_expect_not_null(strstr(err->msg, "which the engine skips"), "%s", err->msg);
    ca_error_free(err);
  }
}

/* The engine decodes a parameter's name and reads its first value: a build the proxy took for BuildKit, or whose
 * labels it did not see, would leave unlabeled step containers or an image without built-by. */
Test(proxy, build_parameters_are_read_as_the_engine_reads_them) {
  /* The first version is 1: a classic build, which gets forcerm=1 (the client did not set forcerm). */
  char *url = NULL;
  const char *two = "/build?version=1&version=2";
  cr_assert_eq(ag_proxy_rewrite_build_url(SESSION, labels, two, strlen(two), &url, NULL), 0);
  cr_assert_not_null(strstr(url, "forcerm=1"), "a classic build without forcerm=1: %s", url);
  free(url);
  cr_assert(ag_proxy_build_keeps_steps("/build?version=1&version=2&forcerm=0", 36), "a classic build keeps its steps");
  cr_assert(ag_proxy_build_keeps_steps("/build?force%72m=0", 18), "an encoded forcerm was not read");
  /* An encoded labels parameter gets built-by like a plain one. */
  const char *enc = "/build?label%73=%7B%22a%22%3A%22b%22%7D";
  cr_assert_eq(ag_proxy_rewrite_build_url(SESSION, labels, enc, strlen(enc), &url, NULL), 0);
  cJSON *j = build_labels_of(url);
  cr_assert_str_eq(build_label(j, AG_LABEL_BUILT_BY), SESSION, "%s", url);
  cr_assert_str_eq(build_label(j, "a"), "b", "%s", url);
  cr_assert_null(strstr(url, "label%73"), "the client's labels went too: %s", url);
  cJSON_Delete(j);
  free(url);
}

/* Parameters in a form body come before the query's to the engine, and the proxy does not rewrite bodies of builds:
 * refused. */
Test(proxy, a_build_with_a_form_body_is_refused) {
  static const char req[] = "POST /build HTTP/1.1\r\nHost: d\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                            "Content-Length: 18\r\n\r\nlabels=%7B%7D&rm=0";
  struct out o;
  feed(req, strlen(req), 0, &o);
  assert_refused(&o, "form", "a build with a form body");
  out_free(&o);
}

/* The changes parameters of target, decoded, each followed by ';'. */
static char *changes_of(const char *target) {
  size_t size = strlen(target) + 1, n = 0;
  char *out = calloc(1, size);
  for (const char *c = strstr(target, "changes="); c; c = strstr(c + 1, "changes=")) {
    if (c[-1] != '?' && c[-1] != '&')
      continue;
    n += decode_value(c + 8, out + n, size - n);
    out[n++] = ';';
  }
  return out;
}

/* A committed image carries the labels of its container, and every container made from it carries them too, also
 * one made outside the session (a deployment's `docker run` of the image): so that no collection takes that for the
 * session's, the proxy adds a change that empties every label of the agent's that names a session or its owner (the
 * engine can set a label but not remove one) and names the session by built-by, as on what it builds. Its change
 * comes after the client's, so that it wins; the head's other lines and the body pass as sent. */
Test(proxy, a_commit_names_the_session_by_built_by_alone) {
  const char *targets[] = {"/v1.41/commit?container=c1&repo=img&tag=1",
                           "/commit",
                           "/commit?",
                           "/v1.41/%63ommit?container=c1",
                           "http://docker/v1.43/commit?container=c1",
                           "/commit?container=c1&changes=LABEL%20io.cleanup-agent.session%3D" OTHER,
                           "/commit?container=c1&changes=ENV%20X%3D%5C"};
  /* The head's rest and the body, as sent: plain or chunked, in HTTP/1.1 or 1.0. */
  const char *rests[] = {" HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n"
                         "{\"Labels\":{\"a\":\"b\"}}\r\n",
                         " HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
                         " HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}"};
  /* A change of the client's that ends in an escape swallows the line after it when Docker joins them: the first of
   * the proxy's may go, the rest must come whole, in this order, last. */
  char want[1024] = "";
  const char *emptied[] = {AG_LABEL_SESSION,     AG_LABEL_OUTER,   AG_LABEL_MANAGED, AG_LABEL_HOST,
                           AG_LABEL_MACHINE,     AG_LABEL_BOOT_ID, AG_LABEL_PIDNS,   AG_LABEL_OWNER_PID,
                           AG_LABEL_OWNER_START, AG_LABEL_CREATED, AG_LABEL_EXPIRES, AG_LABEL_MODE};
  snprintf(want, sizeof(want), "LABEL " AG_LABEL_BUILT_BY "=\"\";");
  for (size_t k = 0; k < ELEMENTSOF(emptied); k++)
    snprintf(want + strlen(want), sizeof(want) - strlen(want), "LABEL %s=\"\";", emptied[k]);
  strcat(want, "LABEL " AG_LABEL_BUILT_BY "=\"" SESSION "\";");
  for (size_t i = 0; i < ELEMENTSOF(targets) * ELEMENTSOF(rests); i++)
    for (size_t step = 0; step < 3; step++) {
      const char *t = targets[i % ELEMENTSOF(targets)], *rest = rests[i / ELEMENTSOF(targets)];
      char req[1024];
      snprintf(req, sizeof(req), "POST %s%s", t, rest);
      struct out o;
      feed(req, strlen(req), step * 7, &o);
      const char *e = ca_buf_str(&o.engine), *sp = strchr(e + 5, ' ');
      cr_assert_not_null(sp, "%s", e);
      cr_assert_eq(o.client.len, 0, "%s", ca_buf_str(&o.client));
      char target[1024];
      snprintf(target, sizeof(target), "%.*s", (int)(sp - e - 5), e + 5);
      cr_assert(strncmp(target, t, strlen(t)) == 0, "the client's target is kept: %s", target);
      cr_assert_str_eq(sp, rest);
      char *changes = changes_of(target);
      size_t cl = strlen(changes), wl = strlen(want);
      cr_assert(cl >= wl && streq(changes + cl - wl, want), "the last changes are not the proxy's, one label each: %s",
                changes);
      free(changes);
      out_free(&o);
    }
  /* Other requests of the name pass as sent. */
  static const char get[] = "GET /v1.41/commit?container=c1 HTTP/1.1\r\nHost: d\r\n\r\n";
  struct out o;
  feed(get, strlen(get), 0, &o);
  cr_assert_str_eq(ca_buf_str(&o.engine), get);
  out_free(&o);
}

/* What the session cannot label and remove would outlive it: swarm services, secrets and configs, a swarm itself, an
 * installed plugin. Refused under every spelling the engine routes alike; their reads, and other POSTs, go through. */
Test(proxy, creates_that_would_outlive_the_session_are_refused) {
  static const char *const targets[] = {"/services/create",
                                        "/v1.41/services/create?x=1",
                                        "/secrets/create",
                                        "/v1.41/configs/create",
                                        "/swarm/init",
                                        "/v1.24/swarm/join",
                                        "/plugins/pull?remote=x",
                                        "/plugins/create?name=x",
                                        "/%73ervices/create",
                                        "http://docker/v1.41/services/create"};
  for (size_t i = 0; i < ELEMENTSOF(targets); i++) {
    char req[1024];
    request(req, sizeof(req), targets[i], "{\"Name\":\"x\"}");
    struct out o;
    feed(req, strlen(req), 0, &o);
    assert_refused(&o, "outlive", targets[i]);
    cr_assert_not_null(strstr(ca_buf_str(&o.client), "--no-docker-proxy"), "%s: no way out named", targets[i]);
    out_free(&o);
    feed(req, strlen(req), 5, &o); /* in pieces: the same */
    assert_refused(&o, "outlive", targets[i]);
    out_free(&o);
  }
  /* The answer comes once the body was read: a client still writing it would not read an earlier one. */
  struct ag_proxy_req *r = ag_proxy_req_new(SESSION, labels);
  ca_buf engine = CA_BUF_INIT(4096), client = CA_BUF_INIT(4096);
  ca_error *err = NULL;
  static const char head[] = "POST /secrets/create HTTP/1.1\r\nHost: d\r\nContent-Length: 4\r\n\r\n";
  cr_assert_eq(ag_proxy_req_feed(r, head, strlen(head), &engine, &client, &err), AG_PROXY_GO);
  cr_assert_eq(client.len + engine.len, 0, "answered before the body: %s", ca_buf_str(&client));
  cr_assert_eq(ag_proxy_req_feed(r, "{}{}", 4, &engine, &client, &err), AG_PROXY_CLOSE);
  cr_assert(strncmp(ca_buf_str(&client), "HTTP/1.1 400 ", 13) == 0, "%s", ca_buf_str(&client));
  cr_assert_eq(engine.len, 0, "%s", ca_buf_str(&engine));
  ag_proxy_req_free(r);
  ca_buf_free(&engine);
  ca_buf_free(&client);
  /* A chunked body is read to its end the same way; a client that waits with Expect: 100-continue sends no body
   * before an answer, and gets the refusal at once. */
  static const char *const odd[] = {
      "POST /v1.41/configs/create HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
      "POST /services/create HTTP/1.1\r\nHost: d\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n"};
  for (size_t i = 0; i < ELEMENTSOF(odd); i++) {
    struct out o;
    feed(odd[i], strlen(odd[i]), 3, &o);
    assert_refused(&o, "outlive", odd[i]);
    out_free(&o);
  }
  static const char *const passed[] = {"/services/x/update", "/swarm/leave?force=1", "/plugins/x/enable"};
  for (size_t i = 0; i < ELEMENTSOF(passed); i++) {
    char req[1024];
    request(req, sizeof(req), passed[i], "{}");
    struct out o;
    feed(req, strlen(req), 0, &o);
    cr_assert_str_eq(ca_buf_str(&o.engine), req, "%s: not forwarded as it is", passed[i]);
    cr_assert_eq(o.client.len, 0, "%s: answered by the proxy: %s", passed[i], ca_buf_str(&o.client));
    out_free(&o);
  }
  static const char *const reads[] = {"GET /v1.41/services HTTP/1.1\r\nHost: d\r\n\r\n",
                                      "HEAD /services/create HTTP/1.1\r\nHost: d\r\n\r\n"};
  for (size_t i = 0; i < ELEMENTSOF(reads); i++) {
    struct out o;
    feed(reads[i], strlen(reads[i]), 0, &o);
    cr_assert_str_eq(ca_buf_str(&o.engine), reads[i], "not forwarded as it is");
    out_free(&o);
  }
}

/* The step containers of a build that keeps them are recorded from its progress stream, lines split anywhere; a line
 * of a step's own output that merely holds "Running in <hex>" names nothing. */
Test(proxy, step_containers_of_a_build_that_keeps_them_are_recorded) {
  struct recorded rec = {0};
  struct conn_sim c;
  sim_hooked(&c, &rec);
  cr_assert_eq(sim_client(&c, "POST /v1.41/build?rm=0&forcerm=0 HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n"),
               AG_PROXY_GO);
  cr_assert(ag_proxy_req_create_in_flight(c.r));
  static const char stream[] = "{\"stream\":\"Step 1/2 : FROM busybox\\n\"}\r\n"
                               "{\"stream\":\" ---\\u003e Running in 3f2a1b4c5d6e\\n\"}\r\n"
                               "{\"stream\":\"Running in nothex\\n\"}\r\n"
                               "{\"stream\":\"log:  ---\\u003e Running in 0a0b0c0d0e0f\\n\"}\r\n"
                               "{\"stream\":\" ---\\u003e Running in 0a0b0c0d0e0f, said the test\\n\"}\r\n"
                               "{\"stream\":\" ---\\u003e Running in abc\\n\"}\r\n"
                               "{\"stream\":\" ---> Running in 0a1b2c3d4e5f\\n\"}\r\n"
                               "{\"stream\":\" ---\\u003e Running in 0123456789abcdef0123\\n\"}\r\n";
  char answer[1024];
  snprintf(answer, sizeof(answer), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n0\r\n\r\n",
           strlen(stream), stream);
  for (size_t i = 0; answer[i]; i += 7) { /* in pieces of 7 bytes */
    char piece[8];
    snprintf(piece, sizeof(piece), "%.7s", answer + i);
    sim_engine(&c, piece);
  }
  cr_assert_eq(rec.n, 3);
  cr_assert_str_eq(rec.ids[0], "c:3f2a1b4c5d6e");
  cr_assert_str_eq(rec.ids[1], "c:0a1b2c3d4e5f");
  cr_assert_str_eq(rec.ids[2], "c:0123456789abcdef0123");
  cr_assert_not(ag_proxy_req_create_in_flight(c.r));
  sim_free(&c);
}

/* ---- what the receipt learns: who created what, and which DELETEs the engine accepted ---- */

struct observed {
  struct recorded rec;
  char info[4][512];
  int n_info;
  char removed[4][80];
  int n_removed;
};

static void note_info(void *ctx, const struct ag_proxy_create_info *i) {
  struct observed *o = ctx;
  if (o->n_info < 4)
    snprintf(o->info[o->n_info++], sizeof(o->info[0]), "%c id=%s name=%s image=%s ua=%s tc=%s project=%s keep=%d",
             i->kind, i->id, i->name ? i->name : "-", i->image ? i->image : "-", i->user_agent ? i->user_agent : "-",
             i->tc_session ? i->tc_session : "-", i->compose_project ? i->compose_project : "-", i->keep);
}

static void note_created_obs(void *ctx, char kind, const char *id) {
  note_created(&((struct observed *)ctx)->rec, kind, id);
}

static void note_removed(void *ctx, char kind, const char *target) {
  struct observed *o = ctx;
  if (o->n_removed < 4)
    snprintf(o->removed[o->n_removed++], sizeof(o->removed[0]), "%c:%s", kind, target);
}

static void exchange(struct conn_sim *c, const char *req, const char *answer) {
  cr_assert_eq(sim_client(c, req), AG_PROXY_GO);
  sim_engine(c, answer);
}

Test(proxy, the_receipt_learns_each_creates_creator_and_the_deletes_the_engine_accepted) {
  struct observed o = {0};
  struct conn_sim c;
  sim_new(&c);
  ag_proxy_req_set_hooks(
      c.r, &(struct ag_proxy_hooks){
               .created = note_created_obs, .created_info = note_info, .removed = note_removed, .ctx = &o});
  static const char created[] = "HTTP/1.1 201 Created\r\nContent-Length: 15\r\n\r\n{\"Id\":\"c0ffee\"}";
  static const char body[] = "{\"Image\":\"busybox\",\"Labels\":{\"com.docker.compose.project\":\"e2e\"}}";
  char req[1024];
  snprintf(req, sizeof(req),
           "POST /v1.41/containers/create?name=db%%2D1 HTTP/1.1\r\nHost: d\r\nUser-Agent: compose/2\r\n"
           "X-Tc-Sid: tc-1\r\nContent-Length: %zu\r\n\r\n%s",
           strlen(body), body);
  exchange(&c, req, created);
  /* Kept: the receipt lists it, the end's list of ids does not. */
  request(req, sizeof(req), "/containers/create", "{\"Labels\":{\"" AG_LABEL_KEEP "\":\"true\"}}");
  exchange(&c, req, created);
  exchange(&c, "DELETE /v1.41/containers/c0ffee?force=1 HTTP/1.1\r\nHost: d\r\n\r\n",
           "HTTP/1.1 204 No Content\r\n\r\n");
  exchange(&c, "DELETE /networks/n1 HTTP/1.1\r\nHost: d\r\n\r\n",
           "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}");
  exchange(&c, "DELETE /volumes/v1 HTTP/1.1\r\nHost: d\r\n\r\n", "HTTP/1.1 204 No Content\r\n\r\n");
  exchange(&c, "DELETE /containers/c0ffee/x HTTP/1.1\r\nHost: d\r\n\r\n", "HTTP/1.1 204 No Content\r\n\r\n");
  cr_assert_eq(o.n_info, 2);
  cr_assert_str_eq(o.info[0], "c id=c0ffee name=db-1 image=busybox ua=compose/2 tc=tc-1 project=e2e keep=0");
  cr_assert_str_eq(o.info[1], "c id=c0ffee name=- image=- ua=test tc=- project=- keep=1");
  cr_assert_eq(o.rec.n, 1, "the kept one is not the end's to remove");
  cr_assert_eq(o.n_removed, 2, "only the DELETEs the engine answered 2xx");
  cr_assert_str_eq(o.removed[0], "c:c0ffee");
  cr_assert_str_eq(o.removed[1], "v:v1");
  sim_free(&c);
}
