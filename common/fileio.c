/* Whole-file reads with a cap and atomic replacement of files in the state directory. */
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

static int write_all(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
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
  else if ((r = write_all(fd, data, len)) == 0 && fsync(fd) < 0)
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

int ca_read_file(const char *path, size_t max, char **ret_data, size_t *ret_len, ca_error **err) {
  _cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ELOOP)
      return ca_error_set(err, ELOOP, "read %s: is a symbolic link, refusing to follow it", path);
    return ca_error_set_errno(err, errno, "read %s", path);
  }
  ca_buf b = CA_BUF_INIT(max);
  char chunk[8192];
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      int e = errno;
      ca_buf_free(&b);
      return ca_error_set_errno(err, e, "read %s", path);
    }
    if (n == 0)
      break;
    if (ca_buf_append(&b, chunk, (size_t)n, NULL) < 0) {
      ca_buf_free(&b);
      return ca_error_set(err, EFBIG, "read %s: larger than the limit of %zu bytes", path, max);
    }
  }
  *ret_data = ca_buf_steal(&b, ret_len);
  return *ret_data ? 0 : ca_error_set(err, ENOMEM, "read %s: out of memory", path);
}
