/* Small I/O helpers of the cgroup module: checked writes of cgroupfs files, /proc/<pid>/stat, pidfds. Reads go
 * through common's ca_read_file_buf and ca_read_file. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>

#include "cgroup-internal.h"

uint64_t cg_now_usec(void) {
  struct timespec ts;
  (void)clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail with a valid clock id */
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static const char *write_hint(int e) {
  switch (e) {
    case EACCES:
    case EPERM:
    case EROFS:
      return "; run as root or choose a cgroup root in a delegated subtree";
    case EBUSY:
      return "; the cgroup v2 no-internal-processes rule: the cgroup has processes of its own, pick a cgroup root "
             "whose ancestors hold none";
    default:
      return "";
  }
}

int cg_write_at(int dirfd, const char *dir_for_msg, const char *name, const char *value, ca_error **err) {
  _cleanup_close_ int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return ca_error_set(err, errno, "cannot write %s/%s: %s%s", dir_for_msg, name, strerror(errno), write_hint(errno));
  size_t len = strlen(value);
  ssize_t n;
  do
    n = write(fd, value, len);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return ca_error_set(err, errno, "cannot write \"%s\" to %s/%s: %s%s", value, dir_for_msg, name, strerror(errno),
                        write_hint(errno));
  if ((size_t)n != len)
    return ca_error_set(err, EIO, "short write of \"%s\" to %s/%s", value, dir_for_msg, name);
  return 0;
}

int cg_write_path(const char *path, const char *value, ca_error **err) {
  _cleanup_free_ char *dir = strdup(path);
  if (!dir)
    return ca_error_set(err, ENOMEM, "out of memory");
  char *slash = strrchr(dir, '/');
  if (!slash)
    return ca_error_set(err, EINVAL, "not an absolute path: %s", path);
  *slash = '\0';
  _cleanup_close_ int dirfd = open(slash == dir ? "/" : dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0)
    return ca_error_set(err, errno, "cannot open %s: %s%s", dir, strerror(errno), write_hint(errno));
  return cg_write_at(dirfd, dir, slash + 1, value, err);
}

bool cg_has_word(const char *list, const char *word) {
  size_t len = strlen(word);
  for (const char *p = list; (p = strstr(p, word)) != NULL; p += len) {
    bool starts = p == list || p[-1] == ' ' || p[-1] == '\n';
    bool ends = p[len] == '\0' || p[len] == ' ' || p[len] == '\n';
    if (starts && ends)
      return true;
  }
  return false;
}

int cg_proc_read_stat(const char *proc, pid_t pid, cg_proc_stat *ret, ca_error **err) {
  char path[PATH_MAX], buf[CG_SMALL_FILE_MAX];
  snprintf(path, sizeof(path), "%s/%d/stat", proc ? proc : "/proc", (int)pid);
  int r = ca_read_file_buf(AT_FDCWD, path, buf, sizeof(buf), err);
  /* No directory: the pid is free; ESRCH: the process was reaped between the open and the read. */
  if (r == -ENOENT || r == -ESRCH)
    return ca_error_set(err, ESRCH, "read %s: process %d is gone", path, (int)pid);
  if (r < 0)
    return r;
  if (cg_parse_proc_stat(buf, ret, err) < 0)
    return ca_error_wrap(err, "%s", path);
  return 0;
}

int cg_proc_start_time(const char *proc, pid_t pid, uint64_t *ret, ca_error **err) {
  cg_proc_stat st;
  int r = cg_proc_read_stat(proc, pid, &st, err);
  if (r == 0)
    *ret = st.start_time;
  return r;
}

int cg_proc_alive(pid_t pid, uint64_t start_time) {
  uint64_t now;
  if (cg_proc_start_time(NULL, pid, &now, NULL) == 0)
    return now == start_time ? 1 : -1;
  /* No stat to read: gone only when the kernel says no process has the pid (signal 0 is sent to nobody). */
  return kill(pid, 0) < 0 && errno == ESRCH ? -1 : 0;
}

int cg_pidfd_open(pid_t pid) {
  return (int)syscall(SYS_pidfd_open, pid, 0);
}

int cg_pidfd_send_signal(int pidfd, int sig) {
  return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

bool cg_rel_is_inside(const char *rel, const char *leaf_rel) {
  size_t len = strlen(leaf_rel);
  return strncmp(rel, leaf_rel, len) == 0 && (rel[len] == '\0' || rel[len] == '/');
}

int cg_signal_verified(const char *proc, pid_t pid, uint64_t start_time, int sig, ca_error **err) {
  if (!proc)
    proc = "/proc";
  if (pid <= 0)
    return ca_error_set(err, EINVAL, "refusing to signal pid %d", (int)pid);
  _cleanup_close_ int pidfd = cg_pidfd_open(pid);
  if (pidfd < 0)
    return ca_error_set_errno(err, errno, "pid %d", (int)pid);
  /* Opened before the start time is read: a pid reused before the open shows the newcomer's start time below; if the
   * pinned process exits after the open, the signal through the pidfd reaches nobody rather than a newcomer. */
  cg_proc_stat st;
  if (cg_proc_read_stat(proc, pid, &st, err) < 0)
    return ca_error_wrap(err, "pid %d", (int)pid);
  if (st.start_time != start_time)
    return ca_error_set(err, ESRCH, "pid %d is now another process (start time %llu, expected %llu); not signalled",
                        (int)pid, (unsigned long long)st.start_time, (unsigned long long)start_time);
  if (cg_pidfd_send_signal(pidfd, sig) < 0)
    return ca_error_set_errno(err, errno, "cannot signal pid %d", (int)pid);
  return 0;
}
