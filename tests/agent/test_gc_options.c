/* gc's options: each flag and each CLEANUP_AGENT_* variable reaches the setting it names, the flag wins over the
 * variable, an empty variable counts as unset, and each bad value is one line on stderr and exit 2 before anything
 * starts. No engine: ag_gc_parse_opts alone. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gc.h"
#include "said.h"

static const char *const vars[] = {
    "CLEANUP_AGENT_OLDER_THAN", "CLEANUP_AGENT_PARALLEL", "CLEANUP_AGENT_METRICS_FILE",
    "CLEANUP_AGENT_DISK_HIGH",  "CLEANUP_AGENT_DISK_LOW", "CLEANUP_AGENT_BUILD_CACHE_KEEP",
    "CLEANUP_AGENT_DRY_RUN",    "CLEANUP_AGENT_FORMAT",
};

static void clear_vars(void) {
  said_env(vars, sizeof(vars) / sizeof(vars[0]), NULL);
}

/* Only these variables of gc's set: each "K=V" of the NULL-terminated list. */
static void set_vars(const char *const *kv) {
  said_env(vars, sizeof(vars) / sizeof(vars[0]), kv);
}
#define SET_VARS(...) set_vars((const char *const[]){__VA_ARGS__, NULL})

/* Parses the options given (a NULL-terminated list, without "gc"), with what it says on stdout and stderr in out and
 * err; returns ag_gc_parse_opts's result. */
static int parse_said(struct gc_opts *o, const char *const *args, char *out, char *err, size_t size) {
  int argc;
  char **argv = said_argv("gc", args, &argc);
  struct said s;
  said_begin(&s);
  int r = ag_gc_parse_opts(argc, argv, o);
  said_end(&s, out, err, size);
  return r;
}

static char out[16384], err[16384];
#define PARSE(o, ...) parse_said((o), (const char *const[]){__VA_ARGS__, NULL}, out, err, sizeof(out))

/* The settings a flag or a variable gives, one "name=value" each, so that a test compares them all at once and a
 * failure shows which setting got which value. */
static char *settings(const struct gc_opts *o) {
  char *text = NULL;
  if (asprintf(&text,
               "older_than_usec=%" PRIu64 " dry_run=%d json=%d metrics=%s parallel=%u disk_set=%d high=%u low=%u"
               " build_cache_set=%d build_cache_keep=%" PRIu64,
               o->older_than_usec, o->dry_run, o->json, o->metrics ? o->metrics : "-", o->parallel, o->disk.disk_set,
               o->disk.high, o->disk.low, o->disk.build_cache_set, o->disk.build_cache_keep) < 0)
    return NULL;
  return text;
}

Test(gc_options, defaults_hold_without_flags_or_variables) {
  clear_vars();
  struct gc_opts o = {0};
  cr_assert_eq(PARSE(&o, "--dry-run"), 0, "%s", err);
  cr_expect_str_eq(settings(&o), "older_than_usec=0 dry_run=1 json=0 metrics=- parallel=32 disk_set=0 high=85 low=80"
                                 " build_cache_set=0 build_cache_keep=0");
  cr_expect_str_empty(out);
  cr_expect_str_empty(err);
}

Test(gc_options, each_flag_sets_its_own_setting) {
  clear_vars();
  struct gc_opts o = {0};
  cr_assert_eq(PARSE(&o, "--older-than", "2h", "--dry-run", "--format", "json", "--metrics-file", "m.prom",
                     "--parallel", "7", "--disk-high", "90%", "--disk-low", "60", "--build-cache-keep", "1G"),
               0, "%s", err);
  cr_expect_str_eq(settings(&o), "older_than_usec=7200000000 dry_run=1 json=1 metrics=m.prom parallel=7 disk_set=1"
                                 " high=90 low=60 build_cache_set=1 build_cache_keep=1073741824");
  cr_expect_str_empty(err);

  /* --build-cache-keep 0 prunes it all; --format table is the default; a mark alone gives the other its default. */
  struct gc_opts o2 = {0};
  cr_assert_eq(PARSE(&o2, "--build-cache-keep", "0", "--format", "table", "--disk-low", "70"), 0, "%s", err);
  cr_expect_str_eq(settings(&o2), "older_than_usec=0 dry_run=0 json=0 metrics=- parallel=32 disk_set=1 high=85 low=70"
                                  " build_cache_set=1 build_cache_keep=0");
}

Test(gc_options, each_variable_sets_its_own_setting) {
  SET_VARS("CLEANUP_AGENT_OLDER_THAN=3d", "CLEANUP_AGENT_PARALLEL=64", "CLEANUP_AGENT_METRICS_FILE=/var/m.prom",
           "CLEANUP_AGENT_DISK_HIGH=95", "CLEANUP_AGENT_DISK_LOW=50%", "CLEANUP_AGENT_BUILD_CACHE_KEEP=512M");
  struct gc_opts o = {0};
  cr_assert_eq(PARSE(&o, "--dry-run"), 0, "%s", err);
  cr_expect_str_eq(settings(&o), "older_than_usec=259200000000 dry_run=1 json=0 metrics=/var/m.prom parallel=64"
                                 " disk_set=1 high=95 low=50 build_cache_set=1 build_cache_keep=536870912");
  clear_vars();
}

/* --dry-run and --format have no variable (cleanup-agent-gc(1)): a stray one changes nothing. */
Test(gc_options, dry_run_and_format_have_no_variable) {
  SET_VARS("CLEANUP_AGENT_DRY_RUN=1", "CLEANUP_AGENT_FORMAT=json");
  struct gc_opts o = {0};
  cr_assert_eq(PARSE(&o, "--parallel", "1"), 0, "%s", err);
  cr_expect_not(o.dry_run);
  cr_expect_not(o.json);
  clear_vars();
}

/* The flag wins, and a bad variable under a good flag is never read. */
Test(gc_options, flags_override_variables) {
  SET_VARS("CLEANUP_AGENT_OLDER_THAN=bad", "CLEANUP_AGENT_PARALLEL=0", "CLEANUP_AGENT_METRICS_FILE=env.prom",
           "CLEANUP_AGENT_DISK_HIGH=abc", "CLEANUP_AGENT_DISK_LOW=99", "CLEANUP_AGENT_BUILD_CACHE_KEEP=lots");
  struct gc_opts o = {0};
  cr_assert_eq(PARSE(&o, "--older-than", "1h", "--parallel", "4", "--metrics-file", "flag.prom", "--disk-high", "90",
                     "--disk-low", "80", "--build-cache-keep", "2G"),
               0, "%s", err);
  cr_expect_str_eq(settings(&o), "older_than_usec=3600000000 dry_run=0 json=0 metrics=flag.prom parallel=4 disk_set=1"
                                 " high=90 low=80 build_cache_set=1 build_cache_keep=2147483648");
  cr_expect_str_empty(err);
  clear_vars();
}

/* An empty variable counts as unset, as for every command (DESIGN.md, Options). */
Test(gc_options, empty_variables_count_as_unset) {
  clear_vars();
  for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
    setenv(vars[i], "", 1);
  struct gc_opts o = {0};
  cr_assert_eq(PARSE(&o, "--dry-run"), 0, "%s", err);
  cr_expect_str_eq(settings(&o), "older_than_usec=0 dry_run=1 json=0 metrics=- parallel=32 disk_set=0 high=85 low=80"
                                 " build_cache_set=0 build_cache_keep=0");
  cr_expect_str_empty(err);
  clear_vars();
}

Test(gc_options, help_is_the_usage_on_stdout) {
  clear_vars();
  static const char *const helps[][3] = {{"--help"}, {"-h"}, {"--older-than", "bad", "--help"}, {"--help", "--bogus"}};
  for (size_t i = 0; i < sizeof(helps) / sizeof(helps[0]); i++) {
    struct gc_opts o = {0};
    cr_assert_eq(parse_said(&o, helps[i], out, err, sizeof(out)), -1, "%s", helps[i][0]);
    const char *usage = "Usage: cleanup-agent gc [--older-than DUR] [--dry-run]";
    cr_expect_eq(strncmp(out, usage, strlen(usage)), 0, "%s", out);
    cr_expect_not_null(strstr(out, "\nExit 0 when everything collectable went, 1 when something is left.\n"), "%s",
                       out);
    cr_expect_str_empty(err);
  }
}

#define DURATION_HINT "use a number with a unit: ms, s, m, h or d, such as 250ms, 30s or 1h30m"
#define HELP_HINT "; see 'cleanup-agent gc --help'"

/* Each bad value, from a flag or a variable: exactly this one line on stderr, nothing on stdout, exit 2. */
Test(gc_options, each_bad_value_is_one_line_and_exit_2) {
  static const struct said_bad bad[] = {
      {{0}, {"--older-than", "bad"}, "invalid duration 'bad': " DURATION_HINT},
      {{0}, {"--older-than", ""}, "empty duration: " DURATION_HINT},
      {{0}, {"--older-than", "-1h"}, "invalid duration '-1h': must not be negative"},
      {{0}, {"--older-than"}, "option '--older-than' needs a value" HELP_HINT},
      {{0}, {"--parallel", "0"}, "--parallel: 0 is out of range (1 to 64)"},
      {{0}, {"--parallel", "65"}, "--parallel: 65 is out of range (1 to 64)"},
      {{0}, {"--parallel", "abc"}, "--parallel: invalid number 'abc': expected a whole number"},
      {{0}, {"--parallel", "1.5"}, "--parallel: invalid number '1.5': expected a whole number"},
      {{0}, {"--parallel", ""}, "--parallel: empty value: expected a whole number"},
      {{0}, {"--parallel"}, "option '--parallel' needs a value" HELP_HINT},
      {{0}, {"--disk-high", "101"}, "--disk-high: 101 is out of range (1 to 100)"},
      {{0}, {"--disk-high", "50%x"}, "--disk-high: invalid number '50%x': expected a whole number"},
      {{0}, {"--disk-high", "80", "--disk-low", "90"}, "--disk-low 90% is above --disk-high 80%"},
      {{0}, {"--disk-low", "abc"}, "--disk-low: invalid number 'abc': expected a whole number"},
      {{0}, {"--disk-low"}, "option '--disk-low' needs a value" HELP_HINT},
      {{0},
       {"--build-cache-keep", "10X"},
       "invalid size '10X': use bytes or a number with K, M, G or T, such as 512M or 1.5G"},
      {{0}, {"--build-cache-keep"}, "option '--build-cache-keep' needs a value" HELP_HINT},
      {{0}, {"--format", "xml"}, "--format 'xml': use table or json"},
      {{0}, {"--format"}, "option '--format' needs a value" HELP_HINT},
      {{0}, {"--metrics-file"}, "option '--metrics-file' needs a value" HELP_HINT},
      {{0}, {"--bogus"}, "unknown option '--bogus'" HELP_HINT},
      {{0}, {"-x"}, "unknown option '-x'" HELP_HINT},
      {{0}, {"--dry-run=yes"}, "unknown option '--dry-run=yes'" HELP_HINT},
      {{0}, {"--disk", "80"}, "unknown option '--disk'" HELP_HINT}, /* --disk-high or --disk-low? */
      {{0}, {"--bogus", "--help"}, "unknown option '--bogus'" HELP_HINT},
      {{0}, {"--dry-run", "extra"}, "unexpected argument 'extra'" HELP_HINT},
      {{"CLEANUP_AGENT_OLDER_THAN=bad"}, {"--dry-run"}, "invalid duration 'bad': " DURATION_HINT},
      {{"CLEANUP_AGENT_PARALLEL=0"}, {"--dry-run"}, "--parallel: 0 is out of range (1 to 64)"},
      {{"CLEANUP_AGENT_PARALLEL=abc"}, {"--dry-run"}, "--parallel: invalid number 'abc': expected a whole number"},
      {{"CLEANUP_AGENT_DISK_HIGH=abc"}, {"--dry-run"}, "--disk-high: invalid number 'abc': expected a whole number"},
      {{"CLEANUP_AGENT_DISK_LOW=0"}, {"--dry-run"}, "--disk-low: 0 is out of range (1 to 100)"},
      {{"CLEANUP_AGENT_DISK_HIGH=70", "CLEANUP_AGENT_DISK_LOW=75"},
       {"--dry-run"},
       "--disk-low 75% is above --disk-high 70%"},
      {{"CLEANUP_AGENT_DISK_LOW=75"}, {"--disk-high", "70"}, "--disk-low 75% is above --disk-high 70%"},
      {{"CLEANUP_AGENT_BUILD_CACHE_KEEP=abc"},
       {"--dry-run"},
       "invalid size 'abc': use bytes or a number with K, M, G or T, such as 512M or 1.5G"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    set_vars(bad[i].env);
    struct gc_opts o = {0};
    int r = parse_said(&o, bad[i].args, out, err, sizeof(out));
    char want[512];
    snprintf(want, sizeof(want), "cleanup-agent: gc: %s\n", bad[i].line);
    cr_expect_eq(r, 2, "case %zu (%s %s): exit %d", i, bad[i].env[0] ? bad[i].env[0] : "", bad[i].args[0], r);
    cr_expect_str_eq(err, want, "case %zu (%s %s)", i, bad[i].env[0] ? bad[i].env[0] : "", bad[i].args[0]);
    cr_expect_str_empty(out, "case %zu", i);
  }
  clear_vars();
}
