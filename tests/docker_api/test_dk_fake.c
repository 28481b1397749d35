/* docker_api against a fake daemon: faults the real engine will not produce on demand. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "docker.h"
#include "fake_daemon.h"

struct scenario {
  const char *api_version; /* what /_ping reports; NULL: "1.41" */
  bool ping_without_version;
  fake_handler_fn fn; /* everything but /_ping */
  int counter;
};

static bool handler(void *ud, const struct fake_request *rq, int conn) {
  struct scenario *s = ud;
  if (strcmp(rq->path, "/_ping") == 0) {
    fake_reply(conn, 200, s->ping_without_version ? NULL : (s->api_version ? s->api_version : "1.41"), "text/plain",
               "OK");
    return true;
  }
  return s->fn(s, rq, conn);
}

static struct fake_daemon *fake;

static void setup(void) {
  signal(SIGPIPE, SIG_IGN);
  cr_assert_eq(dk_global_init(NULL), 0);
}

static void teardown(void) {
  fake_stop(fake);
  fake = NULL;
}

TestSuite(fake, .init = setup, .fini = teardown, .timeout = 60 * AG_TIMEOUT_SCALE);

static struct dk_client *connect_to(struct scenario *s, unsigned timeout_ms, int retries, size_t max_body) {
  fake = fake_start(handler, s);
  struct dk_client_options o = {
      .host = fake_host(fake), .timeout_ms = timeout_ms, .retries = retries, .max_body = max_body};
  struct dk_client *c = NULL;
  _cleanup_error_ ca_error *e = NULL;
  cr_assert_eq(dk_client_new(&o, &c, &e), 0, "connect: %s", e ? e->msg : "");
  return c;
}

/* ---- connecting -------------------------------------------------------------------------------------------- */

struct tcp_peer {
  int listener;
  int cloexec; /* of the client's socket, seen while it was connected: 1, 0, or -1 when not found */
};

/* Accepts one connection, looks up the client's end of it among this process's fds, and hangs up. */
static void *tcp_accept_one(void *userdata) {
  struct tcp_peer *p = userdata;
  p->cloexec = -1;
  struct sockaddr_in client;
  socklen_t len = sizeof(client);
  int conn = accept4(p->listener, (struct sockaddr *)&client, &len, SOCK_CLOEXEC);
  if (conn < 0)
    return NULL;
  for (int fd = 3; fd < 1024 && p->cloexec < 0; fd++) {
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    if (fd != conn && getsockname(fd, (struct sockaddr *)&a, &alen) == 0 && a.sin_family == AF_INET &&
        a.sin_port == client.sin_port && a.sin_addr.s_addr == client.sin_addr.s_addr)
      p->cloexec = (fcntl(fd, F_GETFD) & FD_CLOEXEC) ? 1 : 0;
  }
  close(conn);
  return NULL;
}

/* tcp:// engines: the connection is close-on-exec too. */
Test(fake, tcp_connections_are_close_on_exec) {
  struct tcp_peer p = {.listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(a);
  cr_assert_eq(bind(p.listener, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(listen(p.listener, 1), 0);
  cr_assert_eq(getsockname(p.listener, (struct sockaddr *)&a, &len), 0);
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, tcp_accept_one, &p), 0);
  char host[64];
  snprintf(host, sizeof(host), "tcp://127.0.0.1:%d", ntohs(a.sin_port));
  struct dk_client_options o = {.host = host, .retries = -1, .timeout_ms = 5000};
  struct dk_client *c = NULL;
  ca_error *e = NULL;
  cr_assert_lt(dk_client_new(&o, &c, &e), 0, "a peer that hangs up is no engine");
  ca_error_free(e);
  pthread_join(t, NULL);
  close(p.listener);
  cr_assert_eq(p.cloexec, 1, "the client's tcp socket %s", p.cloexec ? "was not found" : "is not close-on-exec");
}

Test(fake, connection_refused_names_the_engine) {
  char dir[] = "/tmp/dk-refused-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char path[128], host[160];
  snprintf(path, sizeof(path), "%s/docker.sock", dir);
  snprintf(host, sizeof(host), "unix://%s", path);
  /* a socket file nobody listens on: what a crashed engine leaves behind */
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  memcpy(sa.sun_path, path, strlen(path) + 1); /* about 40 bytes: fits */
  cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  close(fd);
  struct dk_client_options o = {.host = host};
  struct dk_client *c = NULL;
  _cleanup_error_ ca_error *e = NULL;
  uint64_t t0 = ca_now_monotonic_usec();
  cr_assert_eq(dk_client_new(&o, &c, &e), -ECONNREFUSED);
  uint64_t took = ca_now_monotonic_usec() - t0;
  cr_assert_null(c);
  cr_assert_eq(dk_error_kind(e), DK_ERR_TRANSIENT);
  cr_assert(strstr(e->msg, "refused") && strstr(e->msg, "is the Docker engine running?"), "%s", e->msg);
  /* retried with a bounded backoff: 100+200+400+800 ms */
  cr_assert(took >= 1400000 && took < 5000000, "took %llu us", (unsigned long long)took);
  unlink(path);
  rmdir(dir);
}

Test(fake, missing_socket_and_bad_hosts) {
  static const struct {
    const char *host;
    int code;
    const char *words;
  } cases[] = {
      {"unix:///tmp/dk-no-such-dir/docker.sock", ENOENT, "is the Docker engine running?"},
      {"unix://relative/docker.sock", EINVAL, "absolute"},
      {"unix:///tmp/"
       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
       "aaaaaaaaaa.sock",
       ENAMETOOLONG, "too long"},
      {"ssh://host", EINVAL, "unsupported scheme"},
      {"tcp://", EINVAL, "tcp://HOST:PORT"},
      {"unix:///etc/passwd", ENOTSOCK, "not a socket"},
  };
  for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
    struct dk_client_options o = {.host = cases[i].host};
    struct dk_client *c = NULL;
    _cleanup_error_ ca_error *e = NULL;
    cr_assert_eq(dk_client_new(&o, &c, &e), -cases[i].code, "%s: %s", cases[i].host, e ? e->msg : "");
    cr_assert(strstr(e->msg, cases[i].words), "%s: %s", cases[i].host, e->msg);
  }
}

Test(fake, docker_host_from_the_environment) {
  struct scenario s = {0};
  fake = fake_start(handler, &s);
  setenv("DOCKER_HOST", fake_host(fake), 1);
  struct dk_client *c = NULL;
  _cleanup_error_ ca_error *e = NULL;
  cr_assert_eq(dk_client_new(NULL, &c, &e), 0, "%s", e ? e->msg : "");
  cr_assert_eq(fake_count(fake, "GET", "/_ping"), 1);
  dk_client_free(c);
}

Test(fake, tls_files_missing) {
  setenv("DOCKER_TLS_VERIFY", "1", 1);
  setenv("DOCKER_CERT_PATH", "/tmp/dk-no-such-certs", 1);
  struct dk_client_options o = {.host = "tcp://127.0.0.1:2376"};
  struct dk_client *c = NULL;
  _cleanup_error_ ca_error *e = NULL;
  cr_assert_lt(dk_client_new(&o, &c, &e), 0);
  cr_assert(strstr(e->msg, "/tmp/dk-no-such-certs/ca.pem") && strstr(e->msg, "DOCKER_CERT_PATH"), "%s", e->msg);
}

Test(fake, permission_denied_says_what_to_do) {
  struct scenario s = {0};
  fake = fake_start(handler, &s);
  const char *path = fake_host(fake) + strlen("unix://");
  char dir[128];
  snprintf(dir, sizeof(dir), "%s", path);
  *strrchr(dir, '/') = '\0';
  cr_assert_eq(chmod(dir, 0755), 0);
  if (geteuid() == 0) {
    /* root passes every permission check: become nobody, who may not use a root-only socket */
    cr_assert_eq(chmod(path, 0600), 0);
    cr_assert_eq(setresgid(65534, 65534, 65534), 0);
    cr_assert_eq(setresuid(65534, 65534, 65534), 0);
  } else {
    cr_assert_eq(chmod(path, 0), 0);
  }
  struct dk_client_options o = {.host = fake_host(fake)};
  struct dk_client *c = NULL;
  _cleanup_error_ ca_error *e = NULL;
  cr_assert_eq(dk_client_new(&o, &c, &e), -EACCES);
  cr_assert(strstr(e->msg, "run as root or join the docker group"), "%s", e->msg);
}

/* ---- version negotiation ----------------------------------------------------------------------------------- */

static bool answer_empty_list(void *ud, const struct fake_request *rq, int conn) {
  (void)ud, (void)rq;
  fake_reply(conn, 200, "1.41", NULL, "[]");
  return true;
}

Test(fake, too_old_api_version_is_refused) {
  struct scenario s = {.api_version = "1.24", .fn = answer_empty_list};
  fake = fake_start(handler, &s);
  struct dk_client_options o = {.host = fake_host(fake)};
  struct dk_client *c = NULL;
  _cleanup_error_ ca_error *e = NULL;
  cr_assert_eq(dk_client_new(&o, &c, &e), -ENOTSUP);
  cr_assert(strstr(e->msg, "1.24") && strstr(e->msg, "1.30") && strstr(e->msg, "upgrade"), "%s", e->msg);
}

Test(fake, missing_api_version_is_refused) {
  struct scenario s = {.ping_without_version = true, .fn = answer_empty_list};
  fake = fake_start(handler, &s);
  struct dk_client_options o = {.host = fake_host(fake)};
  struct dk_client *c = NULL;
  _cleanup_error_ ca_error *e = NULL;
  cr_assert_eq(dk_client_new(&o, &c, &e), -EPROTO);
}

Test(fake, negotiates_the_lower_version) {
  struct scenario s = {.api_version = "1.35", .fn = answer_empty_list};
  struct dk_client *c = connect_to(&s, 0, 0, 0);
  cr_assert_str_eq(dk_client_api_version(c), "1.35");
  _cleanup_(dk_list_freep) struct dk_list *l = NULL;
  cr_assert_eq(dk_list(c, DK_CONTAINER, NULL, &l, NULL), 0);
  cr_assert_str_eq(fake_path(fake, 1), "/v1.35/containers/json?all=1");
  dk_client_free(c);
  fake_stop(fake);

  struct scenario newer = {.api_version = "1.51", .fn = answer_empty_list};
  c = connect_to(&newer, 0, 0, 0);
  cr_assert_str_eq(dk_client_api_version(c), DK_API_VERSION_MAX);
  dk_client_free(c);
}

/* ---- broken answers ---------------------------------------------------------------------------------------- */

static bool drop_mid_body(void *ud, const struct fake_request *rq, int conn) {
  (void)ud, (void)rq;
  const char *head = "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\n"
                     "Content-Length: 1000\r\n\r\n[{\"Id\":\"abc\",\"Nam";
  fake_write(conn, head, strlen(head));
  return false;
}

Test(fake, connection_dropped_mid_body) {
  struct scenario s = {.fn = drop_mid_body};
  struct dk_client *c = connect_to(&s, 0, -1, 0);
  struct dk_list *l = NULL;
  _cleanup_error_ ca_error *e = NULL;
  cr_assert_eq(dk_list(c, DK_CONTAINER, NULL, &l, &e), -ECONNRESET);
  cr_assert_null(l);
  cr_assert_eq(dk_error_kind(e), DK_ERR_TRANSIENT);
  cr_assert(strstr(e->msg, "GET /containers/json") && strstr(e->msg, "dropped"), "%s", e->msg);
  cr_assert_eq(fake_count(fake, "GET", "/v1.41/containers/json"), 1, "retried although retries are off");
  dk_client_free(c);
}

Test(fake, transient_failures_are_retried_a_bounded_number_of_times) {
  struct scenario s = {.fn = drop_mid_body};
  struct dk_client *c = connect_to(&s, 0, 2, 0);
  struct dk_list *l = NULL;
  _cleanup_error_ ca_error *e = NULL;
  cr_assert_eq(dk_list(c, DK_CONTAINER, NULL, &l, &e), -ECONNRESET);
  cr_assert_eq(fake_count(fake, "GET", "/v1.41/containers/json"), 3);
  dk_client_free(c);
}

static bool fail_twice_then_answer(void *ud, const struct fake_request *rq, int conn) {
  struct scenario *s = ud;
  (void)rq;
  if (s->counter++ < 2)
    fake_reply(conn, 500, "1.41", NULL, "{\"message\":\"driver busy\"}");
  else
    fake_reply(conn, 200, "1.41", NULL, "[{\"Id\":\"abc\",\"Names\":[\"/x\"],\"State\":\"running\"}]");
  return true;
}

Test(fake, server_error_then_success) {
  struct scenario s = {.fn = fail_twice_then_answer};
  struct dk_client *c = connect_to(&s, 0, 0, 0);
  _cleanup_(dk_list_freep) struct dk_list *l = NULL;
  _cleanup_error_ ca_error *e = NULL;
  cr_assert_eq(dk_list(c, DK_CONTAINER, NULL, &l, &e), 0, "%s", e ? e->msg : "");
  cr_assert_eq(l->n, 1);
  cr_assert_str_eq(l->items[0].state, "running");
  cr_assert_eq(fake_count(fake, "GET", "/v1.41/containers/json"), 3);
  dk_client_free(c);
}

static bool error_500_json(void *ud, const struct fake_request *rq, int conn) {
  (void)ud, (void)rq;
  fake_reply(conn, 500, "1.41", NULL, "{\"message\":\"driver \\\"vfs\\\" failed to remove root filesystem\"}");
  return true;
}

static bool error_500_text(void *ud, const struct fake_request *rq, int conn) {
  (void)ud, (void)rq;
  fake_reply(conn, 500, "1.41", "text/plain", "Internal Server Error\n");
  return true;
}

static bool error_500_empty(void *ud, const struct fake_request *rq, int conn) {
  (void)ud, (void)rq;
  fake_reply(conn, 500, "1.41", "text/plain", NULL);
  return true;
}

Test(fake, server_error_with_and_without_json) {
  static const struct {
    fake_handler_fn fn;
    const char *want;
  } cases[] = {
      {error_500_json, "daemon said 500: driver \"vfs\" failed to remove root filesystem"},
      {error_500_text, "daemon said 500: Internal Server Error"},
      {error_500_empty, "daemon said 500: (no message)"},
  };
  for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
    struct scenario s = {.fn = cases[i].fn};
    struct dk_client *c = connect_to(&s, 0, -1, 0);
    struct dk_container_info *info = NULL;
    _cleanup_error_ ca_error *e = NULL;
    cr_assert_lt(dk_container_inspect(c, "abc", &info, &e), 0);
    cr_assert_eq(e->detail, 500);
    cr_assert_eq(dk_error_kind(e), DK_ERR_TRANSIENT);
    cr_assert(strstr(e->msg, cases[i].want), "case %zu: %s", i, e->msg);
    cr_assert(strstr(e->msg, "GET /containers/abc/json"), "%s", e->msg);
    dk_client_free(c);
    fake_stop(fake);
    fake = NULL;
  }
}

static bool in_progress_then_gone(void *ud, const struct fake_request *rq, int conn) {
  struct scenario *s = ud;
  cr_assert_str_eq(rq->method, "DELETE");
  if (s->counter++ < 3)
    fake_reply(conn, 409, "1.41", NULL, "{\"message\":\"removal of container abc is already in progress\"}");
  else
    fake_reply(conn, 404, "1.41", NULL, "{\"message\":\"No such container: abc\"}");
  return true;
}

Test(fake, removal_in_progress_is_polled_until_gone) {
  struct scenario s = {.fn = in_progress_then_gone};
  struct dk_client *c = connect_to(&s, 0, 0, 0);
  _cleanup_error_ ca_error *e = NULL;
  cr_assert_eq(dk_remove(c, DK_CONTAINER, "abc", &e), 0, "%s", e ? e->msg : "");
  cr_assert_eq(fake_count(fake, "DELETE", "/v1.41/containers/abc?force=1&v=1"), 4);
  dk_client_free(c);
}

static bool slow(void *ud, const struct fake_request *rq, int conn) {
  (void)ud, (void)rq;
  struct pollfd p = {.fd = conn, .events = POLLIN};
  (void)poll(&p, 1, 3000); /* returns early when the client gives up and closes */
  fake_reply(conn, 200, "1.41", NULL, "{}");
  return false;
}

Test(fake, slow_answer_hits_the_timeout) {
  struct scenario s = {.fn = slow};
  struct dk_client *c = connect_to(&s, 300, -1, 0);
  struct dk_container_info *info = NULL;
  _cleanup_error_ ca_error *e = NULL;
  uint64_t t0 = ca_now_monotonic_usec();
  cr_assert_eq(dk_container_inspect(c, "abc", &info, &e), -ETIMEDOUT);
  uint64_t took = ca_now_monotonic_usec() - t0;
  cr_assert(took >= 250000 && took < 1500000, "took %llu us", (unsigned long long)took);
  cr_assert_eq(dk_error_kind(e), DK_ERR_TRANSIENT);
  dk_client_free(c);
}

static bool silent(void *ud, const struct fake_request *rq, int conn) {
  (void)ud, (void)rq;
  struct pollfd p = {.fd = conn, .events = POLLIN};
  (void)poll(&p, 1, 3000); /* never answers; returns early when the client gives up and closes */
  return false;
}

Test(fake, an_engine_that_never_answers_the_ping_costs_one_timeout_not_one_per_retry) {
  fake = fake_start(silent, NULL); /* not handler: that one answers /_ping itself */
  struct dk_client_options o = {.host = fake_host(fake), .timeout_ms = 300, .retries = 2};
  struct dk_client *c = NULL;
  _cleanup_error_ ca_error *e = NULL;
  cr_assert_eq(dk_client_new(&o, &c, &e), -ETIMEDOUT, "%s", e ? e->msg : "connected");
  /* One ping, not retries + 1 of them: each would have cost the whole timeout. */
  cr_assert_eq(fake_count(fake, "GET", "/_ping"), 1);
  cr_assert_eq(dk_error_kind(e), DK_ERR_TRANSIENT);
}

static bool slow_wait(void *ud, const struct fake_request *rq, int conn) {
  (void)ud;
  cr_assert(strstr(rq->path, "/wait?condition=next-exit"), "%s", rq->path);
  /* headers at once (the wait is armed), the body when the "container" exits a second later */
  const char *head = "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n";
  fake_write(conn, head, strlen(head));
  usleep(1000000);
  const char *body = "1f\r\n{\"StatusCode\":42,\"Error\":null}\r\n0\r\n\r\n";
  fake_write(conn, body, strlen(body));
  return true;
}

Test(fake, wait_is_not_bounded_by_the_short_call_timeout) {
  struct scenario s = {.fn = slow_wait};
  struct dk_client *c = connect_to(&s, 300, -1, 0);
  struct dk_wait *w = NULL;
  _cleanup_error_ ca_error *e = NULL;
  uint64_t t0 = ca_now_monotonic_usec();
  cr_assert_eq(dk_wait_begin(c, "abc", DK_WAIT_NEXT_EXIT, &w, &e), 0, "%s", e ? e->msg : "");
  cr_assert_lt(ca_now_monotonic_usec() - t0, 500000, "wait_begin waited for the body");
  int code = -1;
  cr_assert_eq(dk_wait_end(w, NULL, &code, &e), 0, "%s", e ? e->msg : "");
  cr_assert_eq(code, 42);
  cr_assert_geq(ca_now_monotonic_usec() - t0, 900000);
  dk_wait_free(w);
  dk_client_free(c);
}

static bool huge(void *ud, const struct fake_request *rq, int conn) {
  (void)ud, (void)rq;
  size_t n = 1 << 20;
  char *body = malloc(n + 1);
  memset(body, ' ', n);
  body[0] = '[';
  body[n - 1] = ']';
  body[n] = '\0';
  fake_reply(conn, 200, "1.41", NULL, body);
  free(body);
  return false;
}

/* Lists containers from a fake daemon answering with fn, under a body cap of 64 KiB; the list's code, *ret_err and
 * *ret_list. */
static int list_capped(fake_handler_fn fn, struct dk_list **ret_list, ca_error **ret_err) {
  struct scenario s = {.fn = fn};
  struct dk_client *c = connect_to(&s, 0, -1, 64 << 10);
  int k = dk_list(c, DK_CONTAINER, NULL, ret_list, ret_err);
  dk_client_free(c);
  return k;
}

/* A list is streamed (issue 19): an answer longer than the body cap is read, one element at a time. */
Test(fake, long_list_answer_is_streamed) {
  struct dk_list *l = NULL;
  _cleanup_error_ ca_error *e = NULL;
  cr_assert_eq(list_capped(huge, &l, &e), 0, "%s", e ? e->msg : "");
  cr_assert_eq(l->n, 0);
  dk_list_free(l);
}

static bool huge_element(void *ud, const struct fake_request *rq, int conn) {
  (void)ud, (void)rq;
  size_t n = 1 << 20;
  char *body = malloc(n + 64);
  int at = sprintf(body, "[{\"Id\":\"x\",\"Labels\":{\"a\":\"");
  memset(body + at, 'v', n);
  strcpy(body + at + n, "\"}}]");
  fake_reply(conn, 200, "1.41", NULL, body);
  free(body);
  return false;
}

/* The body cap bounds each element of a streamed list. */
Test(fake, oversized_element_is_refused) {
  struct dk_list *l = NULL;
  _cleanup_error_ ca_error *e = NULL;
  cr_assert_eq(list_capped(huge_element, &l, &e), -EMSGSIZE, "%s", e ? e->msg : "");
  cr_assert_null(l);
  cr_assert(strstr(e->msg, "GET /containers/json"), "%s", e->msg);
}

/* ---- 404s -------------------------------------------------------------------------------------------------- */

static bool unknown_route(void *ud, const struct fake_request *rq, int conn) {
  (void)ud, (void)rq;
  fake_reply(conn, 404, NULL, NULL, "{\"message\":\"page not found\"}");
  return true;
}

static bool no_such_container(void *ud, const struct fake_request *rq, int conn) {
  (void)ud, (void)rq;
  fake_reply(conn, 404, "1.41", NULL, "{\"message\":\"No such container: abc\"}");
  return true;
}

Test(fake, page_not_found_is_not_no_such_container) {
  struct scenario route = {.fn = unknown_route};
  struct dk_client *c = connect_to(&route, 0, 0, 0);
  _cleanup_error_ ca_error *e = NULL;
  cr_assert_eq(dk_remove(c, DK_CONTAINER, "abc", &e), -ENOSYS, "an unknown route must not count as gone");
  cr_assert_eq(dk_error_kind(e), DK_ERR_FINAL);
  cr_assert(strstr(e->msg, "page not found"), "%s", e->msg);
  dk_client_free(c);
  fake_stop(fake);

  struct scenario gone = {.fn = no_such_container};
  c = connect_to(&gone, 0, 0, 0);
  cr_assert_eq(dk_remove(c, DK_CONTAINER, "abc", NULL), 1, "No such container counts as already gone");
  _cleanup_error_ ca_error *ie = NULL;
  struct dk_container_info *info = NULL;
  cr_assert_eq(dk_container_inspect(c, "abc", &info, &ie), -ENOENT);
  cr_assert_eq(dk_error_kind(ie), DK_ERR_NOT_FOUND);
  dk_client_free(c);
}

/* ---- streams ----------------------------------------------------------------------------------------------- */

static bool events_in_pieces(void *ud, const struct fake_request *rq, int conn) {
  struct scenario *s = ud;
  (void)rq;
  const char *head = "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\n"
                     "Connection: close\r\n\r\n";
  fake_write(conn, head, strlen(head));
  const char *good =
      "{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":\"c1\",\"Attributes\":{\"k\":\"v\"}}}\n"
      "{\"Type\":\"container\",\"Action\":\"die\",\"Actor\":{\"ID\":\"c1\",\"Attributes\":"
      "{\"exitCode\":\"2\"}}}\n";
  const char *bad = "{\"Type\":\"container\",\"Action\":[\"die\"]}\n";
  const char *text = s->counter ? bad : good;
  size_t len = strlen(text);
  for (size_t i = 0; i < len; i += 7) { /* split lines at odd places */
    fake_write(conn, text + i, CA_MIN((size_t)7, len - i));
    usleep(1000);
  }
  return false;
}

struct got {
  int n;
  char actions[64];
};

static int record(void *ud, const struct dk_event *ev) {
  struct got *g = ud;
  g->n++;
  strncat(g->actions, ev->action, sizeof(g->actions) - strlen(g->actions) - 2);
  strcat(g->actions, ",");
  if (strcmp(ev->action, "start") == 0)
    cr_assert_str_eq(dk_labels_get(&ev->attributes, "k"), "v");
  return 0;
}

Test(fake, events_split_anywhere_and_end_of_stream) {
  struct scenario s = {.fn = events_in_pieces};
  struct dk_client *c = connect_to(&s, 0, 0, 0);
  struct got g = {0};
  struct dk_events_options o = {.on_event = record, .userdata = &g};
  _cleanup_error_ ca_error *e = NULL;
  int k = dk_events(c, &o, NULL, &e);
  cr_assert_eq(k, -ECONNRESET, "the stream ending is reported: %d %s", k, e ? e->msg : "");
  cr_assert_str_eq(g.actions, "start,die,");
  dk_client_free(c);
}

Test(fake, malformed_event_is_an_error) {
  struct scenario s = {.fn = events_in_pieces, .counter = 1};
  struct dk_client *c = connect_to(&s, 0, 0, 0);
  struct got g = {0};
  struct dk_events_options o = {.on_event = record, .userdata = &g};
  _cleanup_error_ ca_error *e = NULL;
  cr_assert_eq(dk_events(c, &o, NULL, &e), -EBADMSG);
  cr_assert(strstr(e->msg, "Action"), "%s", e->msg);
  cr_assert_eq(g.n, 0);
  dk_client_free(c);
}

static bool logs_with_error_frame(void *ud, const struct fake_request *rq, int conn) {
  (void)ud, (void)rq;
  static const unsigned char body[] = {1, 0, 0, 0, 0, 0,   0,   3,   'o', 'k', '\n', 3,   0,   0,
                                       0, 0, 0, 0, 9, 'd', 'i', 's', 'k', ' ', 'f',  'u', 'l', 'l'};
  char head[256];
  int n = snprintf(head, sizeof(head),
                   "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
                   "Content-Length: %zu\r\n\r\n",
                   sizeof(body));
  fake_write(conn, head, (size_t)n);
  fake_write(conn, body, sizeof(body));
  return true;
}

static int keep(void *ud, enum dk_stream s, const char *data, size_t len) {
  (void)s;
  strncat(ud, data, len);
  return 0;
}

Test(fake, log_error_frame_surfaces_as_error) {
  struct scenario s = {.fn = logs_with_error_frame};
  struct dk_client *c = connect_to(&s, 0, 0, 0);
  char out[64] = "";
  struct dk_logs_options o = {.on_output = keep, .userdata = out};
  _cleanup_error_ ca_error *e = NULL;
  cr_assert_lt(dk_container_logs(c, "abc", &o, NULL, &e), 0);
  cr_assert(strstr(e->msg, "disk full") && strstr(e->msg, "logs of abc"), "%s", e->msg);
  cr_assert_str_eq(out, "ok\n");
  dk_client_free(c);
}

/* ---- a lazy client's first call, and listings at once ------------------------------------------------------ */

static bool slow_networks(void *ud, const struct fake_request *rq, int conn) {
  (void)ud;
  if (strncmp(rq->path, "/v1.41/networks", 15) == 0)
    usleep(300000); /* the first call is still waiting for this when the caller asks for the connection */
  fake_reply(conn, 200, "1.41", NULL, "[]");
  return true;
}

struct first_seen {
  unsigned pools;
  int listed; /* 1 until the first call returned */
};

static void list_networks_first(struct dk_client *c, void *userdata) {
  struct first_seen *f = userdata;
  f->listed = dk_network_pools_used(c, &f->pools, NULL);
}

/* dk_client_connect returns only once the first call is done, and the first call does not connect again: one
 * /_ping. */
Test(fake, a_lazy_clients_connect_waits_for_its_first_call) {
  struct scenario s = {.fn = slow_networks};
  fake = fake_start(handler, &s);
  struct dk_client_options o = {.host = fake_host(fake), .lazy = true};
  struct dk_client *c = NULL;
  _cleanup_error_ ca_error *e = NULL;
  cr_assert_eq(dk_client_new(&o, &c, &e), 0, "%s", e ? e->msg : "");
  struct first_seen f = {.listed = 1};
  dk_client_connect_start(c, list_networks_first, &f);
  usleep(100000); /* the thread has negotiated and waits for the slow list */
  cr_assert_eq(dk_client_connect(c, &e), 0, "%s", e ? e->msg : "");
  cr_assert_eq(f.listed, 0, "dk_client_connect returned before the first call was done");
  cr_assert_eq(fake_count(fake, "GET", "/_ping"), 1);
  cr_assert_eq(fake_count(fake, "GET", "/v1.41/networks"), 1);
  dk_client_free(c);
}

/* Holds every listing's answer until six are in flight (or 2 s passed: then a 500). */
static pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t held_cond = PTHREAD_COND_INITIALIZER;
static unsigned held;

static bool answer_when_six_wait(void *ud, const struct fake_request *rq, int conn) {
  (void)ud;
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 2;
  pthread_mutex_lock(&held_lock);
  if (++held >= 6)
    pthread_cond_broadcast(&held_cond);
  int r = 0;
  while (held < 6 && r == 0)
    r = pthread_cond_timedwait(&held_cond, &held_lock, &until);
  bool all = held >= 6;
  pthread_mutex_unlock(&held_lock);
  if (all)
    fake_reply(conn, 200, "1.41", NULL, strncmp(rq->path, "/v1.41/volumes", 14) == 0 ? "{\"Volumes\":[]}" : "[]");
  else
    fake_reply(conn, 500, "1.41", "application/json", "{\"message\":\"the six listings were not sent at once\"}");
  return true;
}

Test(fake, list_many_sends_its_six_listings_at_once) {
  struct scenario s = {.fn = answer_when_six_wait};
  struct dk_client *c = connect_to(&s, 5000, -1, 0);
  const struct dk_filter a[] = {{"label", "a=1"}, {0}}, b[] = {{"label", "b=1"}, {0}};
  const struct dk_list_query q[] = {{DK_CONTAINER, a}, {DK_NETWORK, a}, {DK_VOLUME, a},
                                    {DK_CONTAINER, b}, {DK_NETWORK, b}, {DK_VOLUME, b}};
  struct dk_list *l[6] = {0};
  _cleanup_error_ ca_error *e = NULL;
  cr_assert_eq(dk_list_many(c, q, 6, l, &e), 0, "%s", e ? e->msg : "");
  for (int i = 0; i < 6; i++) {
    cr_assert(l[i] && l[i]->n == 0);
    dk_list_free(l[i]);
  }
  cr_assert_eq(fake_count(fake, "GET", "/v1.41/containers/json?all=1&filters="), 2);
  dk_client_free(c);
}
