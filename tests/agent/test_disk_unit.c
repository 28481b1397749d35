/* The disk options as a user types them (kubelet's "85%" or "85") and the image policy a registry records. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "disk.h"
#include "session.h"

Test(disk_options, percentages_with_or_without_the_sign) {
  unsigned v = 0;
  cr_assert_eq(ag_parse_percent("85%", "--disk-high", &v, NULL), 0);
  cr_assert_eq(v, 85);
  cr_assert_eq(ag_parse_percent("100", "--disk-high", &v, NULL), 0);
  cr_assert_eq(v, 100);
  const char *bad[] = {"", "%", "0", "101", "85%%", "-5", "8 5", "85.5", "abc", "99999999999999999999"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    ca_error *err = NULL;
    cr_expect_lt(ag_parse_percent(bad[i], "--disk-high", &v, &err), 0, "'%s' accepted", bad[i]);
    cr_expect(err && strstr(err->msg, "--disk-high"), "the error names the option");
    ca_error_free(err);
  }
}

Test(disk_options, marks_default_to_85_and_80_and_low_is_never_above_high) {
  struct ag_disk_marks m = {0};
  cr_assert_eq(ag_disk_marks_parse(NULL, NULL, &m, NULL), 0);
  cr_assert(m.high == 85 && m.low == 80 && !m.disk_set);
  cr_assert_eq(ag_disk_marks_parse("70%", NULL, &m, NULL), 0);
  cr_assert(m.high == 70 && m.low == 70 && m.disk_set, "high alone below the default low: down to high");
  cr_assert_eq(ag_disk_marks_parse("90", "60%", &m, NULL), 0);
  cr_assert(m.high == 90 && m.low == 60);
  ca_error *err = NULL;
  cr_assert_lt(ag_disk_marks_parse("70", "75", &m, &err), 0);
  cr_assert(strstr(err->msg, "--disk-low 75% is above --disk-high 70%"), "%s", err->msg);
  ca_error_free(err);
}

static const char *registry(const char *images) {
  static char text[1024];
  snprintf(text, sizeof(text),
           "{\"version\":1,\"session\":\"0123456789abcdef0123456789abcdef\",\"mode\":\"run\",\"host\":\"h\","
           "\"boot_id\":\"b\",\"owner_pid\":1,\"owner_start\":1,\"created\":1,\"expires\":0,\"guardian_pid\":0%s%s}",
           images ? ",\"images\":" : "", images ? images : "");
  return text;
}

Test(disk_options, the_registry_records_images_remove_and_reads_it_back) {
  struct ag_registry r = {0};
  cr_assert_eq(ag_registry_parse(registry(NULL), strlen(registry(NULL)), &r, NULL), 0);
  cr_assert(!r.images_remove, "absent: keep");
  r.images_remove = true;
  char *text = ag_registry_format(&r);
  cr_assert(strstr(text, "\"images\":\t\"remove\"") || strstr(text, "\"images\": \"remove\""), "%s", text);
  struct ag_registry back = {0};
  cr_assert_eq(ag_registry_parse(text, strlen(text), &back, NULL), 0);
  cr_assert(back.images_remove);
  free(text);
  ag_registry_done(&r);
  ag_registry_done(&back);
  const char *bad[] = {"\"later\"", "true", "1"};
  for (size_t i = 0; i < 3; i++) {
    ca_error *err = NULL;
    cr_expect_lt(ag_registry_parse(registry(bad[i]), strlen(registry(bad[i])), &r, &err), 0, "%s", bad[i]);
    ca_error_free(err);
  }
}
