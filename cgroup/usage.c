/* The usage of the cgroup another process is in (cg_proc_usage in cgroup.h): what container-seq's self-protection
 * subtracts from the host's load, so that the session's own test is not taken for an overloaded host. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>

#include "cgroup-internal.h"

/* memory.stat's anonymous memory in dir/rel: "anon" on v2, "total_rss" (with the children) on v1. */
static int read_anon(const char *mount, const char *rel, bool v2, uint64_t *ret) {
  char path[PATH_MAX], buf[CG_SMALL_FILE_MAX * 2];
  if (snprintf(path, sizeof(path), "%s%s/memory.stat", mount, rel) >= (int)sizeof(path))
    return -ENAMETOOLONG;
  int r = ca_read_file_buf(AT_FDCWD, path, buf, sizeof(buf), NULL);
  if (r < 0)
    return r;
  return cg_parse_keyed(buf, v2 ? "anon" : "total_rss", ret, NULL);
}

int cg_proc_usage(const char *proc, const cg_mounts *m, pid_t pid, cg_usage *ret, ca_error **err) {
  char path[PATH_MAX], buf[CG_SMALL_FILE_MAX];
  snprintf(path, sizeof(path), "%s/%d/cgroup", proc ? proc : "/proc", (int)pid);
  if (ca_read_file_buf(AT_FDCWD, path, buf, sizeof(buf), NULL) < 0)
    return ca_error_set(err, ESRCH, "cgroup: process %d is gone", (int)pid);
  _cleanup_(cg_proc_cgroup_done) cg_proc_cgroup pc = {0};
  int r = cg_parse_proc_cgroup(buf, &pc, err);
  if (r < 0)
    return r;
  if (!m->unified || !pc.unified)
    return ca_error_set(err, ENOTSUP, "cgroup: no cgroup2 hierarchy to read the CPU time of process %d from", (int)pid);
  cg_cpu_stat cs;
  if (snprintf(path, sizeof(path), "%s%s/cpu.stat", m->unified, pc.unified) >= (int)sizeof(path) ||
      ca_read_file_buf(AT_FDCWD, path, buf, sizeof(buf), NULL) < 0 || cg_parse_cpu_stat(buf, &cs, NULL) < 0)
    return ca_error_set(err, ESRCH, "cgroup: cannot read the CPU time of process %d's cgroup", (int)pid);
  cg_usage u = {.cpu_usec = cs.usage_usec};
  u.has_memory = read_anon(m->unified, pc.unified, true, &u.anon_bytes) == 0 ||
                 (m->v1_memory && pc.v1_memory && read_anon(m->v1_memory, pc.v1_memory, false, &u.anon_bytes) == 0);
  *ret = u;
  return 0;
}
