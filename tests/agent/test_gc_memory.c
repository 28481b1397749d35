/* gc's memory does not follow the engine's population (issue 19): gc --dry-run against a fake engine that lists N
 * containers of sessions gc cannot judge (no lock file here, another machine), at two populations 20 times apart;
 * the peak RSS of the gc process (wait4's rusage) must stay within a small margin. Before the list was streamed,
 * gc held the whole answer and its cJSON tree: this test saw 18,176 KiB at 1,000 and 166,584 KiB at 20,000
 * (about 7.8 KiB per listed container); streamed, 10,904 and 10,916. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "fake_daemon.h"

struct engine {
  unsigned n; /* containers listed */
};

/* A container as the engine lists it (about 1.3 KiB, like Debian 12's engine), of a session gc cannot judge. */
static void add_container(ca_buf *b, unsigned i) {
  /* every field is of fixed width: every element has the same length */
  cr_assert_eq(
      ca_buf_appendf(
          b, NULL,
          "%s{\"Id\":\"%064x\",\"Names\":[\"/bench-%08u\"],\"Image\":\"cleanup-test/busybox:latest\","
          "\"ImageID\":\"sha256:ac113878ffbd8a16c1b0ac0c8ce491e790c91f23f5692c771f4b716d97bf198c\",\"Command\":\"sleep "
          "3600\",\"Created\":1796460918,\"Ports\":[],\"Labels\":{\"io.cleanup-agent.session\":\"%032x\","
          "\"io.cleanup-agent.managed\":\"true\",\"io.cleanup-agent.host\":\"elsewhere\",\"io.cleanup-agent.machine\":"
          "\"0123456789abcdef0123456789abcdef\",\"io.cleanup-agent.boot-id\":\"b0\",\"io.cleanup-agent.pidns\":"
          "\"4026531836\",\"io.cleanup-agent.owner-pid\":\"1\",\"io.cleanup-agent.owner-start\":\"1\","
          "\"io.cleanup-agent.created\":\"1796460918\",\"io.cleanup-agent.mode\":\"run\"},\"State\":\"created\","
          "\"Status\":\"Created\",\"HostConfig\":{\"NetworkMode\":\"none\"},\"NetworkSettings\":{\"Networks\":{"
          "\"none\":{\"IPAMConfig\":null,\"Links\":null,\"Aliases\":null,\"NetworkID\":"
          "\"2d4f8d5c1a5e6e3f0c4c2b0a9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c\",\"EndpointID\":\"\",\"Gateway\":\"\","
          "\"IPAddress\":\"\",\"IPPrefixLen\":0,\"IPv6Gateway\":\"\",\"GlobalIPv6Address\":\"\","
          "\"GlobalIPv6PrefixLen\":0,\"MacAddress\":\"\",\"DriverOpts\":null}}},\"Mounts\":[]}",
          i ? "," : "", i + 1, i, i + 1),
      0);
}

/* The answer is written as it is made, a batch of containers at a time: the test process never holds it (a child's
 * peak RSS counts what it shared with its parent before exec). */
static void serve_containers(int conn, unsigned n) {
  ca_buf b;
  ca_buf_init(&b, 1u << 20);
  add_container(&b, 1);
  size_t one = b.len - 1, total = n ? 2 + n * one + (n - 1) : 2;
  char head[256];
  int k = snprintf(
      head, sizeof(head),
      "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n[", total);
  fake_write(conn, head, (size_t)k);
  ca_buf_reset(&b);
  for (unsigned i = 0; i < n; i++) {
    add_container(&b, i);
    if (b.len > 60000 || i + 1 == n) {
      fake_write(conn, b.data, b.len);
      ca_buf_reset(&b);
    }
  }
  fake_write(conn, "]", 1);
  ca_buf_free(&b);
}

static bool serve(void *userdata, const struct fake_request *rq, int conn) {
  struct engine *e = userdata;
  if (strcmp(rq->path, "/_ping") == 0)
    fake_reply(conn, 200, "1.41", "text/plain", "OK");
  else if (strstr(rq->path, "/containers/json"))
    serve_containers(conn, e->n);
  else if (strstr(rq->path, "/volumes"))
    fake_reply(conn, 200, "1.41", "application/json", "{\"Volumes\":[],\"Warnings\":null}");
  else if (strstr(rq->path, "/networks"))
    fake_reply(conn, 200, "1.41", "application/json", "[]");
  else
    fake_reply(conn, 404, "1.41", "application/json", "{\"message\":\"page not found\"}");
  return true;
}

/* gc --dry-run's peak RSS in KiB against an engine listing n containers. */
static long gc_peak_rss_kib(unsigned n) {
  struct engine e = {n};
  struct fake_daemon *d = fake_start(serve, &e);
  char state[] = "/tmp/gc-memory.XXXXXX";
  cr_assert(mkdtemp(state));
  char host[512];
  snprintf(host, sizeof(host), "%s", fake_host(d));
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    execl(AG_BINARY, AG_BINARY, "--docker-host", host, "--state-dir", state, "--cgroup-root", state, "--log-level",
          "error", "gc", "--dry-run", (char *)NULL);
    _exit(127);
  }
  int status;
  struct rusage ru;
  cr_assert_eq(wait4(pid, &status, 0, &ru), pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "gc over %u containers: status %d", n, status);
  cr_assert_geq(fake_count(d, "GET", "/v"), 1);
  fake_stop(d);
  char cmd[600];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", state);
  cr_assert_eq(system(cmd), 0);
  return ru.ru_maxrss;
}

Test(gc_memory, peak_rss_is_flat_with_the_population) {
  signal(SIGPIPE, SIG_IGN);
  long small = gc_peak_rss_kib(1000), large = gc_peak_rss_kib(20000);
  fprintf(stderr, "gc --dry-run peak RSS: %ld KiB with 1,000 containers listed, %ld KiB with 20,000\n", small, large);
  /* 19,000 more containers are 25 MiB more of answer: flat means well under one container's answer each */
  cr_assert_lt(large - small, 2048, "gc's peak RSS grew by %ld KiB for 19,000 more containers (%ld -> %ld)",
               large - small, small, large);
}
