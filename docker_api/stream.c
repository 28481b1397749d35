/* A raw byte stream to the engine, for a caller that speaks HTTP itself (the session's labeling proxy).
 *
 * A Unix socket is connected as it is. A tcp:// engine is connected by libcurl (CURLOPT_CONNECT_ONLY) with the same
 * options as every request of the client: its TLS files, the peer and host name verified; libcurl then relays bytes
 * with curl_easy_send and curl_easy_recv. The caller gets one end of a socketpair, an ordinary descriptor that it can
 * read, write, half-close and poll from two threads, and one relay thread per stream owns the TLS connection alone
 * (an easy handle, like an SSL object, is used by one thread at a time). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "docker-internal.h"

#define RELAY_CHUNK (64 * 1024)
#define RELAY_STACK (128 * 1024)

/* One direction's buffer: what was read and not yet written on. */
struct relay_buf {
  char data[RELAY_CHUNK];
  size_t len, off;
  bool eof;  /* its source ended */
  bool shut; /* the end was passed on (shutdown of the write side) */
};

struct relay {
  CURL *easy;
  curl_socket_t remote;
  int local;
  struct relay_buf up, down; /* local to engine, engine to local */
  bool up_again, down_again; /* the last send or recv found the TLS connection not ready */
};

/* Local to engine: -1 when the stream is over (an error either side). */
static int relay_up(struct relay *r, bool *progress) {
  struct relay_buf *b = &r->up;
  if (!b->eof && b->off == b->len) {
    ssize_t n = recv(r->local, b->data, sizeof(b->data), MSG_DONTWAIT);
    if (n < 0 && errno != EAGAIN && errno != EINTR)
      return -1;
    if (n >= 0) {
      b->len = (size_t)n;
      b->off = 0;
      b->eof = n == 0;
      *progress = true;
    }
  }
  r->up_again = false;
  while (b->off < b->len) {
    size_t sent = 0;
    CURLcode cc = curl_easy_send(r->easy, b->data + b->off, b->len - b->off, &sent);
    if (cc == CURLE_AGAIN) {
      r->up_again = true;
      break;
    }
    if (cc != CURLE_OK)
      return -1;
    b->off += sent;
    *progress = true;
  }
  if (b->eof && b->off == b->len && !b->shut) {
    (void)shutdown(r->remote, SHUT_WR); /* the engine sees the client's half-close as it would directly */
    b->shut = true;
  }
  return 0;
}

/* Engine to local. libcurl and the TLS library may hold decrypted bytes: recv is called until it says CURLE_AGAIN,
 * and only then does the loop wait on the socket. */
static int relay_down(struct relay *r, bool *progress) {
  struct relay_buf *b = &r->down;
  r->down_again = false;
  if (!b->eof && b->off == b->len) {
    size_t got = 0;
    CURLcode cc = curl_easy_recv(r->easy, b->data, sizeof(b->data), &got);
    if (cc == CURLE_AGAIN)
      r->down_again = true;
    else if (cc != CURLE_OK)
      return -1;
    else {
      b->len = got;
      b->off = 0;
      b->eof = got == 0;
      *progress = true;
    }
  }
  while (b->off < b->len) {
    ssize_t n = send(r->local, b->data + b->off, b->len - b->off, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      break;
    if (n < 0)
      return -1;
    b->off += (size_t)n;
    *progress = true;
  }
  if (b->eof && b->off == b->len && !b->shut) {
    (void)shutdown(r->local, SHUT_WR);
    b->shut = true;
  }
  return 0;
}

static void *relay_run(void *arg) {
  struct relay *r = arg;
  while (!(r->up.shut && r->down.shut)) {
    bool progress = false;
    if (relay_up(r, &progress) < 0 || relay_down(r, &progress) < 0)
      break;
    if (progress)
      continue;
    struct pollfd p[2] = {{.fd = r->local}, {.fd = r->remote}};
    if (!r->up.eof && r->up.off == r->up.len)
      p[0].events |= POLLIN;
    if (r->down.off < r->down.len)
      p[0].events |= POLLOUT;
    if (r->down_again)
      p[1].events |= POLLIN;
    if (r->up_again)
      p[1].events |= POLLOUT;
    if (!p[1].events)
      p[1].fd = -1; /* an engine that hung up while the caller reads slowly: not a reason to spin */
    if (poll(p, 2, -1) < 0 && errno != EINTR)
      break;
    /* The caller closed its end (or shut both sides: the proxy's stop): nobody reads what the engine sends. */
    if (p[0].revents & (POLLHUP | POLLERR | POLLNVAL))
      break;
    if (p[1].revents & (POLLERR | POLLNVAL))
      break;
  }
  curl_easy_cleanup(r->easy);
  close(r->local);
  free(r);
  return NULL;
}

static int connect_unix(const struct dk_client *c, int *ret_fd, ca_error **err) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", c->socket_path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return ca_error_set_errno(err, errno, "connect to the engine at %s", c->socket_path);
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    int e = errno;
    close(fd);
    return ca_error_set_errno(err, e, "connect to the engine at %s", c->socket_path);
  }
  *ret_fd = fd;
  return 0;
}

/* The easy handle connected to the client's tcp:// engine (TLS handshake done), as a request of the client's is. */
static int connect_tcp(const struct dk_client *c, CURL **ret, ca_error **err) {
  CURL *easy = curl_easy_init();
  if (!easy)
    return ca_error_set(err, ENOMEM, "out of memory");
  char errbuf[CURL_ERROR_SIZE] = "";
  CURLcode cc = curl_easy_setopt(easy, CURLOPT_URL, c->base_url);
  if (cc == CURLE_OK)
    cc = curl_easy_setopt(easy, CURLOPT_CONNECT_ONLY, 1L);
  if (cc == CURLE_OK)
    cc = curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
  if (cc == CURLE_OK)
    cc = dk_transport_setopt(c, easy);
  if (cc == CURLE_OK)
    cc = curl_easy_perform(easy);
  if (cc != CURLE_OK) {
    curl_easy_cleanup(easy);
    int r = ca_error_set(err, cc == CURLE_COULDNT_CONNECT ? ECONNREFUSED : EIO, "connect to the engine at %s: %s",
                         c->host, errbuf[0] ? errbuf : curl_easy_strerror(cc));
    if (err && c->tls_ca &&
        (cc == CURLE_SSL_CONNECT_ERROR || cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CERTPROBLEM ||
         cc == CURLE_SSL_CACERT_BADFILE))
      (*err)->detail = DK_ERROR_DETAIL_TLS;
    return r;
  }
  (void)curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, NULL); /* errbuf goes out of scope */
  *ret = easy;
  return 0;
}

/* Starts the relay thread of a connected tcp:// stream with every signal blocked; the caller's end in *ret_fd. */
static int start_relay(CURL *easy, int *ret_fd, ca_error **err) {
  curl_socket_t remote = CURL_SOCKET_BAD;
  int pair[2];
  if (curl_easy_getinfo(easy, CURLINFO_ACTIVESOCKET, &remote) != CURLE_OK || remote == CURL_SOCKET_BAD) {
    curl_easy_cleanup(easy);
    return ca_error_set(err, EIO, "connect to the engine: libcurl has no socket");
  }
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) {
    int e = errno;
    curl_easy_cleanup(easy);
    return ca_error_set_errno(err, e, "connect to the engine: socketpair");
  }
  struct relay *r = calloc(1, sizeof(*r));
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, RELAY_STACK);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t t;
  int k = ENOMEM;
  if (r) {
    *r = (struct relay){.easy = easy, .remote = remote, .local = pair[1]};
    k = pthread_create(&t, &attr, relay_run, r);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  if (k != 0) {
    free(r);
    curl_easy_cleanup(easy);
    close(pair[0]);
    close(pair[1]);
    return ca_error_set_errno(err, k, "connect to the engine: start a relay thread");
  }
  *ret_fd = pair[0];
  return 0;
}

int dk_client_stream(const struct dk_client *c, int *ret_fd, ca_error **err) {
  if (c->socket_path)
    return connect_unix(c, ret_fd, err);
  int r = dk_global_init(err);
  CURL *easy = NULL;
  if (r < 0 || (r = connect_tcp(c, &easy, err)) < 0)
    return r;
  return start_relay(easy, ret_fd, err);
}
