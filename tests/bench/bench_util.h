/* Timing helpers shared by the benchmark programs (not a library: static inline, header only). */
#pragma once

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static inline uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline int bench_cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Median of n samples (sorts v). */
static inline double bench_median(uint64_t *v, size_t n) {
  qsort(v, n, sizeof(*v), bench_cmp_u64);
  return n % 2 ? (double)v[n / 2] : (double)(v[n / 2 - 1] + v[n / 2]) / 2.0;
}

/* The number of lines a shell command prints (docker ps -q ... counts), -1 when it cannot be run. */
static inline int bench_count_lines(const char *cmd) {
  FILE *p = popen(cmd, "r");
  if (!p)
    return -1;
  int n = 0, c;
  while ((c = fgetc(p)) != EOF)
    n += c == '\n';
  return pclose(p) == 0 ? n : -1;
}

/* Runs argv in environment envp (NULL: ours) with stdout and stderr on /dev/null and waits for it. Returns the wall
 * time in ns; *ret_code gets the exit code (128+N for a signal), *ret_maxrss the max RSS in KiB; either may be NULL. */
static inline uint64_t bench_run_quiet(const char *const *argv, char *const *envp, int *ret_code, long *ret_maxrss) {
  uint64_t t0 = bench_now_ns();
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open("/dev/null", O_WRONLY);
    dup2(fd, 1);
    dup2(fd, 2);
    execve(argv[0], (char *const *)argv, envp ? envp : environ); /* execve does not write to argv */
    _exit(127);
  }
  int st = 0;
  struct rusage ru = {0};
  if (pid < 0 || wait4(pid, &st, 0, &ru) < 0)
    st = 127 << 8;
  uint64_t t = bench_now_ns() - t0;
  if (ret_code)
    *ret_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  if (ret_maxrss)
    *ret_maxrss = ru.ru_maxrss;
  return t;
}
