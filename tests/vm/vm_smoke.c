/* First suite that runs inside the cgroup v2 VM (tests/vm/run-in-vm.sh): it proves the kernel there has the
 * controllers the cgroup module relies on, and that their limits really bite. It depends on no project module
 * on purpose, so a broken module cannot make the environment look broken (or the other way round). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

/* The harness mounts cgroup2 here; a pure v2 kernel is the point of the VM, so anything else is a failure. */
static const char cgroup_root[] = "/sys/fs/cgroup";

static void read_file(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
  ssize_t n = read(fd, buf, size - 1);
  int saved = errno;
  close(fd);
  cr_assert(n >= 0, "read %s: %s", path, strerror(saved));
  buf[n] = '\0';
}

static void write_file(const char *path, const char *value) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
  ssize_t n = write(fd, value, strlen(value));
  int saved = errno;
  close(fd);
  cr_assert(n == (ssize_t)strlen(value), "write '%s' to %s: %s", value, path, strerror(saved));
}

/* True when the whitespace-separated list holds word as a whole token. */
static bool has_word(const char *list, const char *word) {
  size_t len = strlen(word);
  for (const char *p = list; (p = strstr(p, word)) != NULL; p += len) {
    bool starts = p == list || p[-1] == ' ' || p[-1] == '\n';
    bool ends = p[len] == '\0' || p[len] == ' ' || p[len] == '\n';
    if (starts && ends)
      return true;
  }
  return false;
}

/* Value of "key N" in a flat-keyed cgroup file such as memory.events; -1 when the key is missing. */
static long long keyed_value(const char *text, const char *key) {
  size_t len = strlen(key);
  for (const char *line = text; *line;) {
    if (strncmp(line, key, len) == 0 && line[len] == ' ')
      return strtoll(line + len + 1, NULL, 10);
    const char *next = strchr(line, '\n');
    if (!next)
      break;
    line = next + 1;
  }
  return -1;
}

static void make_child_cgroup(char *path, size_t size, const char *name) {
  int n = snprintf(path, size, "%s/%s-%d", cgroup_root, name, (int)getpid());
  cr_assert(n > 0 && (size_t)n < size);
  cr_assert(mkdir(path, 0755) == 0, "mkdir %s: %s", path, strerror(errno));
}

static void remove_cgroup(const char *path) {
  /* The cgroup empties asynchronously after its last process was reaped; a few retries cover that. */
  for (int i = 0; i < 50; i++) {
    if (rmdir(path) == 0)
      return;
    if (errno != EBUSY)
      break;
    usleep(20 * 1000);
  }
  cr_assert_fail("rmdir %s: %s", path, strerror(errno));
}

/* Forks a child that joins the cgroup at path before it runs body(), so the limits apply from its first
 * allocation; returns its wait status. */
static int run_in_cgroup(const char *path, int (*body)(void)) {
  char procs[PATH_MAX];
  snprintf(procs, sizeof(procs), "%s/cgroup.procs", path);
  pid_t pid = fork();
  cr_assert(pid >= 0, "fork: %s", strerror(errno));
  if (pid == 0) {
    int fd = open(procs, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) != 1)
      _exit(100);
    close(fd);
    _exit(body());
  }
  int status;
  pid_t r;
  while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
    ;
  cr_assert(r == pid, "waitpid: %s", strerror(errno));
  return status;
}

Test(vm_env, pure_cgroup2_with_memory_pids_cpu) {
  struct statfs sfs;
  cr_assert(statfs(cgroup_root, &sfs) == 0, "statfs %s: %s", cgroup_root, strerror(errno));
  cr_assert(sfs.f_type == CGROUP2_SUPER_MAGIC, "%s is not a cgroup2 mount (f_type 0x%lx)", cgroup_root,
            (unsigned long)sfs.f_type);

  char controllers[512];
  read_file("/sys/fs/cgroup/cgroup.controllers", controllers, sizeof(controllers));
  const char *wanted[] = {"memory", "pids", "cpu"};
  for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++)
    cr_expect(has_word(controllers, wanted[i]), "cgroup.controllers lacks %s: '%s'", wanted[i], controllers);

  /* The harness enabled them for children; the cgroup module needs that to set limits below the root. */
  char subtree[512];
  read_file("/sys/fs/cgroup/cgroup.subtree_control", subtree, sizeof(subtree));
  for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++)
    cr_expect(has_word(subtree, wanted[i]), "cgroup.subtree_control lacks %s: '%s'", wanted[i], subtree);
}

/* Touches memory page by page. The cap far above the 16M limit only exists so that a limit that does not bite
 * ends in a clear test failure (exit 3) instead of the VM's global OOM killer. */
static int allocate_until_killed(void) {
  const size_t chunk = 1 << 20;
  for (size_t total = 0; total < (size_t)256 << 20; total += chunk) {
    char *p = malloc(chunk);
    if (!p)
      return 2;
    memset(p, 0xa5, chunk);
  }
  return 3;
}

Test(vm_env, memory_max_oom_kills_the_child) {
  char path[PATH_MAX], file[PATH_MAX + 32];
  make_child_cgroup(path, sizeof(path), "vm-smoke-oom");

  snprintf(file, sizeof(file), "%s/memory.max", path);
  write_file(file, "16M");
  /* Without swap.max 0 a machine with swap would page out instead of killing. */
  snprintf(file, sizeof(file), "%s/memory.swap.max", path);
  write_file(file, "0");

  int status = run_in_cgroup(path, allocate_until_killed);
  cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
            "child was not OOM-killed: %s %d (2: malloc failed, 3: allocated 256M under memory.max 16M, "
            "100: could not join the cgroup)",
            WIFSIGNALED(status) ? "signal" : "exit", WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));

  char events[512];
  snprintf(file, sizeof(file), "%s/memory.events", path);
  read_file(file, events, sizeof(events));
  cr_expect_eq(keyed_value(events, "oom_kill"), 1, "memory.events: expected oom_kill 1, got:\n%s", events);

  char limit[64];
  snprintf(file, sizeof(file), "%s/memory.max", path);
  read_file(file, limit, sizeof(limit));
  cr_expect_eq(strtoll(limit, NULL, 10), 16LL << 20, "memory.max reads back as %s", limit);

  remove_cgroup(path);
}

/* Forks until the pids limit refuses; returns how many forks succeeded (the children exit at once). */
static int fork_until_refused(void) {
  int forked = 0;
  pid_t kids[16];
  for (; forked < 16; forked++) {
    pid_t pid = fork();
    if (pid < 0)
      break;
    if (pid == 0) {
      pause();
      _exit(0);
    }
    kids[forked] = pid;
  }
  int saved = errno;
  for (int i = 0; i < forked; i++) {
    kill(kids[i], SIGKILL);
    waitpid(kids[i], NULL, 0);
  }
  /* Exit codes: the number of forks that worked, or 99 when fork failed for another reason than the limit. */
  return forked < 16 && saved != EAGAIN ? 99 : forked;
}

Test(vm_env, pids_max_refuses_forks) {
  char path[PATH_MAX], file[PATH_MAX + 32];
  make_child_cgroup(path, sizeof(path), "vm-smoke-pids");

  snprintf(file, sizeof(file), "%s/pids.max", path);
  write_file(file, "4");

  /* pids.max 4 counts the child itself, so it can fork exactly 3 more. */
  int status = run_in_cgroup(path, fork_until_refused);
  cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 3, "expected 3 forks under pids.max 4, got status 0x%x",
            status);

  char events[256];
  snprintf(file, sizeof(file), "%s/pids.events", path);
  read_file(file, events, sizeof(events));
  cr_expect_geq(keyed_value(events, "max"), 1, "pids.events: expected max >= 1, got:\n%s", events);

  remove_cgroup(path);
}

Test(vm_env, cpu_max_accepts_a_quota) {
  char path[PATH_MAX], file[PATH_MAX + 32];
  make_child_cgroup(path, sizeof(path), "vm-smoke-cpu");

  snprintf(file, sizeof(file), "%s/cpu.max", path);
  write_file(file, "50000 100000");
  char value[64];
  read_file(file, value, sizeof(value));
  cr_expect_str_eq(value, "50000 100000\n", "cpu.max reads back as '%s'", value);

  remove_cgroup(path);
}
