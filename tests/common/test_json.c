/* The JSON field helpers every parser of untrusted JSON uses (engine answers, the registry, the checkpoint). */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <string.h>

#include "common.h"

static cJSON *parse(const char *text) {
  cJSON *j = NULL;
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_eq(ca_json_parse(text, strlen(text), "test", &j, &err), 0, "%s: %s", text, err ? err->msg : "");
  return j;
}

Test(json, parse_wants_one_whole_value) {
  const char *bad[] = {"", "{", "{} x", "[1,]", "{\"a\":1}{}", "nul"};
  for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
    cJSON *j = NULL;
    _cleanup_error_ ca_error *err = NULL;
    cr_assert_eq(ca_json_parse(bad[i], strlen(bad[i]), "the answer", &j, &err), -EBADMSG, "accepted '%s'", bad[i]);
    cr_assert_null(j);
    cr_assert(strncmp(err->msg, "the answer: ", 12) == 0, "%s", err->msg);
  }
  _cleanup_json_ cJSON *ok = parse(" {\"a\": [1, 2]}\r\n\t ");
  cr_assert(cJSON_IsObject(ok));
  /* length-delimited: what follows len is not read */
  cJSON *j = NULL;
  cr_assert_eq(ca_json_parse("{}garbage", 2, "x", &j, NULL), 0);
  cJSON_Delete(j);
}

Test(json, absent_and_null_fields_leave_the_value_alone) {
  _cleanup_json_ cJSON *j = parse("{\"n\": null}");
  const char *s = "kept";
  int64_t i = 7;
  double d = 1.5;
  bool b = true;
  const cJSON *o = j;
  char *dup = NULL;
  for (int k = 0; k < 2; k++) {
    const char *key = k ? "n" : "absent";
    cr_assert_eq(ca_json_string(j, key, &s, NULL), 0);
    cr_assert_eq(ca_json_strdup(j, key, &dup, NULL), 0);
    cr_assert_eq(ca_json_int(j, key, 0, 10, &i, NULL), 0);
    cr_assert_eq(ca_json_double(j, key, 0, 10, &d, NULL), 0);
    cr_assert_eq(ca_json_bool(j, key, &b, NULL), 0);
    cr_assert_eq(ca_json_object(j, key, &o, NULL), 0);
    cr_assert_eq(ca_json_array(j, key, &o, NULL), 0);
  }
  cr_assert_str_eq(s, "kept");
  cr_assert_null(dup);
  cr_assert(i == 7 && d == 1.5 && b && o == j);
  /* a field of something that is not an object is absent too */
  _cleanup_json_ cJSON *arr = parse("[1]");
  cr_assert_eq(ca_json_int(arr, "x", 0, 10, &i, NULL), 0);
  cr_assert_null(ca_json_field(arr, "x"));
}

Test(json, wrong_types_are_errors_that_name_the_field) {
  _cleanup_json_ cJSON *j = parse("{\"s\": 1, \"i\": \"1\", \"b\": 0, \"o\": [], \"a\": {}}");
  const char *s;
  int64_t i;
  bool b;
  const cJSON *o;
  struct {
    int r;
    const char *want;
  } cases[] = {
      {ca_json_string(j, "s", &s, NULL), NULL}, {ca_json_int(j, "i", 0, 9, &i, NULL), NULL},
      {ca_json_bool(j, "b", &b, NULL), NULL},   {ca_json_object(j, "o", &o, NULL), NULL},
      {ca_json_array(j, "a", &o, NULL), NULL},
  };
  for (size_t k = 0; k < ELEMENTSOF(cases); k++)
    cr_assert_eq(cases[k].r, -EBADMSG, "case %zu", k);
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_eq(ca_json_string(j, "s", &s, &err), -EBADMSG);
  cr_assert_str_eq(err->msg, "field s: expected a string, got a number");
}

Test(json, int_takes_whole_numbers_in_range_only) {
  _cleanup_json_ cJSON *j =
      parse("{\"ok\": 9007199254740992, \"neg\": -3, \"frac\": 1.5, \"huge\": 1e300, \"big\": 9.3e18, \"edge\": 10}");
  int64_t v = 0;
  cr_assert_eq(ca_json_int(j, "ok", 0, INT64_C(1) << 53, &v, NULL), 0);
  cr_assert_eq(v, INT64_C(1) << 53);
  cr_assert_eq(ca_json_int(j, "neg", -5, 5, &v, NULL), 0);
  cr_assert_eq(v, -3);
  cr_assert_eq(ca_json_int(j, "edge", 0, 10, &v, NULL), 0);
  cr_assert_eq(ca_json_int(j, "edge", 0, 9, &v, NULL), -EBADMSG);
  cr_assert_eq(ca_json_int(j, "neg", 0, 5, &v, NULL), -EBADMSG);
  cr_assert_eq(ca_json_int(j, "frac", 0, 5, &v, NULL), -EBADMSG);
  cr_assert_eq(ca_json_int(j, "huge", INT64_MIN, INT64_MAX, &v, NULL), -EBADMSG);
  cr_assert_eq(ca_json_int(j, "big", INT64_MIN, INT64_MAX, &v, NULL), -EBADMSG, "2^63 and above do not fit");
  double d = 0;
  cr_assert_eq(ca_json_double(j, "frac", 0, 2, &d, NULL), 0);
  cr_assert_eq(d, 1.5);
  cr_assert_eq(ca_json_double(j, "frac", 0, 1, &d, NULL), -EBADMSG);
}

Test(json, strdup_and_require) {
  _cleanup_json_ cJSON *j = parse("{\"a\": \"x y\", \"b\": 2, \"n\": null}");
  _cleanup_free_ char *a = NULL;
  cr_assert_eq(ca_json_strdup(j, "a", &a, NULL), 0);
  cr_assert_str_eq(a, "x y");
  cr_assert_eq(ca_json_require(j, (const char *const[]){"a", "b", NULL}, NULL), 0);
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_eq(ca_json_require(j, (const char *const[]){"a", "n", "b", NULL}, &err), -EBADMSG);
  cr_assert_str_eq(err->msg, "field n is missing");
}

/* cJSON's own number printing keeps 15 significant digits when they read back within its epsilon: from about 2^52 up
 * it dropped the last digit of whole numbers (6433333333333331 came back as 6433333333333330). */
Test(json, add_int_writes_every_digit) {
  const int64_t values[] = {0, -1, 255, INT64_C(6433333333333331), INT64_C(1) << 53, INT64_MAX, INT64_MIN};
  for (size_t k = 0; k < ELEMENTSOF(values); k++) {
    _cleanup_json_ cJSON *o = cJSON_CreateObject();
    cr_assert(ca_json_add_int(o, "v", values[k]));
    _cleanup_free_ char *text = cJSON_PrintUnformatted(o);
    char want[64];
    snprintf(want, sizeof(want), "{\"v\":%" PRId64 "}", values[k]);
    cr_assert_str_eq(text, want);
    if (values[k] > -(INT64_C(1) << 53) && values[k] <= INT64_C(1) << 53) {
      _cleanup_json_ cJSON *back = parse(text);
      int64_t v = 0;
      cr_assert_eq(ca_json_int(back, "v", INT64_MIN, INT64_MAX, &v, NULL), 0);
      cr_assert_eq(v, values[k]);
    }
  }
}

Test(json, strv_reads_arrays_of_strings_only) {
  _cleanup_json_ cJSON *j = parse("{\"a\": [\"x\", \"\", \"z z\"], \"bad\": [\"x\", 1], \"s\": \"x\", \"n\": null}");
  _cleanup_strv_free_ char **v = NULL;
  cr_assert_eq(ca_json_strv(j, "a", &v, NULL), 0);
  cr_assert(v[0] && v[1] && v[2] && !v[3]);
  cr_assert(streq(v[0], "x") && streq(v[1], "") && streq(v[2], "z z"));
  for (int k = 0; k < 2; k++) {
    _cleanup_strv_free_ char **empty = NULL;
    cr_assert_eq(ca_json_strv(j, k ? "n" : "absent", &empty, NULL), 0);
    cr_assert(empty && !empty[0], "absent and null give an empty list");
  }
  char **untouched = NULL;
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_eq(ca_json_strv(j, "bad", &untouched, &err), -EBADMSG);
  cr_assert_str_eq(err->msg, "field bad: expected strings, got a number");
  cr_assert_eq(ca_json_strv(j, "s", &untouched, NULL), -EBADMSG);
  cr_assert_null(untouched);
}
