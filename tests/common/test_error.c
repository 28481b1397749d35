#include <criterion/criterion.h>
#include <string.h>

#include "common.h"

static int inner(ca_error **err) {
  return ca_error_set(err, ENOENT, "DELETE /containers/%s: daemon said 404", "3f2a");
}

static int outer(ca_error **err) {
  int r = inner(err);
  if (r < 0)
    return ca_error_wrap(err, "gc: remove %s", "3f2a");
  return 0;
}

Test(error, wrap_builds_one_line_story) {
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_eq(outer(&err), -ENOENT);
  cr_assert_not_null(err);
  cr_assert_eq(err->code, ENOENT);
  cr_assert_str_eq(err->msg, "gc: remove 3f2a: DELETE /containers/3f2a: daemon said 404");
}

Test(error, set_errno_appends_strerror) {
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_eq(ca_error_set_errno(&err, EACCES, "open %s", "/x"), -EACCES);
  cr_assert_str_eq(err->msg, "open /x: Permission denied");
}

Test(error, set_replaces_earlier_error) {
  _cleanup_error_ ca_error *err = NULL;
  ca_error_set(&err, EIO, "first");
  ca_error_set(&err, EPERM, "second");
  cr_assert_eq(err->code, EPERM);
  cr_assert_str_eq(err->msg, "second");
}

Test(error, null_err_is_allowed_and_code_still_returned) {
  cr_assert_eq(ca_error_set(NULL, EBUSY, "ignored"), -EBUSY);
  cr_assert_eq(ca_error_wrap(NULL, "ctx"), -EINVAL);
  ca_error *none = NULL;
  cr_assert_eq(ca_error_wrap(&none, "ctx"), -EINVAL);
  cr_assert_null(none);
  ca_error_free(NULL);
}

Test(error, nonpositive_code_becomes_eio) {
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_eq(ca_error_set(&err, 0, "no code"), -EIO);
  cr_assert_eq(err->code, EIO);
}
