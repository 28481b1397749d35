/* The fake daemon: see fake_daemon.h. Requests are read head first, then Content-Length bytes of body. */
#include "fake_daemon.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common.h"

#define MAX_CONNS 64
#define MAX_REQUESTS 256

struct fake_daemon {
  char dir[64];
  char sock[128];
  char host[160];
  int listen_fd;
  fake_handler_fn fn;
  void *userdata;
  pthread_t acceptor;
  pthread_mutex_t lock;
  pthread_t conn_threads[MAX_CONNS];
  int conn_fds[MAX_CONNS];
  size_t n_conns;
  struct fake_request log[MAX_REQUESTS];
  unsigned n_requests;
  bool stopping;
};

struct conn_arg {
  struct fake_daemon *d;
  int fd;
};

void fake_write(int conn, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = send(conn, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return; /* the client went away: nothing to report from a test server */
    p += n;
    len -= (size_t)n;
  }
}

void fake_reply(int conn, int status, const char *api_version, const char *content_type, const char *body) {
  char head[512];
  size_t len = body ? strlen(body) : 0;
  int n = snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\n%s%s%sContent-Type: %s\r\nContent-Length: %zu\r\n\r\n", status,
                   api_version ? "Api-Version: " : "", api_version ? api_version : "", api_version ? "\r\n" : "",
                   content_type ? content_type : "application/json", len);
  fake_write(conn, head, (size_t)n);
  if (len)
    fake_write(conn, body, len);
}

/* Reads one request head (and discards its body); false at EOF or error. */
static bool read_request(int fd, struct fake_request *rq) {
  char buf[8192];
  size_t len = 0;
  char *end = NULL;
  while (!end) {
    if (len == sizeof(buf) - 1)
      return false;
    ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    len += (size_t)n;
    buf[len] = '\0';
    end = strstr(buf, "\r\n\r\n");
  }
  if (sscanf(buf, "%15s %2047s", rq->method, rq->path) != 2)
    return false;
  size_t body = 0;
  const char *cl = strcasestr(buf, "\r\nContent-Length:");
  if (cl)
    body = strtoul(cl + 17, NULL, 10);
  size_t have = len - (size_t)(end + 4 - buf);
  while (have < body) {
    ssize_t n = recv(fd, buf, CA_MIN(sizeof(buf), body - have), 0);
    if (n <= 0)
      return false;
    have += (size_t)n;
  }
  return true;
}

static void *conn_main(void *arg) {
  struct conn_arg a = *(struct conn_arg *)arg;
  free(arg);
  for (;;) {
    struct fake_request rq = {0};
    if (!read_request(a.fd, &rq))
      break;
    pthread_mutex_lock(&a.d->lock);
    rq.index = a.d->n_requests;
    if (a.d->n_requests < MAX_REQUESTS)
      a.d->log[a.d->n_requests++] = rq;
    pthread_mutex_unlock(&a.d->lock);
    if (!a.d->fn(a.d->userdata, &rq, a.fd))
      break;
  }
  shutdown(a.fd, SHUT_RDWR);
  return NULL;
}

static void *accept_main(void *arg) {
  struct fake_daemon *d = arg;
  for (;;) {
    int fd = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      return NULL;
    }
    pthread_mutex_lock(&d->lock);
    if (d->stopping || d->n_conns == MAX_CONNS) {
      pthread_mutex_unlock(&d->lock);
      close(fd);
      continue;
    }
    struct conn_arg *a = malloc(sizeof(*a));
    a->d = d;
    a->fd = fd;
    d->conn_fds[d->n_conns] = fd;
    if (pthread_create(&d->conn_threads[d->n_conns], NULL, conn_main, a) == 0)
      d->n_conns++;
    else {
      free(a);
      close(fd);
    }
    pthread_mutex_unlock(&d->lock);
  }
}

struct fake_daemon *fake_start(fake_handler_fn fn, void *userdata) {
  struct fake_daemon *d = calloc(1, sizeof(*d));
  cr_assert_not_null(d);
  d->fn = fn;
  d->userdata = userdata;
  pthread_mutex_init(&d->lock, NULL);
  snprintf(d->dir, sizeof(d->dir), "/tmp/dk-fake-XXXXXX");
  cr_assert_not_null(mkdtemp(d->dir));
  snprintf(d->sock, sizeof(d->sock), "%s/docker.sock", d->dir);
  snprintf(d->host, sizeof(d->host), "unix://%s", d->sock);
  d->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  memcpy(sa.sun_path, d->sock, strlen(d->sock) + 1); /* about 40 bytes: fits */
  cr_assert_eq(bind(d->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  cr_assert_eq(listen(d->listen_fd, 64), 0);
  cr_assert_eq(pthread_create(&d->acceptor, NULL, accept_main, d), 0);
  return d;
}

void fake_stop(struct fake_daemon *d) {
  if (!d)
    return;
  pthread_mutex_lock(&d->lock);
  d->stopping = true;
  pthread_mutex_unlock(&d->lock);
  shutdown(d->listen_fd, SHUT_RDWR);
  pthread_join(d->acceptor, NULL);
  for (size_t i = 0; i < d->n_conns; i++) {
    shutdown(d->conn_fds[i], SHUT_RDWR); /* wakes a handler blocked on its client */
    pthread_join(d->conn_threads[i], NULL);
    close(d->conn_fds[i]);
  }
  close(d->listen_fd);
  unlink(d->sock);
  rmdir(d->dir);
  pthread_mutex_destroy(&d->lock);
  free(d);
}

const char *fake_host(const struct fake_daemon *d) {
  return d->host;
}

unsigned fake_count(struct fake_daemon *d, const char *method, const char *prefix) {
  unsigned n = 0;
  pthread_mutex_lock(&d->lock);
  for (unsigned i = 0; i < d->n_requests; i++)
    if (strcmp(d->log[i].method, method) == 0 && strncmp(d->log[i].path, prefix, strlen(prefix)) == 0)
      n++;
  pthread_mutex_unlock(&d->lock);
  return n;
}

const char *fake_path(struct fake_daemon *d, unsigned i) {
  pthread_mutex_lock(&d->lock);
  const char *p = i < d->n_requests ? d->log[i].path : "";
  pthread_mutex_unlock(&d->lock);
  return p;
}
