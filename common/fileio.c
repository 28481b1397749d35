/* Whole-file reads with a cap (the only readers of whole files in the tree), complete writes, and atomic replacement
 * of files in the state directory. */
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

int ca_write_all(int fd, const void *data, size_t len) {
  const char *p = data;
  bool sock = true; /* until send says otherwise */
  while (len > 0) {
    ssize_t n = sock ? send(fd, p, len, MSG_NOSIGNAL) : write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == ENOTSOCK && sock) {
        sock = false;
        continue;
      }
      return -errno;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* fsync of the directory that holds path, so that a rename survives a crash of the machine. */
static int fsync_parent(const char *path) {
  _cleanup_free_ char *copy = strdup(path);
  if (!copy)
    return -ENOMEM;
  _cleanup_close_ int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return -errno;
  if (fsync(dfd) < 0)
    return -errno;
  return 0;
}

int ca_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode, ca_error **err) {
  return ca_write_file_atomic_flags(path, data, len, mode, 0, err);
}

int ca_write_file_atomic_flags(const char *path, const void *data, size_t len, mode_t mode, unsigned flags,
                               ca_error **err) {
  _cleanup_free_ char *tmp = NULL;
  /* The pid keeps concurrent writers (agent and guardian) off each other's temp file. */
  if (asprintf(&tmp, "%s.tmp.%ld", path, (long)getpid()) < 0)
    return ca_error_set(err, ENOMEM, "write %s: out of memory", path);
  _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0)
    return ca_error_set_errno(err, errno, "write %s: create %s", path, tmp);
  int r;
  /* Creation masks the mode with the umask; the caller's mode is what it asked for. */
  if (fchmod(fd, mode) < 0)
    r = -errno;
  else if ((r = ca_write_all(fd, data, len)) == 0 && fsync(fd) < 0)
    r = -errno;
  if (r == 0 && close(fd) < 0)
    r = -errno;
  fd = -1;
  if (r == 0 && rename(tmp, path) < 0)
    r = -errno;
  if (r < 0) {
    (void)unlink(tmp); /* best effort: the error below is what matters */
    return ca_error_set_errno(err, -r, "write %s", path);
  }
  if (flags & CA_WRITE_NO_DIR_SYNC)
    return 0;
  r = fsync_parent(path);
  if (r < 0)
    return ca_error_set_errno(err, -r, "write %s: sync directory", path);
  return 0;
}

/* read() until size bytes are in or the end of the file, retrying EINTR; the count read, or -errno. */
static ssize_t read_full(int fd, char *buf, size_t size) {
  size_t got = 0;
  while (got < size) {
    ssize_t n = read(fd, buf + got, size - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    if (n == 0)
      break;
    got += (size_t)n;
  }
  return (ssize_t)got;
}

static int open_for_read(int dirfd, const char *name, ca_error **err) {
  int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0)
    return fd;
  if (errno == ELOOP)
    return ca_error_set(err, ELOOP, "read %s: is a symbolic link, refusing to follow it", name);
  return ca_error_set_errno(err, errno, "read %s", name);
}

int ca_read_file_at(int dirfd, const char *name, size_t max, char **ret_data, size_t *ret_len, ca_error **err) {
  _cleanup_close_ int fd = open_for_read(dirfd, name, err);
  if (fd < 0)
    return fd;
  ca_buf b = CA_BUF_INIT(max);
  char chunk[8192];
  for (;;) {
    ssize_t n = read_full(fd, chunk, sizeof(chunk));
    if (n < 0) {
      ca_buf_free(&b);
      return ca_error_set_errno(err, (int)-n, "read %s", name);
    }
    if (ca_buf_append(&b, chunk, (size_t)n, NULL) < 0) {
      ca_buf_free(&b);
      return ca_error_set(err, EFBIG, "read %s: larger than the limit of %zu bytes", name, max);
    }
    if ((size_t)n < sizeof(chunk))
      break;
  }
  char *data = ca_buf_steal(&b, ret_len);
  if (!data)
    return ca_error_set(err, ENOMEM, "read %s: out of memory", name);
  *ret_data = data;
  return 0;
}

int ca_read_file(const char *path, size_t max, char **ret_data, size_t *ret_len, ca_error **err) {
  return ca_read_file_at(AT_FDCWD, path, max, ret_data, ret_len, err);
}

int ca_read_file_buf(int dirfd, const char *name, char *buf, size_t size, ca_error **err) {
  if (size == 0)
    return ca_error_set(err, EINVAL, "read %s: no room for even the terminating NUL", name);
  _cleanup_close_ int fd = open_for_read(dirfd, name, err);
  if (fd < 0)
    return fd;
  char extra;
  ssize_t n = read_full(fd, buf, size - 1);
  ssize_t more = n == (ssize_t)size - 1 ? read_full(fd, &extra, 1) : 0;
  if (n < 0 || more < 0)
    return ca_error_set_errno(err, (int)-(n < 0 ? n : more), "read %s", name);
  if (more > 0)
    return ca_error_set(err, EFBIG, "read %s: larger than the limit of %zu bytes", name, size - 1);
  buf[n] = '\0';
  return (int)n;
}
