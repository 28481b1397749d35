/* Workloads the live cgroup tests spawn. The test binary re-executes itself (/proc/self/exe) with CG_TEST_HELPER
 * set; this constructor runs the workload before Criterion's main, so the binary needs nothing outside itself (the
 * VM's initramfs holds only the binary and the libraries ldd lists). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helper.h"

static void sleep_ms(long ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
    ;
}

/* Lives until killed; SIGTERM is ignored (inherited from the tree's root). */
static _Noreturn void park(void) {
  for (;;)
    pause();
}

/* A tree of n processes that all ignore SIGTERM: a third setsid, a third double-forked daemons, a third plain
 * children; plus a loop that keeps forking short-lived children (it is the tree's last member). */
static _Noreturn void tree(int n) {
  signal(SIGTERM, SIG_IGN);
  for (int i = 0; i < n; i++) {
    pid_t pid = fork();
    if (pid < 0) {
      sleep_ms(1);
      i--; /* this member again: tree-ready means all of them */
      continue;
    }
    if (pid > 0)
      continue;
    switch (i % 3) {
      case 0:
        (void)setsid(); /* leaves our session and process group: kill -- -PGID misses it */
        park();
      case 1:
        /* The daemon dance: a new session, then a grandchild orphaned at once, so neither its parent nor its
         * process group leads back to the tree. */
        (void)setsid();
        if (fork() == 0)
          park();
        _exit(0);
      default:
        park();
    }
  }
  /* Reap the double-fork intermediates without waiting on anyone in particular. */
  struct sigaction sa = {.sa_handler = SIG_IGN, .sa_flags = SA_NOCLDWAIT};
  sigaction(SIGCHLD, &sa, NULL);
  if (fork() == 0) {
    for (;;) {
      pid_t pid = fork();
      if (pid == 0) {
        sleep_ms(20);
        _exit(0);
      }
      sleep_ms(2);
    }
  }
  (void)prctl(PR_SET_NAME, HELPER_TREE_READY);
  park();
}

/* Touches memory until the OOM killer stops it; exit 3 means a limit that did not bite. */
static _Noreturn void hog(void) {
  const size_t chunk = 1 << 20;
  for (size_t total = 0; total < (size_t)512 << 20; total += chunk) {
    char *p = malloc(chunk);
    if (!p)
      _exit(2);
    memset(p, 0xa5, chunk);
  }
  _exit(3);
}

/* Forks until the pids limit refuses; exits with the number of forks that worked (children stay until then). */
static _Noreturn void forkbomb(void) {
  int forked = 0;
  for (; forked < 64; forked++) {
    pid_t pid = fork();
    if (pid < 0)
      break;
    if (pid == 0)
      park();
  }
  int saved = errno;
  _exit(forked < 64 && saved != EAGAIN ? 99 : forked);
}

/* Burns CPU for ms of wall-clock time. */
static _Noreturn void spin(long ms) {
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  volatile unsigned long x = 0;
  do {
    for (int i = 0; i < 100000; i++)
      x += (unsigned long)i;
    clock_gettime(CLOCK_MONOTONIC, &t);
  } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
  _exit(0);
}

/* A relay, as a shell's `( cmd & ) &` makes one: each member lives ms, forks its successor and exits at once, so
 * that one member is alive at any moment. Until killed, or for 5 minutes: a test killed before its kill leaves no
 * relay whose pid keeps changing. */
static _Noreturn void relay(long ms) {
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    sleep_ms(ms);
    clock_gettime(CLOCK_MONOTONIC, &t);
    if (t.tv_sec - t0.tv_sec > 300)
      _exit(0);
    if (fork() > 0)
      _exit(0);
  }
}

/* Copies /proc/self/cgroup to the file named by CG_TEST_OUT: the first thing the new program does. */
static _Noreturn void show_cgroup(void) {
  const char *out = getenv("CG_TEST_OUT");
  int in = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
  int fd = out ? open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
  if (in < 0 || fd < 0)
    _exit(1);
  char buf[4096];
  ssize_t n;
  while ((n = read(in, buf, sizeof(buf))) > 0)
    if (write(fd, buf, (size_t)n) != n)
      _exit(1);
  _exit(n < 0 ? 1 : 0);
}

__attribute__((constructor)) static void helper_main(void) {
  const char *mode = getenv("CG_TEST_HELPER");
  if (!mode)
    return;
  if (strncmp(mode, "tree:", 5) == 0)
    tree(atoi(mode + 5));
  if (strcmp(mode, "hog") == 0)
    hog();
  if (strcmp(mode, "forkbomb") == 0)
    forkbomb();
  if (strncmp(mode, "spin:", 5) == 0)
    spin(atol(mode + 5));
  if (strncmp(mode, "relay:", 6) == 0)
    relay(atol(mode + 6));
  if (strcmp(mode, "cgroup") == 0)
    show_cgroup();
  if (strcmp(mode, "park") == 0) {
    signal(SIGTERM, SIG_IGN);
    park();
  }
  _exit(98);
}

const char *helper_self(void) {
  static char self[4096];
  if (!self[0]) {
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
      return "/proc/self/exe";
    self[n] = '\0';
  }
  return self;
}
