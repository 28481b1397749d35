/* Benchmark of the cgroup module (needs root and a cgroup2 mount; run by hand: build/tests/bench/bench_cgroup).
 *
 * 1. Kill to empty for trees of 100 and 1000 processes (a third setsid, a third double-forked daemons, all ignoring
 *    SIGTERM, one loop still forking): cg_leaf_kill_all (cgroup.kill), cg_leaf_kill_all by freeze + pidfd walk,
 *    against the bare kernel figure (write cgroup.kill, poll cgroup.events until "populated 0"). Plus how many
 *    processes survive `kill -KILL -- -PGID` and `timeout -s KILL` (counted in the leaf, then killed).
 * 2. Per-spawn overhead: cg_spawn (clone3 into the cgroup, and fork+join) against plain fork+execve, of /bin/true.
 * Prints one table with medians. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helper.h"
#include "live.h"

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof(double), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static _Noreturn void die(const char *what, ca_error *err) {
  fprintf(stderr, "bench_cgroup: %s: %s\n", what, err ? err->msg : strerror(errno));
  exit(1);
}

static cg_root *root;
static cg_root *walk_root;

/* A leaf holding a tree of n processes (plus the tree's root and forking loop), ready. */
static cg_leaf *make_tree(cg_root *r, int n, const char *wrapper, cg_process *ret) {
  char id[33];
  live_session_id(id);
  cg_leaf *leaf = NULL;
  ca_error *err = NULL;
  if (cg_leaf_create(r, id, NULL, &leaf, &err) < 0)
    die("create leaf", err);
  char mode[32];
  snprintf(mode, sizeof(mode), "tree:%d", n);
  if (wrapper) {
    /* timeout -s KILL 30 <self>: the tree runs under timeout(1); the caller then makes it fire early with SIGALRM
     * (its own timer signal), after which it kills its child and its process group as on a real timeout. */
    char env[64];
    snprintf(env, sizeof(env), "CG_TEST_HELPER=%s", mode);
    char *envp[] = {env, NULL};
    char t[] = "timeout", s[] = "-s", k[] = "KILL", d[] = "30";
    char *argv[] = {t, s, k, d, (char *)helper_self(), NULL};
    cg_spawn_options o = {.argv = argv, .envp = envp};
    if (cg_spawn(leaf, &o, ret, &err) < 0)
      die("spawn timeout", err);
  } else if (live_spawn_helper(leaf, mode, NULL, false, ret, &err) < 0) {
    die("spawn tree", err);
  }
  size_t want = (size_t)n + 2 + (wrapper ? 1 : 0);
  if (live_wait_count(leaf, want, 60000) < want) {
    fprintf(stderr, "bench_cgroup: the tree of %d did not come up\n", n);
    exit(1);
  }
  usleep(50000); /* let the double-fork intermediates exit */
  return leaf;
}

static size_t count_in(cg_leaf *leaf) {
  cg_proc_info *procs = NULL;
  size_t n = 0;
  if (cg_leaf_list_processes(leaf, &procs, &n, NULL) == 0)
    free(procs);
  return n;
}

static void finish(cg_leaf *leaf, cg_process *p) {
  ca_error *err = NULL;
  if (cg_leaf_kill_all(leaf, 30000000, &err) < 0)
    die("kill", err);
  if (p->pid > 0)
    live_reap(p->pid);
  close(p->pidfd);
  if (cg_leaf_remove(leaf, &err) < 0)
    die("remove", err);
  cg_leaf_free(leaf);
}

/* The kernel's own figure: write cgroup.kill, wait on cgroup.events (POLLPRI) until "populated 0". */
static double bare_kill(cg_leaf *leaf) {
  char path[600];
  snprintf(path, sizeof(path), "%s/cgroup.kill", cg_leaf_path(leaf));
  int kfd = open(path, O_WRONLY | O_CLOEXEC);
  snprintf(path, sizeof(path), "%s/cgroup.events", cg_leaf_path(leaf));
  int efd = open(path, O_RDONLY | O_CLOEXEC);
  if (kfd < 0 || efd < 0)
    die("open cgroup.kill/events", NULL);
  double t0 = now_ms();
  if (write(kfd, "1", 1) != 1)
    die("write cgroup.kill", NULL);
  char buf[128];
  for (;;) {
    ssize_t n = pread(efd, buf, sizeof(buf) - 1, 0);
    if (n <= 0)
      die("read cgroup.events", NULL);
    buf[n] = '\0';
    if (strstr(buf, "populated 0"))
      break;
    struct pollfd pfd = {.fd = efd, .events = POLLPRI};
    (void)poll(&pfd, 1, 1000); /* the kernel's change notification; a re-read follows either way */
  }
  double t = now_ms() - t0;
  close(kfd);
  close(efd);
  return t;
}

enum { REPS_MAX = 5 };
static int reps = REPS_MAX; /* --reps N: fewer for run-all.sh --quick */

static void kill_row(int n) {
  double bare[REPS_MAX], ours[REPS_MAX], walk[REPS_MAX];
  size_t pg_survivors[REPS_MAX], timeout_survivors[REPS_MAX];
  for (int i = 0; i < reps; i++) {
    cg_process p;
    cg_leaf *leaf = make_tree(root, n, NULL, &p);
    bare[i] = bare_kill(leaf);
    finish(leaf, &p);

    leaf = make_tree(root, n, NULL, &p);
    double t0 = now_ms();
    ca_error *err = NULL;
    if (cg_leaf_kill_all(leaf, 30000000, &err) < 0)
      die("cg_leaf_kill_all", err);
    ours[i] = now_ms() - t0;
    if (count_in(leaf) != 0)
      die("survivors after cg_leaf_kill_all", NULL);
    finish(leaf, &p);

    leaf = make_tree(walk_root, n, NULL, &p);
    t0 = now_ms();
    if (cg_leaf_kill_all(leaf, 30000000, &err) < 0)
      die("cg_leaf_kill_all (walk)", err);
    walk[i] = now_ms() - t0;
    if (count_in(leaf) != 0)
      die("survivors after the walk kill", NULL);
    finish(leaf, &p);

    leaf = make_tree(root, n, NULL, &p);
    (void)kill(-p.pid, SIGKILL); /* what `kill -KILL -- -PGID` does */
    usleep(200000);
    pg_survivors[i] = count_in(leaf);
    finish(leaf, &p);

    /* timeout(1) is the spawned process: SIGALRM makes it fire as if its 30 s had passed. */
    leaf = make_tree(root, n, "timeout", &p);
    (void)kill(p.pid, SIGALRM);
    live_reap(p.pid);
    usleep(200000);
    timeout_survivors[i] = count_in(leaf);
    p.pid = -1;
    finish(leaf, &p);
  }
  double pg[REPS_MAX], to[REPS_MAX];
  for (int i = 0; i < reps; i++) {
    pg[i] = (double)pg_survivors[i];
    to[i] = (double)timeout_survivors[i];
  }
  double b = median(bare, reps), o = median(ours, reps), w = median(walk, reps);
  printf("| %5d | %8.2f | %8.2f (%.2fx) | %8.2f (%.2fx) | %4.0f of %d | %4.0f of %d |\n", n, b, o, o / b, w, w / b,
         median(pg, reps), n + 2, median(to, reps), n + 2);
  fflush(stdout);
}

static double spawn_once(cg_leaf *leaf, int how) {
  char t[] = "/bin/true";
  char *argv[] = {t, NULL};
  char *envp[] = {NULL};
  double t0 = now_ms();
  if (how == 0) {
    pid_t pid = fork();
    if (pid == 0) {
      execve(t, argv, envp);
      _exit(127);
    }
    live_reap(pid);
  } else {
    cg_process p;
    ca_error *err = NULL;
    cg_spawn_options o = {.argv = argv, .envp = envp, .join_after_fork = how == 2};
    if (cg_spawn(leaf, &o, &p, &err) < 0)
      die("cg_spawn", err);
    live_reap(p.pid);
    close(p.pidfd);
  }
  return now_ms() - t0;
}

int main(int argc, char **argv) {
  char path[512], msg[512];
  if (argc == 3 && strcmp(argv[1], "--reps") == 0)
    reps = atoi(argv[2]);
  if (argc != 1 && (argc != 3 || reps < 1 || reps > REPS_MAX)) {
    fprintf(stderr, "usage: bench_cgroup [--reps 1-%d]\n", REPS_MAX);
    return 2;
  }
  if (!live_root_open(false, &root, path, sizeof(path), msg, sizeof(msg)) ||
      !live_root_open(true, &walk_root, path, sizeof(path), msg, sizeof(msg))) {
    fprintf(stderr, "bench_cgroup: %s\n", msg);
    return 1;
  }
  printf("cgroup mode %s, %d repetitions, medians\n\n", cg_mode_name(cg_root_mode(root)), reps);
  printf("Kill to empty (ms); survivors counted in the leaf 200 ms after the kill\n\n");
  printf("| procs | bare cgroup.kill | cg_leaf_kill_all | walk (freeze+pidfd) | kill -- -PGID survivors | timeout -s "
         "KILL survivors |\n");
  printf("|---|---|---|---|---|---|\n");
  kill_row(100);
  kill_row(1000);

  enum { SPAWNS = 300 };
  double v[3][SPAWNS];
  char id[33];
  live_session_id(id);
  cg_leaf *leaf = NULL;
  ca_error *err = NULL;
  if (cg_leaf_create(root, id, NULL, &leaf, &err) < 0)
    die("create leaf", err);
  for (int i = 0; i < SPAWNS; i++)
    for (int how = 0; how < 3; how++)
      v[how][i] = spawn_once(leaf, how);
  double base = median(v[0], SPAWNS);
  printf("\nSpawn of /bin/true until reaped (us, median of %d)\n\n", SPAWNS);
  printf("| fork+execve | cg_spawn clone3(CLONE_INTO_CGROUP) | cg_spawn fork+join |\n|---|---|---|\n");
  printf("| %.0f | %.0f (+%.0f) | %.0f (+%.0f) |\n", base * 1e3, median(v[1], SPAWNS) * 1e3,
         (median(v[1], SPAWNS) - base) * 1e3, median(v[2], SPAWNS) * 1e3, (median(v[2], SPAWNS) - base) * 1e3);
  if (cg_leaf_remove(leaf, &err) < 0)
    die("remove", err);
  cg_leaf_free(leaf);
  live_root_destroy(root);
  live_root_destroy(walk_root);
  return 0;
}
