/* Cleanup attributes and small helpers shared by every module (after systemd's macro-fundamental.h). */
#pragma once

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _noreturn_ __attribute__((noreturn))
#define _warn_unused_result_ __attribute__((warn_unused_result))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

/* Hand a pointer or fd out of a cleanup scope: returns the value and leaves the variable empty. */
#define TAKE_PTR(p)                                                                                                    \
  ({                                                                                                                   \
    __typeof__(p) _p_ = (p);                                                                                           \
    (p) = NULL;                                                                                                        \
    _p_;                                                                                                               \
  })
#define TAKE_FD(fd)                                                                                                    \
  ({                                                                                                                   \
    int _fd_ = (fd);                                                                                                   \
    (fd) = -1;                                                                                                         \
    _fd_;                                                                                                              \
  })

/* Defines func##p(type *p) that calls func(*p) when *p is not NULL, for use with _cleanup_. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                                        \
  static inline void func##p(type *p) {                                                                                \
    if (*p)                                                                                                            \
      func(*p);                                                                                                        \
  }

static inline void ca_freep(void *p) {
  free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(ca_freep)

/* close() that keeps errno, for cleanup paths that must not clobber the error being returned. */
static inline void ca_close_keep_errno(int fd) {
  if (fd >= 0) {
    int saved = errno;
    (void)close(fd); /* nothing useful to do about a failed close on a cleanup path */
    errno = saved;
  }
}
static inline void ca_closep(int *fd) {
  ca_close_keep_errno(*fd);
}
#define _cleanup_close_ _cleanup_(ca_closep)

static inline void ca_fclosep(FILE **f) {
  if (*f)
    (void)fclose(*f); /* read-only streams on cleanup paths */
}
#define _cleanup_fclose_ _cleanup_(ca_fclosep)

static inline void ca_strv_free(char **v) {
  if (!v)
    return;
  for (char **s = v; *s; s++)
    free(*s);
  free(v);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, ca_strv_free)
#define _cleanup_strv_free_ _cleanup_(ca_strv_freep)

#define CA_MIN(a, b) ((a) < (b) ? (a) : (b))
#define CA_MAX(a, b) ((a) > (b) ? (a) : (b))
#define streq(a, b) (strcmp((a), (b)) == 0)
