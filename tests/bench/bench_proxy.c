/* Benchmark of run's Docker labeling proxy (not a ctest test: prints a table).
 *
 *   bench_proxy [--reps N]
 *
 * Starts the proxy in this process (agent/proxy/proxy.c, the code run uses) in front of the engine of $DOCKER_HOST and
 * times, interleaved, direct against through the proxy: `docker ps`, `docker run --rm --network none
 * cleanup-test/busybox true` (the docker CLI, $DOCKER_CLI or /usr/bin/docker), and raw GET /_ping round trips on a
 * fresh connection and on a kept-alive one (the proxy's own cost without the CLI's start-up noise). Medians. Then the
 * throughput of 50 `docker run --rm` started at once, direct against through the proxy, and the memory (RSS of this
 * process, which runs the proxy as the agent does) and threads with 256 idle connections open (the connection cap).
 *
 * docker ps takes ~100 ms of which its two requests are ~1 ms: the CLI's start-up varies by more than the 1 ms the
 * target allows, so its pairs are many (4 per rep), interleaved with a second direct run whose difference to the first
 * is the method's noise floor, and the two requests it sends (HEAD /_ping, GET /containers/json on a fresh connection)
 * are timed alone as well. The 50 parallel runs come after every other timing: a docker ps or run timed right after
 * one measured the engine's clean-up of 50 containers (issue 21: +9 ms read for the proxy, which had followed a burst
 * four times in the first four pairs against twice for direct). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_http.h"
#include "bench_util.h"
#include "proxy.h"
#include "test_label.h"

static const char *docker_cli;

/* Runs the docker CLI with DOCKER_HOST=host, output to /dev/null; wall ns, or 0 when it failed. */
static uint64_t run_docker(const char *host, const char *const *args) {
  const char *argv[16] = {docker_cli};
  size_t n = 1;
  for (; args[n - 1] && n < 15; n++)
    argv[n] = args[n - 1];
  argv[n] = NULL;
  /* Our environment with DOCKER_HOST replaced: built here, since the proxy's threads run in this process. */
  size_t k = 0, m = 0;
  while (environ[m])
    m++;
  char **envp = calloc(m + 2, sizeof(char *));
  char var[4200];
  if (!envp)
    return 0;
  for (size_t i = 0; i < m; i++)
    if (strncmp(environ[i], "DOCKER_HOST=", 12) != 0)
      envp[k++] = environ[i];
  snprintf(var, sizeof(var), "DOCKER_HOST=%s", host);
  envp[k++] = var;
  int code;
  uint64_t t = bench_run_quiet(argv, envp, &code, NULL);
  free(envp);
  if (code != 0)
    fprintf(stderr, "bench_proxy: docker %s with DOCKER_HOST=%s exited %d after %.0f ms\n", args[0], host, code,
            t / 1e6);
  return code == 0 ? t : 0;
}

#define EXCHANGE_TIMEOUT_SEC 30

/* A connection whose reads and writes give up after EXCHANGE_TIMEOUT_SEC: an answer that never comes fails its
 * exchange, which says so (failed), rather than holding the benchmark until ctest's timeout. */
static int connect_unix(const char *path) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
  struct timeval tv = {.tv_sec = EXCHANGE_TIMEOUT_SEC};
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
                  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
                  connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)) {
    close(fd);
    return -1;
  }
  return fd;
}

/* One line on stderr for a measurement that failed (what, and through which path), so that a failed run says where;
 * counts it. The first failure ends the measuring (every loop below stops): the figures are not valid any more, and a
 * hung path would otherwise cost its timeout in every round. */
static int failed;
static void failed_at(const char *what, bool via_proxy, size_t round) {
  int e = errno;
  fprintf(stderr, "bench_proxy: %s %s failed in round %zu (%s)\n", what, via_proxy ? "through the proxy" : "direct",
          round,
          e == EAGAIN ? "no whole answer in time"
          : e         ? strerror(e)
                      : "not the answer expected, or the connection ended before it");
  failed++;
}

/* Writes a request of len bytes to fd and reads its answer: true when it came whole with the status 200. */
static bool exchange_ok(int fd, const char *req, size_t len, bool head_only) {
  return write(fd, req, len) == (ssize_t)len && bench_read_answer(fd, head_only) == 200;
}

/* One GET /_ping on fd; true when its answer came back. */
static bool ping(int fd) {
  static const char req[] = "GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n";
  return exchange_ok(fd, req, sizeof(req) - 1, false);
}

/* docker ps's requests as the CLI sends them on its one connection: HEAD /_ping (the version negotiation), then the
 * listing. True when both answers came back. */
static bool ps_requests(int fd) {
  static const char head[] = "HEAD /_ping HTTP/1.1\r\nHost: api.moby.localhost\r\n\r\n";
  static const char list[] = "GET /containers/json HTTP/1.1\r\nHost: api.moby.localhost\r\n\r\n";
  return exchange_ok(fd, head, sizeof(head) - 1, true) && exchange_ok(fd, list, sizeof(list) - 1, false);
}

/* exchange on a new connection to path, the connect included: wall ns, or 0 when it failed. */
static uint64_t on_fresh_connection(const char *path, bool (*exchange)(int fd)) {
  uint64_t t0 = bench_now_ns();
  int fd = connect_unix(path);
  bool ok = fd >= 0 && exchange(fd);
  uint64_t t = bench_now_ns() - t0;
  if (fd >= 0)
    close(fd);
  return ok ? t : 0;
}

#define PARALLEL 50
#define IDLE_CONNS 256

/* A figure of /proc/self/status ("VmRSS", "Threads"), or -1. */
static long self_status(const char *key) {
  FILE *f = fopen("/proc/self/status", "re");
  char line[256];
  long v = -1;
  size_t n = strlen(key);
  while (f && fgets(line, sizeof(line), f))
    if (strncmp(line, key, n) == 0 && line[n] == ':')
      v = strtol(line + n + 1, NULL, 10);
  if (f)
    fclose(f);
  return v;
}

struct parallel_run {
  const char *host;
  uint64_t ns;
};

static void *one_run(void *arg) {
  struct parallel_run *p = arg;
  static const char *const run[] = {
      "run",  "--rm", "--network", "none", "--label", AG_TEST_LABEL_KEY "=bench-proxy", "cleanup-test/busybox",
      "true", NULL};
  p->ns = run_docker(p->host, run);
  return NULL;
}

/* PARALLEL `docker run --rm` started at once against host: wall ns until the last ended, 0 when one failed. */
static uint64_t parallel_runs(const char *host) {
  struct parallel_run runs[PARALLEL];
  pthread_t t[PARALLEL];
  uint64_t t0 = bench_now_ns();
  size_t started = 0;
  for (; started < PARALLEL; started++) {
    runs[started] = (struct parallel_run){.host = host};
    if (pthread_create(&t[started], NULL, one_run, &runs[started]) != 0)
      break;
  }
  bool ok = started == PARALLEL;
  for (size_t i = 0; i < started; i++) {
    pthread_join(t[i], NULL);
    ok = ok && runs[i].ns;
  }
  return ok ? bench_now_ns() - t0 : 0;
}

/* The RSS (KiB) and threads of this process before and with IDLE_CONNS idle connections open on the proxy's socket. */
struct idle_memory {
  long rss_before, rss_idle, threads_before, threads_idle;
  unsigned open;
};

static void idle_connections(const char *sock, struct idle_memory *m) {
  int fds[IDLE_CONNS];
  m->rss_before = self_status("VmRSS");
  m->threads_before = self_status("Threads");
  m->open = 0;
  for (unsigned i = 0; i < IDLE_CONNS; i++)
    if ((fds[m->open] = connect_unix(sock)) >= 0)
      m->open++;
  usleep(1000 * 1000); /* the proxy accepts each and connects it to the engine */
  m->rss_idle = self_status("VmRSS");
  m->threads_idle = self_status("Threads");
  for (unsigned i = 0; i < m->open; i++)
    close(fds[i]);
  usleep(500 * 1000);
}

struct row {
  const char *what;
  uint64_t *direct, *proxied;
  size_t n;
};

static void print_row(struct row *r, const char *unit, double scale) {
  double d = bench_median(r->direct, r->n) / scale, p = bench_median(r->proxied, r->n) / scale;
  printf("| %-44s | %5zu | %10.3f %-2s | %10.3f %-2s | %+9.3f %-2s | %+7.2f%% |\n", r->what, r->n, d, unit, p, unit,
         p - d, unit, d > 0 ? (p - d) / d * 100 : 0);
}

int main(int argc, char **argv) {
  size_t reps = 30;
  if (argc == 3 && streq(argv[1], "--reps"))
    reps = (size_t)atoi(argv[2]);
  else if (argc != 1) {
    fprintf(stderr, "usage: bench_proxy [--reps N]\n");
    return 2;
  }
  /* As the agent (main.c): a connection the proxy or the engine closed fails a write, it does not kill the process. */
  signal(SIGPIPE, SIG_IGN);
  docker_cli = getenv("DOCKER_CLI") ? getenv("DOCKER_CLI") : "/usr/bin/docker";
  const char *host = getenv("DOCKER_HOST") ? getenv("DOCKER_HOST") : "unix:///var/run/docker.sock";
  const char *engine = ag_proxy_engine_socket(host);
  if (!engine || !ag_proxy_engine_answers(engine)) {
    fprintf(stderr, "bench_proxy: no engine answers at %s (set DOCKER_HOST=unix:///...)\n", host);
    return 1;
  }
  char dir[] = "/tmp/bench-proxy-XXXXXX";
  if (!mkdtemp(dir))
    return 1;
  char sock[128], proxy_host[160];
  snprintf(sock, sizeof(sock), "%s/proxy.sock", dir);
  snprintf(proxy_host, sizeof(proxy_host), "unix://%s", sock);
  static const char *const labels[] = {"io.cleanup-agent.session=0123456789abcdef0123456789abcdef",
                                       "io.cleanup-agent.managed=true", "io.cleanup-agent.mode=run",
                                       AG_TEST_LABEL_KEY "=bench-proxy", NULL};
  struct ag_proxy_config cfg = {
      .socket_path = sock, .engine_socket = engine, .session_id = "0123456789abcdef0123456789abcdef", .labels = labels};
  struct ag_proxy *px = NULL;
  ca_error *err = NULL;
  if (ag_proxy_start(&cfg, &px, &err) < 0) {
    fprintf(stderr, "bench_proxy: %s\n", err->msg);
    return 1;
  }

  static const char *const ps[] = {"ps", NULL};
  static const char *const run[] = {"run", "--rm", "--network", "none", "cleanup-test/busybox", "true", NULL};
  size_t n_ping = reps * 100, n_ps = reps * 4, par_reps = reps >= 10 ? 3 : 1; /* 100 containers a pair */
  uint64_t *ps_direct = calloc(n_ps, 8);
  /* run-all.sh reads the rows by the start of their names: the first five keep theirs, the later ones must not
   * contain those. */
  struct row rows[] = {
      {"GET /_ping, fresh connection (us)", calloc(n_ping, 8), calloc(n_ping, 8), n_ping},
      {"GET /_ping, kept-alive connection (us)", calloc(n_ping, 8), calloc(n_ping, 8), n_ping},
      {"docker ps (ms)", ps_direct, calloc(n_ps, 8), n_ps},
      {"docker run --rm busybox true (ms)", calloc(reps, 8), calloc(reps, 8), reps},
      {"50 parallel docker run --rm, all done (ms)", calloc(par_reps, 8), calloc(par_reps, 8), par_reps},
      {"HEAD /_ping + GET /containers/json, new conn (us)", calloc(n_ping, 8), calloc(n_ping, 8), n_ping},
      {"noise floor: ps direct, then direct again (ms)", ps_direct, calloc(n_ps, 8), n_ps},
  };
  int keep_direct = connect_unix(engine), keep_proxied = connect_unix(sock);
  for (size_t i = 0; i < n_ping && !failed; i++) {
    bool proxy_first = i % 2;
    for (int k = 0; k < 2; k++) {
      bool via = proxy_first == (k == 0);
      errno = 0;
      uint64_t t = on_fresh_connection(via ? sock : engine, ping);
      if (!((via ? rows[0].proxied : rows[0].direct)[i] = t))
        failed_at("GET /_ping on a fresh connection", via, i);
      errno = 0;
      uint64_t t0 = bench_now_ns();
      bool ok = ping(via ? keep_proxied : keep_direct);
      if (!((via ? rows[1].proxied : rows[1].direct)[i] = ok ? bench_now_ns() - t0 : 0))
        failed_at("GET /_ping on the kept-alive connection", via, i);
      errno = 0;
      uint64_t t2 = on_fresh_connection(via ? sock : engine, ps_requests);
      if (!((via ? rows[5].proxied : rows[5].direct)[i] = t2))
        failed_at("HEAD /_ping + GET /containers/json", via, i);
    }
  }
  /* Triples in the six orders in turn: direct, through the proxy, direct again (the noise floor). */
  static const int order[6][3] = {{0, 1, 2}, {1, 2, 0}, {2, 0, 1}, {0, 2, 1}, {2, 1, 0}, {1, 0, 2}};
  for (size_t i = 0; i < n_ps && !failed; i++)
    for (int k = 0; k < 3; k++) {
      int arm = order[i % 6][k];
      uint64_t t = run_docker(arm == 1 ? proxy_host : host, ps);
      (arm == 0 ? ps_direct : arm == 1 ? rows[2].proxied : rows[6].proxied)[i] = t;
      failed += !t;
    }
  for (size_t i = 0; i < reps && !failed; i++)
    for (int k = 0; k < 2; k++) {
      bool via = (i % 2) == (k == 0);
      uint64_t t = run_docker(via ? proxy_host : host, run);
      (via ? rows[3].proxied : rows[3].direct)[i] = t;
      failed += !t;
    }
  for (size_t i = 0; i < par_reps && !failed; i++)
    for (int k = 0; k < 2; k++) {
      bool via = (i % 2) == (k == 0);
      uint64_t t = parallel_runs(via ? proxy_host : host);
      (via ? rows[4].proxied : rows[4].direct)[i] = t;
      failed += !t;
    }
  close(keep_direct);
  close(keep_proxied);
  struct idle_memory mem;
  idle_connections(sock, &mem);
  ag_proxy_stop(px, 1000000);
  rmdir(dir);

  printf("Docker labeling proxy: direct vs through the proxy, interleaved, medians (engine %s)\n\n", host);
  printf("| %-44s | %5s | %13s | %13s | %12s | %8s |\n", "request", "n", "direct", "proxy", "added", "added");
  printf("|%.46s|%.7s|%.15s|%.15s|%.14s|%.10s|\n", "----------------------------------------------------", "--------",
         "----------------", "----------------", "---------------", "-----------");
  print_row(&rows[0], "us", 1e3);
  print_row(&rows[1], "us", 1e3);
  print_row(&rows[2], "ms", 1e6);
  print_row(&rows[3], "ms", 1e6);
  print_row(&rows[4], "ms", 1e6);
  print_row(&rows[5], "us", 1e3);
  print_row(&rows[6], "ms", 1e6);
  printf("\nMemory of this process (the proxy in it, as in the agent), %d idle connections open (%u accepted):\n\n",
         IDLE_CONNS, mem.open);
  printf("| %-44s | %10s | %10s | %10s |\n", "what", "none", "idle", "added");
  printf("|%.46s|%.12s|%.12s|%.12s|\n", "----------------------------------------------------", "-------------",
         "-------------", "-------------");
  printf("| %-44s | %10ld | %10ld | %+10ld |\n", "RSS, 256 idle connections (KiB)", mem.rss_before, mem.rss_idle,
         mem.rss_idle - mem.rss_before);
  printf("| %-44s | %10ld | %10ld | %+10ld |\n", "threads, 256 idle connections", mem.threads_before, mem.threads_idle,
         mem.threads_idle - mem.threads_before);
  printf("\nTargets: docker ps under 1 ms added; docker run --rm under 5%% added.%s\n",
         failed ? " SOME RUNS FAILED: numbers are not valid." : "");
  for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
    if (rows[i].direct != ps_direct)
      free(rows[i].direct);
    free(rows[i].proxied);
  }
  free(ps_direct);
  return failed ? 1 : 0;
}
