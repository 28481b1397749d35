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

int cli_count_session_processes(const char *id) {
  char entry[80];
  snprintf(entry, sizeof(entry), "CLEANUP_AGENT_SESSION=%s", id);
  return cli_count_env_processes(entry);
}

int cli_count_env_processes(const char *entry) {
  return cli_find_env_processes(entry, NULL, 0);
}

int cli_find_env_processes(const char *entry, pid_t *ret_pids, size_t max) {
  const char *needle = entry;
  int nlen = (int)strlen(entry) + 1; /* with the NUL */
  DIR *d = opendir("/proc");
  cr_assert_not_null(d);
  struct dirent *de;
  int n = 0;
  while ((de = readdir(d))) {
    if (de->d_name[0] < '0' || de->d_name[0] > '9')
      continue;
    char path[300], buf[65536];
    snprintf(path, sizeof(path), "/proc/%s/environ", de->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      continue;
    ssize_t len = read(fd, buf, sizeof(buf));
    close(fd);
    for (ssize_t i = 0; i + nlen <= len; i++)
      if ((i == 0 || buf[i - 1] == '\0') && memcmp(buf + i, needle, (size_t)nlen) == 0) {
        if ((size_t)n < max)
          ret_pids[n] = (pid_t)atoi(de->d_name);
        n++;
        break;
      }
  }
  closedir(d);
  return n;
}
