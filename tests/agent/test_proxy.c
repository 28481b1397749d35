/* The Docker proxy's request direction, fed literal HTTP: label merge, create targets, framing, refusal, raw mode. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"
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

Test(proxy, refuses_a_foreign_session_label) {
  static const char *const bodies[] = {"{\"Labels\":{\"" AG_LABEL_SESSION "\":\"" OTHER "\"}}",
                                       "{\"Labels\":{\"" AG_LABEL_SESSION "\":5}}",
                                       "{\"labels\":{\"" AG_LABEL_SESSION "\":\"\"}}"};
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

Test(proxy, body_that_is_not_json_goes_as_it_is) {
  static const char *const bodies[] = {"{not json", "[1,2]", "\"s\"", "{\"Labels\":[\"a=b\"]}", ""};
  for (size_t i = 0; i < ELEMENTSOF(bodies); i++) {
    char req[1024], head[1024];
    request(req, sizeof(req), "/containers/create", bodies[i]);
    struct out o;
    feed(req, strlen(req), 0, &o);
    cJSON_Delete(parse_request(&o.engine, head, sizeof(head)));
    cr_assert_str_eq(o.engine.data + strlen(head), bodies[i]);
    out_free(&o);
  }
}

Test(proxy, body_over_the_cap_gets_413) {
  size_t n = AG_PROXY_BODY_MAX + 1;
  char head[256];
  snprintf(head, sizeof(head), "POST /volumes/create HTTP/1.1\r\nHost: d\r\nContent-Length: %zu\r\n\r\n", n);
  char *req = malloc(strlen(head) + n);
  cr_assert_not_null(req);
  memcpy(req, head, strlen(head));
  memset(req + strlen(head), ' ', n);
  struct out o;
  feed(req, strlen(head) + n, 1 << 20, &o);
  cr_assert_eq(o.engine.len, 0);
  cr_assert(strncmp(ca_buf_str(&o.client), "HTTP/1.1 413 ", 13) == 0, "%s", ca_buf_str(&o.client));
  cr_assert_not_null(strstr(ca_buf_str(&o.client), "16 MiB"));
  out_free(&o);
  free(req);
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

Test(proxy, upgrade_and_hijack_become_raw) {
  const char *up = "POST /v1.41/exec/abc/start HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                   "Content-Length: 2\r\n\r\n{}"
                   "POST /containers/create HTTP/1.1\r\n\x01\x02 raw stdin";
  struct out o;
  feed(up, strlen(up), 0, &o);
  cr_assert_str_eq(ca_buf_str(&o.engine), up, "bytes after an upgrade must pass as they are");
  out_free(&o);
  const char *hijack = "POST /v1.41/containers/abc/attach?stream=1 HTTP/1.1\r\nHost: d\r\n\r\n"
                       "POST /containers/create HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
  feed(hijack, strlen(hijack), 3, &o);
  cr_assert_str_eq(ca_buf_str(&o.engine), hijack);
  out_free(&o);
}

Test(proxy, bytes_that_are_not_http_pass_as_they_are) {
  static const char *const inputs[] = {"\x16\x03\x01 tls hello", "GET / HTTP/1.1\r\nbad header line\r\n\r\n",
                                       "NOTAMETHOD / HTTP/1.1\r\n\r\n"};
  for (size_t i = 0; i < ELEMENTSOF(inputs); i++) {
    struct out o;
    feed(inputs[i], strlen(inputs[i]), 0, &o);
    cr_assert_str_eq(ca_buf_str(&o.engine), inputs[i]);
    out_free(&o);
  }
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
#include <sys/socket.h>
#include <sys/stat.h>
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
  int c3 = unix_socket(sock, false); /* waits in the backlog */
  cr_assert_not(greeted(c3, 300), "a third connection was served beyond the cap of 2");
  close(c1);
  cr_assert(greeted(c3, 5000), "the third client must be served once a connection ended");

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
