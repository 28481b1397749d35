/* The benchmarks' own HTTP/1.1 reader for raw exchanges with the engine or the proxy (header only, static inline):
 * bench_proxy times requests without a client library's costs. */
#pragma once

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Keeps the last 5 bytes of a stream in tail (NUL-terminated) as the n bytes at p pass. */
static inline void bench_tail_push(char tail[static 6], size_t *keep, const char *p, size_t n) {
  size_t take = n < 5 ? n : 5, drop = *keep + take > 5 ? *keep + take - 5 : 0;
  memmove(tail, tail + drop, *keep - drop);
  memcpy(tail + *keep - drop, p + n - take, take);
  *keep += take - drop;
  tail[*keep] = '\0';
}

/* Reads one answer from fd: its head, then its body (none when head_only, as for a HEAD request): by its
 * Content-Length, or to the last chunk of a chunked one ("0\r\n" and the empty line; the engine's JSON holds no line
 * break). The engine's server (Go's net/http) sends a body of over 2 KiB chunked, as its container list is once a few
 * containers run. A long body is counted, not kept. The answer's status once it came whole, else -1. */
static inline int bench_read_answer(int fd, bool head_only) {
  char buf[65536];
  size_t len = 0;
  const char *end = NULL;
  while (!end) {
    ssize_t n = len < sizeof(buf) - 1 ? read(fd, buf + len, sizeof(buf) - 1 - len) : -1;
    if (n <= 0)
      return -1;
    len += (size_t)n;
    buf[len] = '\0';
    end = strstr(buf, "\r\n\r\n");
  }
  int status = strncmp(buf, "HTTP/1.1 ", 9) == 0 ? atoi(buf + 9) : -1;
  if (head_only || status < 0)
    return status;
  const char *cl = strcasestr(buf, "\r\nContent-Length:");
  bool chunked = strcasestr(buf, "\r\nTransfer-Encoding: chunked") != NULL;
  if ((!cl || cl > end) && !chunked)
    return -1;
  size_t want = chunked ? 0 : strtoul(cl + 17, NULL, 10), got = len - (size_t)(end + 4 - buf), keep = 0;
  char tail[6] = "";
  bench_tail_push(tail, &keep, end + 4, got);
  while (chunked ? strcmp(tail, "0\r\n\r\n") != 0 : got < want) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0)
      return -1;
    got += (size_t)n;
    bench_tail_push(tail, &keep, buf, (size_t)n);
  }
  return status;
}
