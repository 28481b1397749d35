#include <criterion/criterion.h>
#include <string.h>

#include "common.h"

Test(buf, empty_buffer_is_empty_string) {
  ca_buf b = CA_BUF_INIT(16);
  cr_assert_str_eq(ca_buf_str(&b), "");
  cr_assert_eq(b.len, 0);
  ca_buf_free(&b);
}

Test(buf, append_grows_and_terminates) {
  ca_buf b = CA_BUF_INIT(1 << 20);
  for (int i = 0; i < 1000; i++)
    cr_assert_eq(ca_buf_append(&b, "abc", 3, NULL), 0);
  cr_assert_eq(b.len, 3000);
  cr_assert_eq(strlen(ca_buf_str(&b)), 3000);
  cr_assert_eq(memcmp(b.data + 2997, "abc", 3), 0);
  ca_buf_free(&b);
}

Test(buf, cap_is_enforced_exactly_with_message) {
  ca_buf b = CA_BUF_INIT(10);
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_eq(ca_buf_append(&b, "0123456789", 10, &err), 0);
  cr_assert_eq(ca_buf_append(&b, "x", 1, &err), -EMSGSIZE);
  cr_assert_not_null(strstr(err->msg, "10 bytes"));
  cr_assert_eq(b.len, 10, "a refused append must not change the contents");
  cr_assert_str_eq(ca_buf_str(&b), "0123456789");
  ca_buf_free(&b);
}

Test(buf, huge_length_does_not_overflow) {
  ca_buf b = CA_BUF_INIT(SIZE_MAX);
  cr_assert_eq(ca_buf_append(&b, "a", 1, NULL), 0);
  cr_assert_lt(ca_buf_append(&b, "a", SIZE_MAX, NULL), 0);
  ca_buf_free(&b);
}

Test(buf, appendf_and_steal) {
  ca_buf b = CA_BUF_INIT(64);
  cr_assert_eq(ca_buf_appendf(&b, NULL, "%s=%d", "pids", 42), 0);
  cr_assert_eq(ca_buf_appendf(&b, NULL, ",%s", "x"), 0);
  size_t len;
  _cleanup_free_ char *s = ca_buf_steal(&b, &len);
  cr_assert_str_eq(s, "pids=42,x");
  cr_assert_eq(len, 9);
  cr_assert_null(b.data);
  cr_assert_lt(ca_buf_appendf(&b, NULL, "%0100d", 1), 0, "appendf honours the cap");
  ca_buf_free(&b);
}

Test(buf, binary_data_and_reset) {
  ca_buf b = CA_BUF_INIT(64);
  cr_assert_eq(ca_buf_append(&b, "a\0b", 3, NULL), 0);
  cr_assert_eq(b.len, 3);
  ca_buf_reset(&b);
  cr_assert_eq(b.len, 0);
  cr_assert_str_eq(ca_buf_str(&b), "");
  ca_buf_free(&b);
  ca_buf_free(NULL);
}
