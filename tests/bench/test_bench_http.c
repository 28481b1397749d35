/* bench_http.h's reader against canned answers on a socketpair, each written in pieces (a thread, 2 ms apart) so that
 * the reader sees them split as a socket may deliver them: the engine's answers with a Content-Length, chunked ones
 * (Go's net/http chunks a body over 2 KiB, as the engine's container list once a few containers run), a body larger
 * than the reader's buffer, and answers that must fail. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "bench_http.h"

struct feed {
  int fd;
  const char *const *parts;
  bool close_after;
};

static void *write_parts(void *arg) {
  struct feed *f = arg;
  for (const char *const *p = f->parts; *p; p++) {
    size_t len = strlen(*p);
    cr_assert_eq(write(f->fd, *p, len), (ssize_t)len);
    usleep(2000);
  }
  if (f->close_after)
    shutdown(f->fd, SHUT_WR);
  return NULL;
}

/* bench_read_answer on what parts (NULL-terminated) write, the writer's end shut after them when close_after: the
 * status, or -1; the reader gives up after 2 s (a reader that waits for more than the answer holds). */
static int read_fed(const char *const *parts, bool head_only, bool close_after) {
  int sv[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  struct timeval tv = {.tv_sec = 2};
  cr_assert_eq(setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
  struct feed f = {.fd = sv[1], .parts = parts, .close_after = close_after};
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, write_parts, &f), 0);
  int status = bench_read_answer(sv[0], head_only);
  pthread_join(t, NULL);
  close(sv[0]);
  close(sv[1]);
  return status;
}

Test(bench_http, an_answer_with_a_content_length_in_pieces) {
  const char *parts[] = {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Le", "ngth: 7\r\n\r\n[{\"a\"",
                         ":1}]", NULL};
  cr_expect_eq(read_fed(parts, false, false), 200);
}

Test(bench_http, a_head_answer_has_no_body_whatever_its_length_says) {
  const char *parts[] = {"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 2\r\n", "\r\n", NULL};
  cr_expect_eq(read_fed(parts, true, false), 200);
}

Test(bench_http, a_chunked_answer_ends_with_its_last_chunk_split_anywhere) {
  const char *parts[] = {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
                         "8\r\n[{\"a\":1,\r\n",
                         "6\r\n\"b\":2}\r\n",
                         "1\r\n]\r\n0\r",
                         "\n\r",
                         "\n",
                         NULL};
  cr_expect_eq(read_fed(parts, false, false), 200, "the reader did not see the last chunk (the connection stays open)");
}

Test(bench_http, a_chunked_answer_longer_than_the_buffer) {
  static char head[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  char *chunk = malloc(40000 + 16);
  cr_assert(chunk);
  int n = sprintf(chunk, "%x\r\n", 40000);
  memset(chunk + n, 'x', 40000);
  strcpy(chunk + n + 40000, "\r\n");
  const char *parts[] = {head, chunk, chunk, "0\r\n\r\n", NULL};
  cr_expect_eq(read_fed(parts, false, false), 200);
  free(chunk);
}

Test(bench_http, an_answer_cut_short_fails) {
  const char *chunked[] = {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "4\r\n[{}]\r\n", NULL};
  cr_expect_eq(read_fed(chunked, false, true), -1, "a chunked body without its last chunk read as whole");
  const char *short_body[] = {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "[]", NULL};
  cr_expect_eq(read_fed(short_body, false, true), -1, "a body shorter than its length read as whole");
}

Test(bench_http, a_body_of_unknown_length_fails) {
  const char *parts[] = {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n", "[]", NULL};
  cr_expect_eq(read_fed(parts, false, true), -1);
}

Test(bench_http, a_refusal_is_read_whole_with_its_status) {
  const char *parts[] = {"HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n",
                         "{\"message\":\"\"}", NULL};
  cr_expect_eq(read_fed(parts, false, false), 502);
}
