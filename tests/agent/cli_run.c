#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_run.h"

extern char **environ;

void cli_run(struct cli_result *r, const char *const *argv, const char *const *env) {
  int out[2], err[2];
  cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
  cr_assert_eq(pipe2(err, O_CLOEXEC), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(err[1], 2);
    for (const char *const *e = env; e && *e; e++)
      putenv((char *)*e);
    size_t n = 0;
    while (argv[n])
      n++;
    char **args = calloc(n + 2, sizeof(char *));
    /* Inside the test VM the agent is in AG_VM_EXTRA_DIR, not at its build path (tests/vm/run-in-vm.sh). */
    char vm_binary[256];
    const char *dir = getenv("AG_VM_EXTRA_DIR");
    snprintf(vm_binary, sizeof(vm_binary), "%s/cleanup-agent", dir ? dir : "");
    const char *binary = dir ? vm_binary : AG_BINARY;
    args[0] = (char *)binary;
    for (size_t i = 0; i < n; i++)
      args[i + 1] = (char *)argv[i];
    execv(binary, args);
    _exit(99);
  }
  close(out[1]);
  close(err[1]);
  size_t lo = 0, le = 0;
  struct pollfd p[2] = {{.fd = out[0], .events = POLLIN}, {.fd = err[0], .events = POLLIN}};
  int open_fds = 2;
  while (open_fds > 0) {
    cr_assert_geq(poll(p, 2, 60000), 1, "the agent said nothing for 60 s");
    for (int i = 0; i < 2; i++) {
      if (p[i].fd < 0 || !p[i].revents)
        continue;
      char *buf = i == 0 ? r->out : r->err;
      size_t *len = i == 0 ? &lo : &le;
      ssize_t n = read(p[i].fd, buf + *len, sizeof(r->out) - 1 - *len);
      if (n <= 0) {
        close(p[i].fd);
        p[i].fd = -1;
        open_fds--;
      } else {
        *len += (size_t)n;
      }
    }
  }
  r->out[lo] = r->err[le] = '\0';
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

size_t cli_count_lines(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    n += *s == '\n';
  return n;
}

/* One live process of /proc: its pid, parent, and whether it is one of those looked for. */
struct proc_ent {
  pid_t pid, ppid;
  bool found;
};

/* Reads the parent and state of pid from /proc/<pid>/stat; false when it is gone or a zombie (dead already). */
static bool read_stat(const char *pid, pid_t *ret_ppid) {
  char path[300], buf[1024];
  snprintf(path, sizeof(path), "/proc/%s/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  ssize_t len = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (len <= 0)
    return false;
  buf[len] = '\0';
  const char *p = strrchr(buf, ')'); /* the command name may hold anything, ')' included */
  char state;
  int ppid;
  if (!p || sscanf(p + 1, " %c %d", &state, &ppid) != 2)
    return false;
  *ret_ppid = (pid_t)ppid;
  return state != 'Z' && state != 'X';
}

/* Whether /proc/<pid>/environ holds the entry "K=V" exactly. */
static bool environ_has(const char *pid, const char *entry) {
  char path[300], buf[65536];
  snprintf(path, sizeof(path), "/proc/%s/environ", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  ssize_t len = read(fd, buf, sizeof(buf));
  close(fd);
  size_t nlen = strlen(entry) + 1; /* with the NUL */
  for (ssize_t i = 0; i + (ssize_t)nlen <= len; i++)
    if ((i == 0 || buf[i - 1] == '\0') && memcmp(buf + i, entry, nlen) == 0)
      return true;
  return false;
}

/* Whether a line of /proc/<pid>/cgroup (v1 or v2) puts pid in a cgroup named leaf or below one. */
static bool cgroup_names_leaf(const char *pid, const char *leaf) {
  char path[300], line[4096], want[128];
  snprintf(path, sizeof(path), "/proc/%s/cgroup", pid);
  snprintf(want, sizeof(want), "/%s", leaf);
  FILE *f = fopen(path, "re");
  if (!f)
    return false;
  bool in = false;
  while (!in && fgets(line, sizeof(line), f)) {
    line[strcspn(line, "\n")] = '\0';
    for (const char *p = strstr(line, want); p && !in; p = strstr(p + 1, want))
      in = p[strlen(want)] == '\0' || p[strlen(want)] == '/';
  }
  fclose(f);
  return in;
}

/* Marks every descendant of a found process as found too (the parent links of /proc, to a fixed point). */
static void mark_descendants(struct proc_ent *p, size_t n) {
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < n && !p[i].found; j++)
        if (p[j].found && p[j].pid == p[i].ppid)
          changed = p[i].found = true;
  }
}

int cli_find_processes(const char *env_entry, const char *cgroup_leaf, pid_t *ret_pids, size_t max) {
  DIR *d = opendir("/proc");
  cr_assert_not_null(d);
  size_t n = 0, cap = 1024;
  struct proc_ent *p = malloc(cap * sizeof(*p));
  cr_assert_not_null(p);
  struct dirent *de;
  while ((de = readdir(d))) {
    pid_t ppid;
    if (de->d_name[0] < '0' || de->d_name[0] > '9' || !read_stat(de->d_name, &ppid))
      continue;
    if (n == cap)
      cr_assert_not_null(p = realloc(p, (cap *= 2) * sizeof(*p)));
    p[n++] = (struct proc_ent){(pid_t)atoi(de->d_name), ppid,
                               (env_entry && environ_has(de->d_name, env_entry)) ||
                                   (cgroup_leaf && cgroup_names_leaf(de->d_name, cgroup_leaf))};
  }
  closedir(d);
  mark_descendants(p, n);
  int found = 0;
  for (size_t i = 0; i < n; i++)
    if (p[i].found && p[i].pid != getpid()) {
      if ((size_t)found < max)
        ret_pids[found] = p[i].pid;
      found++;
    }
  free(p);
  return found;
}

int cli_count_session_processes(const char *id) {
  return cli_find_session_processes(id, NULL, 0);
}

int cli_find_session_processes(const char *id, pid_t *ret_pids, size_t max) {
  char entry[80], leaf[48];
  snprintf(entry, sizeof(entry), "CLEANUP_AGENT_SESSION=%s", id);
  snprintf(leaf, sizeof(leaf), "run-%s", id);
  return cli_find_processes(entry, leaf, ret_pids, max);
}

int cli_count_env_processes(const char *entry) {
  return cli_find_env_processes(entry, NULL, 0);
}

int cli_find_env_processes(const char *entry, pid_t *ret_pids, size_t max) {
  return cli_find_processes(entry, NULL, ret_pids, max);
}
