#include <criterion/criterion.h>
#include <string.h>

#include "common.h"

struct size_case {
  const char *in;
  uint64_t bytes;
};

/* Plain tables walked in one test: Criterion's parameterized tests copy raw structs into re-executed workers, so
 * the string pointers in them would dangle under ASLR. */
static const struct size_case size_good[] = {
    {"1", 1},
    {"4096", 4096},
    {"64K", 64 << 10},
    {"64k", 64 << 10},
    {"512M", 512u << 20},
    {"512m", 512u << 20},
    {"512MiB", 512u << 20},
    {"512MB", 512u << 20},
    {"2G", UINT64_C(2) << 30},
    {"1.5G", UINT64_C(3) << 29},
    {"0.5K", 512},
    {"1T", UINT64_C(1) << 40},
    {"100b", 100},
    {"16777215T", UINT64_C(16777215) << 40}, /* 2^64 - 2^40: the largest whole number of T */
};

Test(parse, size_good) {
  for (size_t i = 0; i < ELEMENTSOF(size_good); i++) {
    const struct size_case *c = &size_good[i];
    uint64_t v = 0;
    _cleanup_error_ ca_error *err = NULL;
    cr_assert_eq(ca_parse_size(c->in, &v, &err), 0, "'%s': %s", c->in, err ? err->msg : "");
    cr_assert_eq(v, c->bytes, "'%s' gave %lu", c->in, (unsigned long)v);
  }
}

static const char *const size_bad[] = {"",      "-1",  "-512M", "abc",  "12x", "1.5",       "M",
                                       "1..5G", "1.G", " 1",    "1 M",  "1MM", "0",         "0K",
                                       "1.5b",  "1e3", "0x10",  "1Gi5", "1iB", "16777216T", "99999999999999999999",
                                       "1KBB"};

/* A refused value leaves the output alone and its message quotes the input. */
static void assert_refused(int (*parse)(const char *, uint64_t *, ca_error **), const char *in) {
  uint64_t v = 7;
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_lt(parse(in, &v, &err), 0, "'%s' was accepted", in);
  cr_assert_eq(v, 7, "output touched on failure");
  cr_assert_not_null(err);
  if (*in) {
    char quoted[64];
    snprintf(quoted, sizeof(quoted), "'%s'", in);
    cr_assert_not_null(strstr(err->msg, quoted), "message does not quote the input: %s", err->msg);
  }
}

Test(parse, size_bad) {
  for (size_t i = 0; i < ELEMENTSOF(size_bad); i++)
    assert_refused(ca_parse_size, size_bad[i]);
}

struct dur_case {
  const char *in;
  uint64_t usec;
};

static const struct dur_case duration_good[] = {
    {"250ms", 250000},
    {"30s", 30000000},
    {"5m", 300000000},
    {"1h30m", UINT64_C(5400000000)},
    {"0s", 0},
    {"1.5s", 1500000},
    {"2h", UINT64_C(7200000000)},
    {"1d", UINT64_C(86400000000)},
    {"10us", 10},
    {"1m30s250ms", 90250000},
};

Test(parse, duration_good) {
  for (size_t i = 0; i < ELEMENTSOF(duration_good); i++) {
    const struct dur_case *c = &duration_good[i];
    uint64_t v = 0;
    _cleanup_error_ ca_error *err = NULL;
    cr_assert_eq(ca_parse_duration(c->in, &v, &err), 0, "'%s': %s", c->in, err ? err->msg : "");
    cr_assert_eq(v, c->usec, "'%s' gave %lu", c->in, (unsigned long)v);
  }
}

static const char *const duration_bad[] = {"",
                                           "30",
                                           "-5s",
                                           "s",
                                           "5x",
                                           "1h30",
                                           "5 m",
                                           " 5s",
                                           "5s ",
                                           "1.s",
                                           ".5s",
                                           "5S",
                                           "1e3s",
                                           "5mm",
                                           "99999999999999999999d",
                                           "300000000000d"};

Test(parse, duration_bad) {
  for (size_t i = 0; i < ELEMENTSOF(duration_bad); i++)
    assert_refused(ca_parse_duration, duration_bad[i]);
}

Test(parse, uint_range_and_garbage) {
  uint64_t v = 0;
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_eq(ca_parse_uint("100", "--pids", 1, 1000, &v, &err), 0);
  cr_assert_eq(v, 100);
  cr_assert_lt(ca_parse_uint("0", "--pids", 1, 1000, &v, &err), 0);
  cr_assert_not_null(strstr(err->msg, "--pids"));
  cr_assert_lt(ca_parse_uint("1001", "--pids", 1, 1000, &v, NULL), 0);
  cr_assert_lt(ca_parse_uint("-1", "--pids", 0, 1000, &v, NULL), 0);
  cr_assert_lt(ca_parse_uint("1x", "--pids", 0, 1000, &v, NULL), 0);
  cr_assert_lt(ca_parse_uint("", "--pids", 0, 1000, &v, NULL), 0);
  cr_assert_lt(ca_parse_uint("99999999999999999999999", "--pids", 0, UINT64_MAX, &v, NULL), 0);
  cr_assert_eq(v, 100);
}

/* Booleans as users write them; anything else is refused rather than read as true. */
Test(parse, bool_strict) {
  static const char *const yes[] = {"1", "true", "yes", "on", "TRUE", "Yes", "ON"};
  static const char *const no[] = {"0", "false", "no", "off", "FALSE", "No", "Off"};
  static const char *const bad[] = {"", "maybe", "2", "y", "n", "truee", " true", "true ", "-1", "nope"};
  for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
    bool v = false;
    cr_assert_eq(ca_parse_bool(yes[i], "X", &v, NULL), 0, "'%s'", yes[i]);
    cr_assert(v, "'%s' is true", yes[i]);
  }
  for (size_t i = 0; i < ELEMENTSOF(no); i++) {
    bool v = true;
    cr_assert_eq(ca_parse_bool(no[i], "X", &v, NULL), 0, "'%s'", no[i]);
    cr_assert_not(v, "'%s' is false", no[i]);
  }
  for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
    bool v = true;
    _cleanup_error_ ca_error *err = NULL;
    cr_assert_lt(ca_parse_bool(bad[i], "CLEANUP_AGENT_X", &v, &err), 0, "'%s' was accepted", bad[i]);
    cr_assert(v, "'%s': the result is untouched on failure", bad[i]);
    cr_assert_not_null(strstr(err->msg, "CLEANUP_AGENT_X"), "%s", err->msg);
    cr_assert_not_null(strstr(err->msg, "1, true, yes, on"), "%s", err->msg);
    cr_assert_not_null(strstr(err->msg, "0, false, no, off"), "%s", err->msg);
  }
}

Test(parse, positive_double) {
  double d = 0;
  cr_assert_eq(ca_parse_positive_double("1.5", "--cpus", 64, &d, NULL), 0);
  cr_assert_float_eq(d, 1.5, 1e-9);
  cr_assert_eq(ca_parse_positive_double("2", "--cpus", 64, &d, NULL), 0);
  const char *bad[] = {"0", "0.0", "-1", "inf", "nan", "1e3", "0x2", " 1", "1.", ".5", "1.2.3", "", "65"};
  for (size_t i = 0; i < ELEMENTSOF(bad); i++)
    cr_assert_lt(ca_parse_positive_double(bad[i], "--cpus", 64, &d, NULL), 0, "'%s' accepted", bad[i]);
}

Test(parse, format_round_trips) {
  char buf[32];
  cr_assert_str_eq(ca_format_size(512u << 20, buf), "512M");
  cr_assert_str_eq(ca_format_size(UINT64_C(3) << 29, buf), "1.5G");
  cr_assert_str_eq(ca_format_size(100, buf), "100B");
  /* Just under a unit, rounded to one decimal, is one of the next unit (as numfmt --to=iec), not "1024.0K". */
  cr_assert_str_eq(ca_format_size((1u << 20) - 1, buf), "1.0M");
  cr_assert_str_eq(ca_format_size(1023, buf), "1023B");
  cr_assert_str_eq(ca_format_size((1u << 20) - 52, buf), "1023.9K");
  cr_assert_str_eq(ca_format_size((UINT64_C(1) << 40) - 1, buf), "1.0T");
  cr_assert_str_eq(ca_format_duration(5400000000u, buf), "1h30m");
  cr_assert_str_eq(ca_format_duration(250000, buf), "250ms");
  cr_assert_str_eq(ca_format_duration(30000000, buf), "30s");
  cr_assert_str_eq(ca_format_duration(1500000, buf), "1.5s");
  cr_assert_str_eq(ca_format_duration(0, buf), "0s");
  const char *sizes[] = {"64K", "512M", "2G", "1.5G", "3T"};
  for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
    uint64_t v;
    cr_assert_eq(ca_parse_size(sizes[i], &v, NULL), 0);
    cr_assert_str_eq(ca_format_size(v, buf), sizes[i]);
  }
}

Test(parse, utf8_sequences_strict) {
  cr_assert_eq(ca_utf8_seq("a", 1), 1);
  cr_assert_eq(ca_utf8_seq("\xc3\xa9", 2), 2);         /* é */
  cr_assert_eq(ca_utf8_seq("\xe2\x82\xac", 3), 3);     /* € */
  cr_assert_eq(ca_utf8_seq("\xf0\x9f\x98\x80", 4), 4); /* an emoji */
  cr_assert_eq(ca_utf8_seq("\xc3", 1), 0, "truncated");
  cr_assert_eq(ca_utf8_seq("\xc0\xaf", 2), 0, "overlong");
  cr_assert_eq(ca_utf8_seq("\xe0\x80\xaf", 3), 0, "overlong");
  cr_assert_eq(ca_utf8_seq("\xed\xa0\x80", 3), 0, "surrogate");
  cr_assert_eq(ca_utf8_seq("\xf4\x90\x80\x80", 4), 0, "above U+10FFFF");
  cr_assert_eq(ca_utf8_seq("\x80", 1), 0, "continuation byte");
  cr_assert_eq(ca_utf8_seq("\xc3(", 2), 0, "bad continuation");
  cr_assert_eq(ca_utf8_seq("", 0), 0);
}
