/* Logging for agent/: one line per message on stderr, "cleanup-agent: warning: ...". Library modules never log. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "config.h"

static enum ca_log_level max_level = CA_LOG_NOTICE;
static int log_fd = STDERR_FILENO;

static const char *const level_names[] = {
    [CA_LOG_ERROR] = "error", [CA_LOG_WARNING] = "warning", [CA_LOG_NOTICE] = "notice",
    [CA_LOG_INFO] = "info",   [CA_LOG_DEBUG] = "debug",
};

void ca_log_set_level(enum ca_log_level level) {
  max_level = level;
}

enum ca_log_level ca_log_get_level(void) {
  return max_level;
}

void ca_log_set_fd(int fd) {
  log_fd = fd;
}

int ca_log_parse_level(const char *s, enum ca_log_level *ret, ca_error **err) {
  for (size_t i = 0; s && i < ELEMENTSOF(level_names); i++)
    if (streq(s, level_names[i])) {
      *ret = (enum ca_log_level)i;
      return 0;
    }
  return ca_error_set(err, EINVAL, "invalid log level '%s': use error, warning, notice, info or debug", s ? s : "");
}

void ca_log(enum ca_log_level level, const char *fmt, ...) {
  if (level > max_level)
    return;
  int saved = errno;
  char line[4096];
  /* Notices are the normal voice of the agent and carry no tag; the other levels say what they are. */
  int n = level == CA_LOG_NOTICE ? snprintf(line, sizeof(line), AG_PROGRAM ": ")
                                 : snprintf(line, sizeof(line), AG_PROGRAM ": %s: ", level_names[level]);
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
  va_end(ap);
  size_t len = (size_t)n + (m < 0 ? 0 : CA_MIN((size_t)m, sizeof(line) - (size_t)n - 2));
  line[len++] = '\n';
  /* One write so that lines of concurrent processes (agent, guardian) do not interleave. */
  ssize_t w = write(log_fd, line, len);
  (void)w; /* nowhere left to report a failing stderr */
  errno = saved;
}
