/* Process names and the environment the agent's helpers show (process_name.h). After systemd's rename_process. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "common.h"
#include "process_name.h"

extern char **environ;

/* [start, end) of the argv and environment strings as the kernel laid them out; NULL when not recorded. */
static char *arg_start, *arg_end, *env_start, *env_end;

/* The smallest range holding every string of v (the kernel lays them out back to back). */
static void area_of(char **v, int n, char **ret_start, char **ret_end) {
  char *lo = NULL, *hi = NULL;
  for (int i = 0; v && (n < 0 ? v[i] != NULL : i < n); i++) {
    if (!v[i])
      continue;
    char *e = v[i] + strlen(v[i]) + 1;
    if (!lo || v[i] < lo)
      lo = v[i];
    if (!hi || e > hi)
      hi = e;
  }
  *ret_start = lo;
  *ret_end = hi;
}

void ag_process_name_init(int argc, char **argv) {
  area_of(argv, argc, &arg_start, &arg_end);
  area_of(environ, -1, &env_start, &env_end);
}

/* A fresh argv area holding exactly name, told to the kernel: needs CAP_SYS_RESOURCE. True when it took. */
static bool new_arg_area(const char *name) {
  size_t len = strlen(name) + 1, size = ((len + 4095) / 4096) * 4096;
  char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return false;
  memcpy(p, name, len);
  /* The start first: the kernel wants start <= end at each step, and the new area lies below the stack's. */
  if (prctl(PR_SET_MM, PR_SET_MM_ARG_START, (unsigned long)p, 0, 0) < 0) {
    (void)munmap(p, size);
    return false;
  }
  if (prctl(PR_SET_MM, PR_SET_MM_ARG_END, (unsigned long)(p + len), 0, 0) < 0)
    return false; /* the start moved already: the area stays mapped for it */
  return true;
}

void ag_process_rename(const char *short_name, const char *name) {
  (void)prctl(PR_SET_NAME, short_name); /* cut to 15 bytes by the kernel; cannot fail for our own process */
  if (geteuid() == 0)
    (void)new_arg_area(name); /* without it, the old area below is what the kernel shows */
  if (!arg_start)
    return;
  /* The old area too, whether or not the kernel looks there any more: what our own code sees as argv[0]. Filled
   * with NULs after the name, so that the kernel shows no leftover argument. */
  size_t room = (size_t)(arg_end - arg_start);
  size_t n = CA_MIN(strlen(name), room - 1);
  memcpy(arg_start, name, n);
  memset(arg_start + n, 0, room - n);
}

void ag_process_drop_tracking_env(void) {
  static const char *const vars[] = {AG_RUNNER_TRACKING_VARS};
  for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
    (void)unsetenv(vars[i]); /* a valid name: cannot fail */
    size_t k = strlen(vars[i]);
    for (char *p = env_start; p && p < env_end; p += strlen(p) + 1)
      if (strncmp(p, vars[i], k) == 0 && p[k] == '=')
        memset(p, 0, strlen(p)); /* an empty entry: every other string stays where environ points */
  }
}
