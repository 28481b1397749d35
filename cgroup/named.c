/* Processes in cgroups the module did not make, found by name: a container's cgroup is named after its id
 * ("/docker/<id>", "/system.slice/docker-<id>.scope"), so a caller that knows the ids can signal the containers'
 * processes itself. A process counts when its own cgroup (the last component of its path) has the name.
 *
 * One walk of /proc. A process whose cgroup file names none of the cgroups is skipped after one read; a candidate is
 * pinned with a pidfd, and its cgroup and start time are read again through that pin before the signal goes through
 * the pidfd, so a reused pid is never hit. Only the cgroup2 path and the v1 pids, memory and cpu paths count. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgroup-internal.h"

static int cmp_name(const void *a, const void *b) {
  const cg_named *const *x = a, *const *y = b;
  return strcmp((*x)->name, (*y)->name);
}

struct lookup {
  cg_named **sorted;
  size_t n;
};

/* The entry named like the last component of path (the process's own cgroup), or NULL. A process in a cgroup below
 * a named one is not matched: it may be another container's, nested there with --cgroup-parent. */
static cg_named *match_path(const struct lookup *l, const char *path) {
  const char *slash = strrchr(path, '/');
  cg_named key = {.name = slash ? slash + 1 : path}, *kp = &key;
  if (!*key.name)
    return NULL;
  cg_named **hit = bsearch(&kp, l->sorted, l->n, sizeof(*l->sorted), cmp_name);
  return hit ? *hit : NULL;
}

static cg_named *match_cgroup_file(const struct lookup *l, const char *text) {
  cg_proc_cgroup pc = {0};
  if (cg_parse_proc_cgroup(text, &pc, NULL) < 0)
    return NULL;
  const char *paths[] = {pc.unified, pc.v1_pids, pc.v1_memory, pc.v1_cpu};
  cg_named *hit = NULL;
  for (size_t i = 0; i < ELEMENTSOF(paths) && !hit; i++)
    hit = paths[i] ? match_path(l, paths[i]) : NULL;
  cg_proc_cgroup_done(&pc);
  return hit;
}

/* "btime" of /proc/stat: the boot time in unix seconds. */
static int boot_time(const char *proc, int64_t *ret) {
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "%s/stat", proc);
  _cleanup_free_ char *text = NULL;
  if (cg_read_path(path, CG_PROCS_FILE_MAX, &text, NULL) < 0)
    return -EIO;
  const char *p = strstr(text, "\nbtime ");
  long long v;
  if (!p || sscanf(p + 7, "%lld", &v) != 1 || v <= 0)
    return -EINVAL;
  *ret = v;
  return 0;
}

/* Signals pid when the process it names is in one of the cgroups and started no earlier than that entry allows.
 * Returns 1 when signalled, 0 when not a member (or gone), negative on a signal error. */
static int signal_candidate(const char *proc, int procfd, const struct lookup *l, pid_t pid, int64_t btime_us,
                            long ticks, int sig, cg_proc_info *ret) {
  _cleanup_close_ int pidfd = cg_pidfd_open(pid);
  if (pidfd < 0)
    return 0;
  char rel[64], buf[CG_SMALL_FILE_MAX];
  snprintf(rel, sizeof(rel), "%d/cgroup", (int)pid);
  if (cg_read_at(procfd, rel, buf, sizeof(buf), NULL) < 0)
    return 0;
  cg_named *hit = match_cgroup_file(l, buf);
  cg_proc_stat st;
  if (!hit || cg_proc_read_stat(proc, pid, &st, NULL) < 0 || st.state == 'Z' || st.state == 'X')
    return 0;
  int64_t started_us = btime_us + (int64_t)(st.start_time * 1000000u / (uint64_t)ticks);
  if (started_us < hit->not_before_us)
    return 0;
  if (cg_pidfd_send_signal(pidfd, sig) < 0)
    return errno == ESRCH ? 0 : -errno;
  hit->signalled++;
  *ret = (cg_proc_info){.pid = pid, .start_time = st.start_time};
  memcpy(ret->comm, st.comm, sizeof(ret->comm));
  return 1;
}

static int append_proc(cg_proc_info **procs, size_t *n, size_t *cap, const cg_proc_info *p) {
  if (*n == *cap) {
    size_t nc = *cap ? *cap * 2 : 64;
    cg_proc_info *grown = realloc(*procs, nc * sizeof(**procs));
    if (!grown)
      return -ENOMEM;
    *procs = grown;
    *cap = nc;
  }
  (*procs)[(*n)++] = *p;
  return 0;
}

int cg_signal_named(const char *proc, cg_named *names, size_t n, int sig, cg_proc_info **ret_procs, size_t *ret_n,
                    ca_error **err) {
  if (!proc)
    proc = "/proc";
  if (ret_procs) {
    *ret_procs = NULL;
    *ret_n = 0;
  }
  if (n == 0)
    return 0;
  int64_t btime;
  long ticks = sysconf(_SC_CLK_TCK);
  if (boot_time(proc, &btime) < 0 || ticks <= 0)
    return ca_error_set(err, EIO, "cannot read the boot time from %s/stat", proc);
  _cleanup_free_ cg_named **sorted = calloc(n, sizeof(*sorted));
  if (!sorted)
    return ca_error_set(err, ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++)
    sorted[i] = &names[i];
  qsort(sorted, n, sizeof(*sorted), cmp_name);
  struct lookup l = {sorted, n};

  _cleanup_close_ int procfd = open(proc, O_PATH | O_DIRECTORY | O_CLOEXEC);
  DIR *d = procfd >= 0 ? opendir(proc) : NULL;
  if (!d)
    return ca_error_set_errno(err, errno, "cannot list %s", proc);
  pid_t self = getpid();
  int total = 0, first_error = 0;
  size_t cap = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    char *end;
    long pid = strtol(de->d_name, &end, 10);
    if (*end || pid <= 0 || pid == self)
      continue;
    /* The cheap filter first: most processes are in no named cgroup and cost one read. */
    char rel[64], buf[CG_SMALL_FILE_MAX];
    snprintf(rel, sizeof(rel), "%ld/cgroup", pid);
    if (cg_read_at(procfd, rel, buf, sizeof(buf), NULL) < 0 || !match_cgroup_file(&l, buf))
      continue;
    cg_proc_info hit;
    int r = signal_candidate(proc, procfd, &l, (pid_t)pid, btime * 1000000, ticks, sig, &hit);
    if (r > 0) {
      total++;
      if (ret_procs && append_proc(ret_procs, ret_n, &cap, &hit) < 0) {
        closedir(d);
        return ca_error_set(err, ENOMEM, "out of memory");
      }
    } else if (r < 0 && !first_error)
      first_error = r;
  }
  closedir(d);
  if (first_error && total == 0)
    return ca_error_set_errno(err, -first_error, "cannot signal the processes of the named cgroups");
  return total;
}
