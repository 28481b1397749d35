/* Small I/O helpers of the cgroup module: bounded reads and checked writes of cgroupfs/procfs files, pidfds. */
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

/* Reads a small file relative to dirfd into buf (NUL-terminated); EFBIG when it does not fit. */
int cg_read_at(int dirfd, const char *name, char *buf, size_t size, ca_error **err) {
  _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return ca_error_set_errno(err, errno, "cannot open %s", name);
  size_t len = 0;
  for (;;) {
    ssize_t n = read(fd, buf + len, size - 1 - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return ca_error_set_errno(err, errno, "cannot read %s", name);
    if (n == 0)
      break;
    len += (size_t)n;
    if (len == size - 1)
      return ca_error_set(err, EFBIG, "%s is larger than %zu bytes", name, size - 1);
  }
  buf[len] = '\0';
  return (int)len;
}

static const char *write_hint(int e) {
  switch (e) {
    case EACCES:
    case EPERM:
    case EROFS:
      return "; run as root or pass --cgroup-root to a delegated subtree";
    case EBUSY:
      return "; the cgroup v2 no-internal-processes rule: the cgroup has processes of its own, pick a --cgroup-root "
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

int cg_read_path(const char *path, size_t max, char **ret, ca_error **err) {
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return ca_error_set_errno(err, errno, "cannot open %s", path);
  ca_buf b = CA_BUF_INIT(max);
  char chunk[8192];
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int e = errno;
      ca_buf_free(&b);
      return ca_error_set_errno(err, e, "cannot read %s", path);
    }
    if (n == 0)
      break;
    if (ca_buf_append(&b, chunk, (size_t)n, err) < 0) {
      ca_buf_free(&b);
      return ca_error_wrap(err, "%s", path);
    }
  }
  if (!b.data && ca_buf_append(&b, "", 0, err) < 0) {
    ca_buf_free(&b);
    return ca_error_wrap(err, "%s", path);
  }
  *ret = ca_buf_steal(&b, NULL);
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
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "%s/%d/stat", proc, (int)pid);
  char buf[1024];
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return ca_error_set_errno(err, errno == ENOENT ? ESRCH : errno, "cannot open %s", path);
  ssize_t n;
  do
    n = read(fd, buf, sizeof(buf) - 1);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return ca_error_set_errno(err, errno == ENOENT ? ESRCH : errno, "cannot read %s", path);
  buf[n] = '\0';
  if (cg_parse_proc_stat(buf, ret, err) < 0)
    return ca_error_wrap(err, "%s", path);
  return 0;
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
  /* The pidfd pins the identity: if pid was reused after pidfd_open the stat below shows another start time. */
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
