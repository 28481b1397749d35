/* The reason a collection kept a session registered (issue 19): written into the registry and read back, absent in
 * registries written without one, and type-checked like every other field. */
#include <criterion/criterion.h>
#include <string.h>

#include "session.h"

static struct ag_registry sample(void) {
  struct ag_registry r = {.created = 1700000000, .expires = 0, .guardian_pid = 2};
  strcpy(r.id, "0123456789abcdef0123456789abcdef");
  strcpy(r.mode, "run");
  strcpy(r.owner.host, "ci");
  strcpy(r.owner.boot_id, "b");
  r.owner.pid = 1;
  return r;
}

Test(registry_reason, is_written_and_read_back) {
  struct ag_registry r = sample();
  r.collect_error = (char *)"engine unix:///x.sock of session 0123 did not answer";
  r.collect_error_at = 1700000100;
  char *text = ag_registry_format(&r);
  cr_assert_not_null(text);
  struct ag_registry back;
  cr_assert_eq(ag_registry_parse(text, strlen(text), &back, NULL), 0, "%s", text);
  cr_assert_str_eq(back.collect_error, r.collect_error);
  cr_assert_eq(back.collect_error_at, 1700000100);
  ag_registry_done(&back);
  free(text);
}

Test(registry_reason, is_absent_without_one) {
  struct ag_registry r = sample();
  char *text = ag_registry_format(&r);
  cr_assert_null(strstr(text, "collect_error"), "%s", text);
  struct ag_registry back;
  cr_assert_eq(ag_registry_parse(text, strlen(text), &back, NULL), 0);
  cr_assert_null(back.collect_error);
  cr_assert_eq(back.collect_error_at, 0);
  ag_registry_done(&back);
  free(text);
}

Test(registry_reason, of_the_wrong_type_is_refused) {
  const char *text = "{\"version\":1,\"session\":\"0123456789abcdef0123456789abcdef\",\"mode\":\"run\",\"host\":\"ci\","
                     "\"boot_id\":\"b\",\"owner_pid\":1,\"owner_start\":0,\"created\":1,\"expires\":0,"
                     "\"guardian_pid\":0,\"collect_error\":7}";
  struct ag_registry back;
  ca_error *err = NULL;
  cr_assert_lt(ag_registry_parse(text, strlen(text), &back, &err), 0);
  cr_assert_not_null(strstr(err->msg, "collect_error"), "%s", err->msg);
  ca_error_free(err);
}
