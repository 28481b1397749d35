#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

static char captured[8192];

static void capture(void (*fn)(void)) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  ca_log_set_fd(p[1]);
  fn();
  ca_log_set_fd(STDERR_FILENO);
  close(p[1]);
  ssize_t n = read(p[0], captured, sizeof(captured) - 1);
  captured[n > 0 ? n : 0] = '\0';
  close(p[0]);
}

static void log_levels(void) {
  ca_log_set_level(CA_LOG_NOTICE);
  ca_log_warning("disk %s", "full");
  ca_log_notice("cleaned %d", 3);
  ca_log_info("hidden");
  ca_log_debug("hidden too");
  ca_log_error("boom");
}

Test(log, format_and_filter) {
  capture(log_levels);
  cr_assert_str_eq(captured, "cleanup-agent: warning: disk full\n"
                             "cleanup-agent: cleaned 3\n"
                             "cleanup-agent: error: boom\n");
}

static void log_long(void) {
  char big[10000];
  memset(big, 'a', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  ca_log_error("%s", big);
}

Test(log, long_line_is_truncated_but_ends_with_newline) {
  capture(log_long);
  size_t n = strlen(captured);
  cr_assert_leq(n, 4096);
  cr_assert_eq(captured[n - 1], '\n');
}

Test(log, parse_level) {
  enum ca_log_level l;
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_eq(ca_log_parse_level("debug", &l, NULL), 0);
  cr_assert_eq(l, CA_LOG_DEBUG);
  cr_assert_lt(ca_log_parse_level("verbose", &l, &err), 0);
  cr_assert_not_null(strstr(err->msg, "'verbose'"));
}
