/* How ps shows a session's command (issue 24): as a shell would take it back, on one line, cut with "..." at the
 * column's width. */
#include <criterion/criterion.h>
#include <string.h>

#include "commands.h"

static const char *shown(const char *const *argv, size_t width) {
  static char out[512];
  ag_ps_command_line(argv, width, out, sizeof(out));
  return out;
}

Test(ps_command, plain_words_stay_as_they_are) {
  cr_assert_str_eq(shown((const char *[]){"make", "-j2", "test", NULL}, 160), "make -j2 test");
  cr_assert_str_eq(shown(NULL, 160), "");
}

Test(ps_command, a_script_is_quoted_as_a_shell_takes_it) {
  cr_assert_str_eq(shown((const char *[]){"sh", "-c", "echo hi; exit 3", NULL}, 160), "sh -c 'echo hi; exit 3'");
  cr_assert_str_eq(shown((const char *[]){"sh", "-c", "echo 'a b'", NULL}, 160), "sh -c 'echo '\\''a b'\\'''");
  cr_assert_str_eq(shown((const char *[]){"x", "", NULL}, 160), "x ''");
}

Test(ps_command, newlines_keep_it_on_one_line) {
  cr_assert_str_eq(shown((const char *[]){"sh", "-c", "a\n\tb 'c' \\\x01", NULL}, 160),
                   "sh -c $'a\\n\\tb \\'c\\' \\\\\\x01'");
}

Test(ps_command, a_long_command_is_cut_and_says_so) {
  char big[400];
  memset(big, 'x', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  const char *s = shown((const char *[]){"sh", "-c", big, NULL}, 40);
  cr_assert_eq(strlen(s), 40);
  cr_assert_eq(strncmp(s, "sh -c xxx", 9), 0, "%s", s);
  cr_assert_str_eq(s + 37, "...");
}
