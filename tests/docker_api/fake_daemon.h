/* A fake Docker daemon for fault tests: a real HTTP/1.1 server on a temporary unix socket, one thread per
 * connection, answering with what the test's handler writes. Only for faults the real engine will not produce. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct fake_request {
  char method[16];
  char path[2048];
  unsigned index; /* 0 for the first request the daemon saw */
};

/* Writes the whole answer to conn; returns false to close the connection afterwards. */
typedef bool (*fake_handler_fn)(void *userdata, const struct fake_request *rq, int conn);

struct fake_daemon;

struct fake_daemon *fake_start(fake_handler_fn fn, void *userdata);
void fake_stop(struct fake_daemon *d);
/* "unix:///tmp/.../docker.sock" */
const char *fake_host(const struct fake_daemon *d);
/* How many requests had this method and a path starting with prefix. */
unsigned fake_count(struct fake_daemon *d, const char *method, const char *prefix);
/* The path of request number i ("" when there was none). */
const char *fake_path(struct fake_daemon *d, unsigned i);

/* An answer with Content-Length; api_version NULL omits the Api-Version header (as unknown routes do). */
void fake_reply(int conn, int status, const char *api_version, const char *content_type, const char *body);
/* Writes all of buf. */
void fake_write(int conn, const void *buf, size_t len);
